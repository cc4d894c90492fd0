//! tollgate as an Envoy dynamic module (`envoy.filters.http.dynamic_modules`): a native shared
//! object, `libtollgate.so`, that Envoy 1.40 loads and calls through a C ABI (version
//! "v0.2.0"). It runs the same policy as the wasm filter, through the same glue
//! (tollgate-glue's `Plugin` and `Filter`), with Envoy's dynamic-module callbacks as the host.
//! What is not there yet: docs/development.md, "The native module".
//!
//! - `abi`: the C types, the callbacks imported from Envoy, the exported hooks. The only module
//!   where `unsafe` is allowed; the rest of the crate denies it.
//! - `guard`: every hook body runs under `catch_unwind`; a panic answers the request with a 503
//!   instead of taking Envoy down.
//! - `filter`: the per-configuration and per-stream objects; each hook hands over to the glue.
//! - `host`: the glue's `Host` over the ABI (contexts, deferred re-entering calls, shared
//!   counters, ticks).
//! - `worker`: one glue plugin per configuration per worker thread.
//! - `metrics`: tollgate's metric families on the ABI's labelled metrics.
//! - `grpc`: a unary gRPC call (the rate-limit service) over a streamed HTTP callout.
//! - `logger`: the `log` crate's records into Envoy's log.

// A panic that cannot unwind aborts Envoy: every hook's catch_unwind needs an unwinding build
// (the Makefile builds with the `native` profile; a plain `--release` would not).
#[cfg(panic = "abort")]
compile_error!(
    "tollgate's native module must be built with panic = \"unwind\" (make native-module)"
);

#[allow(
    unsafe_code,
    reason = "the C ABI: Envoy's pointers, imported callbacks, exported hooks"
)]
mod abi;
mod config;
mod filter;
mod grpc;
mod guard;
mod host;
mod logger;
mod metrics;
mod worker;
