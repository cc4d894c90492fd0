//! tollgate's policy core: Azure API Management functions as plain Rust.
//!
//! Configuration is checked and compiled once into a [`plan::Plan`]; per request,
//! [`pipeline::decide`] reads the plan and the request headers and returns what to do. Nothing
//! here knows proxy-wasm or Envoy: the filter crate is the glue that performs host calls.

mod checks;
pub mod config;
pub mod config_error;
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

#[cfg(test)]
mod testing;
