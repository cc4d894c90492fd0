//! tollgate: Azure API Management functions as one proxy-wasm filter for Envoy.
//!
//! Everything but `host` is plain Rust that knows nothing of proxy-wasm and is tested natively;
//! `host` is the thin glue, compiled for wasm32 only.

pub mod config;
pub mod credential;
pub mod deny;
pub mod dynamic_consumers;
pub mod jwt;
pub mod limits;
pub mod metrics;
pub mod operation;
pub mod pipeline;
pub mod plan;
pub mod rewrite;
pub mod subscription;
pub mod template;

#[cfg(target_arch = "wasm32")]
mod host;
