//! tollgate as an Envoy dynamic module (`envoy.filters.http.dynamic_modules`): a native shared
//! object, `libtollgate.so`, that Envoy 1.40 loads and calls through a C ABI (version
//! "v0.2.0"). In progress: the module declares the ABI, exports every hook Envoy requires, and
//! passes each request through untouched; the policy (tollgate-glue) comes next.
//!
//! - `abi`: the C types, the callbacks imported from Envoy, the exported hooks. The only module
//!   where `unsafe` is allowed; the rest of the crate denies it.
//! - `guard`: every hook body runs under `catch_unwind`; a panic answers the request with a 503
//!   instead of taking Envoy down.
//! - `filter`: the per-configuration and per-stream objects, safe Rust.

#[allow(
    unsafe_code,
    reason = "the C ABI: Envoy's pointers, imported callbacks, exported hooks"
)]
mod abi;
mod filter;
mod guard;
