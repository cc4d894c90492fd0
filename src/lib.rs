//! tollgate: Azure API Management functions as one proxy-wasm filter for Envoy.
//!
//! This crate is the proxy-wasm host: `proxy` (wasm32 only) hands every proxy-wasm callback to
//! `tollgate_glue`'s plugin and filter and performs their host calls. Decisions are
//! `tollgate_core`'s; what happens between the two is `tollgate_glue`'s.

#[cfg(target_arch = "wasm32")]
mod proxy;
