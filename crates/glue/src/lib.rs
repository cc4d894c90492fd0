//! The glue between tollgate's policy core and a host (an Envoy extension mechanism).
//! `tollgate_core` decides everything; `plugin` (one configuration, the root context) and
//! `filter` (one request) carry its decisions out through the `host::Host` trait, which each
//! host implements with its own calls into Envoy. The glue is tested natively against a
//! recording fake host (`tests`). `shared_store` is proxy-wasm's shared data for a host that has
//! none (the native module).

pub mod filter;
pub mod host;
mod parked;
pub mod plugin;
pub mod shared_store;

#[cfg(test)]
mod tests;
