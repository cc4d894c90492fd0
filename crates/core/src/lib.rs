//! tollgate's policy core: Azure API Management functions as plain Rust.
//!
//! Configuration is checked and compiled once into a [`Plan`]; per request, [`decide`] reads
//! the plan and the request headers and returns a [`Decision`]. Nothing here knows proxy-wasm
//! or Envoy: the filter crate is the glue that performs host calls, through the traits this
//! crate defines ([`Clock`], [`CounterStore`]).
//!
//! Modules are private; what the glue and the CLI use is re-exported here.

mod body_limit;
mod body_transform;
mod cache;
mod checks;
mod config;
mod config_error;
pub mod connector;
mod cors;
mod credential;
mod deny;
mod dynamic_consumers;
mod error_masking;
mod global_answer;
mod global_limits;
pub mod init;
mod ip_filter;
mod json_keys;
mod jwt;
mod keyed_hash;
mod limits;
mod local_count;
pub mod metrics;
mod operation;
mod path_template;
mod pipeline;
mod plan;
mod rewrite;
mod route_table;
#[cfg(feature = "schema")]
pub mod schema;
mod subscription;
mod template;
mod verdict;

pub use body_limit::{BodyCounter, BodyLimit};
pub use body_transform::{
    declared_length, Failure as TransformFailure, RequestReshape, ResponseReshape, ResponseStep,
};
pub use cache::{
    lookup as cache_lookup, storable_headers, store as cache_store, CacheEntry, CacheLayout,
    CacheRequest, Capture, HitReply, Lookup, NotStored, Stored,
};
pub use config::FailureMode;
pub use config_error::ConfigError;
pub use cors::{CorsHeaders, PreflightReply};
pub use deny::{Denial, Outcome};
pub use error_masking::{loggable, ErrorMasking, MaskedReply, LOGGED_BODY_BYTES};
pub use global_answer::{settle, Settled};
pub use global_limits::{
    GlobalLimits, LogThrottle, RlsAnswer, ServiceFailure, METHOD as RLS_METHOD,
    SERVICE as RLS_SERVICE,
};
pub use ip_filter::{EntryError, PrefixUnion, SourceAddress};
pub use jwt::key_fetch::{Answered, KeyCall, KeyFetch};
pub use jwt::key_waiters::MAX_KEY_WAITERS;
pub use jwt::remote::FetchError;
pub use jwt::token_cache::TokenCache;
pub use keyed_hash::random_hash_key;
pub use limits::{CounterStore, StoreError};
pub use pipeline::{decide, Clock, RequestEnv};
pub use plan::Plan;
pub use rewrite::HeaderEdit;
pub use subscription::{KeyHash, KnownKeys};
pub use verdict::{Decision, Forward, GlobalCheck, Trace, Verdict};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod testing;
