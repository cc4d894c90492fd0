//! tollgate: Azure API Management functions as one proxy-wasm filter for Envoy.
//!
//! This crate is the glue. `tollgate_core` decides everything; `plugin` (the root context)
//! and `filter` (one request) carry its decisions out through the `host::Host` trait, whose
//! proxy-wasm implementation (`proxy`, wasm32 only) is the one place that talks to Envoy. The
//! glue is tested natively against a recording fake host (`tests`).

// Natively there is no host to call: the glue builds for wasm32, and for its tests.
#[cfg(any(target_arch = "wasm32", test))]
mod filter;
#[cfg(any(target_arch = "wasm32", test))]
mod host;
#[cfg(any(target_arch = "wasm32", test))]
mod parked;
#[cfg(any(target_arch = "wasm32", test))]
mod plugin;
#[cfg(target_arch = "wasm32")]
mod proxy;

#[cfg(test)]
mod tests;
