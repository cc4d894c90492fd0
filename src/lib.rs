//! tollgate: Azure API Management functions as one proxy-wasm filter for Envoy.
//!
//! This crate is the glue: it hands Envoy's headers to `tollgate_core` and carries out what the
//! core decides. Every decision lives in `tollgate_core`, which knows nothing of proxy-wasm.

#[cfg(target_arch = "wasm32")]
mod host;
