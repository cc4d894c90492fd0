//! APIM's `cache-lookup` / `cache-store`: an operation's `cache` section compiled at load, the
//! cache key of a request, and which upstream answers may be kept. The entries themselves live
//! in the process-wide store (`cache/store.rs`), in a fixed set of slots.
//!
//! The key is the operation, the public path, the listed query parameters (sorted by name, so
//! their order does not matter; others ignored), the listed headers and, when `per_consumer`,
//! the consumer: one consumer never sees another's cached answer. It is hashed with
//! SipHash-2-4-128 under a random key drawn once per configuration of the process, so no one
//! can choose URLs that land on a chosen slot, and the whole 128-bit hash is kept in the entry
//! and compared on lookup, so a slot shared by two keys never serves the other's answer.

mod store;

use crate::checks::{check_header_name, check_query_name};
use crate::config::{CacheConfig, CacheLimitsConfig};
use crate::config_error::ConfigError;
use crate::credential::Headers;
use crate::keyed_hash::keyed_hash;
use crate::operation::{MethodSet, OperationId};

pub use store::{hash_key, lookup, prepare, store, CacheEntry, HitReply, Lookup, Stored};

/// `cache_limits.max_bytes` when absent: 16 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// The largest `cache_limits.max_bytes`: 1 GiB.
pub const MAX_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// `max_entry_bytes` when absent (or `max_bytes` when smaller).
pub const DEFAULT_ENTRY_BYTES: u64 = 64 * 1024;
/// The smallest `max_entry_bytes`: room for a response's headers.
pub const MIN_ENTRY_BYTES: u64 = 1024;
/// The most slots (shared-data keys) a cache has: keys can never be deleted, and each costs
/// the host some memory even when empty.
pub const MAX_SLOTS: usize = 65_536;
/// The longest `ttl_s`: a day.
pub const MAX_TTL_S: u64 = 86_400;

/// One operation's `cache` section, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    pub ttl_ms: u64,
    /// Query parameter names that are part of the key, sorted.
    pub vary_by_query: Vec<String>,
    /// Header names (lower case) that are part of the key, in the configured order.
    pub vary_by_headers: Vec<String>,
    pub per_consumer: bool,
    /// The most bytes one stored answer may take (status, headers and body, encoded).
    pub max_entry_bytes: usize,
}

/// The process-wide store of a configuration: how many slots, and how large each may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLayout {
    pub slots: usize,
    pub slot_bytes: usize,
    /// The configuration's own hash: every worker of the process agrees on the cache's hash
    /// key only for the same configuration; another one starts from an empty cache.
    pub config_hash: u64,
}

impl CacheLayout {
    /// The bytes the entries can take at most: every slot full.
    pub fn max_bytes(&self) -> usize {
        self.slots.saturating_mul(self.slot_bytes)
    }
}

/// Checks an operation's `cache` (`at` is the operation's path).
pub fn compile_policy(
    at: &str,
    config: CacheConfig,
    methods: &MethodSet,
    max_bytes: u64,
    key_query: &str,
    key_header: &str,
) -> Result<CachePolicy, ConfigError> {
    let at = format!("{at}.cache");
    if !methods.contains("GET") {
        return Err(ConfigError::rule(
            at,
            "only an operation whose methods hold GET can be cached",
        ));
    }
    if !(1..=MAX_TTL_S).contains(&config.ttl_s) {
        return Err(ConfigError::rule(
            format!("{at}.ttl_s"),
            format!("must be between 1 and {MAX_TTL_S}"),
        ));
    }
    let max_entry_bytes = config
        .max_entry_bytes
        .unwrap_or(DEFAULT_ENTRY_BYTES.min(max_bytes));
    if max_entry_bytes < MIN_ENTRY_BYTES {
        return Err(ConfigError::rule(
            format!("{at}.max_entry_bytes"),
            format!("must be at least {MIN_ENTRY_BYTES}"),
        ));
    }
    if max_entry_bytes > max_bytes {
        return Err(ConfigError::rule(
            format!("{at}.max_entry_bytes"),
            format!("must be at most cache_limits.max_bytes ({max_bytes})"),
        ));
    }
    let mut vary_by_query = config.vary_by_query.unwrap_or_default();
    for (i, name) in vary_by_query.iter().enumerate() {
        let at = format!("{at}.vary_by_query[{i}]");
        check_query_name(&at, name)?;
        if name == key_query {
            return Err(ConfigError::rule(
                at,
                "the subscription key is never part of a cache key (use per_consumer)",
            ));
        }
    }
    vary_by_query.sort();
    vary_by_query.dedup();
    let mut vary_by_headers = Vec::new();
    for (i, name) in config
        .vary_by_headers
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let at = format!("{at}.vary_by_headers[{i}]");
        check_header_name(&at, name)?;
        let lower = name.to_ascii_lowercase();
        if lower == key_header || lower == "authorization" {
            return Err(ConfigError::rule(
                at,
                "credentials are never part of a cache key (use per_consumer)",
            ));
        }
        if !vary_by_headers.contains(&lower) {
            vary_by_headers.push(lower);
        }
    }
    Ok(CachePolicy {
        ttl_ms: config.ttl_s.saturating_mul(1000),
        vary_by_query,
        vary_by_headers,
        per_consumer: config.per_consumer.unwrap_or(true),
        max_entry_bytes: usize::try_from(max_entry_bytes).unwrap_or(usize::MAX),
    })
}

/// `cache_limits.max_bytes`, checked.
pub fn max_bytes(limits: Option<&CacheLimitsConfig>) -> Result<u64, ConfigError> {
    let max_bytes = limits
        .and_then(|limits| limits.max_bytes)
        .unwrap_or(DEFAULT_MAX_BYTES);
    if !(MIN_ENTRY_BYTES..=MAX_MAX_BYTES).contains(&max_bytes) {
        return Err(ConfigError::rule(
            "cache_limits.max_bytes",
            format!("must be between {MIN_ENTRY_BYTES} and {MAX_MAX_BYTES}"),
        ));
    }
    Ok(max_bytes)
}

/// The store for these policies: slots as large as the largest entry allowed, as many as fit
/// in `max_bytes` (at most `MAX_SLOTS`), so the entries never take more than `max_bytes`.
pub fn layout<'a>(
    policies: impl Iterator<Item = &'a CachePolicy>,
    max_bytes: u64,
    config_hash: u64,
) -> Option<CacheLayout> {
    let slot_bytes = policies.map(|policy| policy.max_entry_bytes).max()?;
    let budget = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let slots = (budget / slot_bytes.max(1)).clamp(1, MAX_SLOTS);
    Some(CacheLayout {
        slots,
        slot_bytes,
        config_hash,
    })
}

/// A cacheable request: where its entry lives, and how the answer is to be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRequest {
    pub operation: OperationId,
    pub slot: usize,
    /// The whole keyed hash of the cache key, kept in the entry.
    pub tag: u128,
    /// `Cache-Control: no-cache`: go upstream, and store the answer.
    pub refresh: bool,
    /// A `HEAD`: answered from a GET entry (Envoy sends the headers only, with the GET's
    /// length); its own answer is not stored.
    pub head: bool,
    pub ttl_ms: u64,
    pub max_entry_bytes: usize,
    pub per_consumer: bool,
}

/// What of a request makes up its cache key.
pub struct KeyParts<'r> {
    pub operation: OperationId,
    pub path: &'r str,
    pub query: Option<&'r str>,
    pub headers: &'r Headers,
    pub consumer: Option<&'r str>,
}

/// The bytes hashed into a request's cache key: every part length-prefixed, so no two
/// different requests write the same bytes.
pub fn key_material(policy: &CachePolicy, parts: &KeyParts) -> Vec<u8> {
    let mut material = Vec::with_capacity(128);
    let mut field = |bytes: &[u8]| {
        material.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        material.extend_from_slice(bytes);
    };
    field(&(parts.operation as u64).to_le_bytes());
    field(parts.path.as_bytes());
    // Listed parameters only, by name (stable: repeated values keep their order).
    let mut params: Vec<(&str, &str)> = parts
        .query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            policy
                .vary_by_query
                .iter()
                .any(|listed| listed == name)
                .then_some((name, value))
        })
        .collect();
    params.sort_by(|a, b| a.0.cmp(b.0));
    field(&(params.len() as u64).to_le_bytes());
    for (name, value) in params {
        field(name.as_bytes());
        field(value.as_bytes());
    }
    for name in &policy.vary_by_headers {
        let values: Vec<&[u8]> = parts
            .headers
            .iter()
            .filter(|(present, _)| present == name)
            .map(|(_, value)| value.as_slice())
            .collect();
        field(&(values.len() as u64).to_le_bytes());
        for value in values {
            field(value);
        }
    }
    match (policy.per_consumer, parts.consumer) {
        (true, Some(consumer)) => {
            field(b"consumer");
            field(consumer.as_bytes());
        }
        _ => field(b"shared"),
    }
    material
}

/// The request's place in the cache under the process's hash key.
pub fn cache_request(
    policy: &CachePolicy,
    layout: &CacheLayout,
    hash_key: &[u8; 16],
    parts: &KeyParts,
    method: &str,
) -> Option<CacheRequest> {
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return None,
    };
    let tag = keyed_hash(hash_key, &key_material(policy, parts));
    let slots = layout.slots.max(1) as u128;
    let slot = usize::try_from((tag >> 64) % slots).unwrap_or(0);
    Some(CacheRequest {
        operation: parts.operation,
        slot,
        tag,
        refresh: has_directive(parts.headers, "cache-control", "no-cache"),
        head,
        ttl_ms: policy.ttl_ms,
        max_entry_bytes: policy.max_entry_bytes,
        per_consumer: policy.per_consumer,
    })
}

/// Whether a header (any of its values) carries a `Cache-Control` directive, case-insensitive.
fn has_directive(headers: &Headers, name: &str, directive: &str) -> bool {
    headers
        .iter()
        .filter(|(present, _)| present == name)
        .any(|(_, value)| directive_in(value, directive))
}

fn directive_in(value: &[u8], directive: &str) -> bool {
    value.split(|&b| b == b',').any(|part| {
        let name = part.split(|&b| b == b'=').next().unwrap_or_default();
        name.trim_ascii().eq_ignore_ascii_case(directive.as_bytes())
    })
}

/// Why an upstream answer is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// Only `200` answers are stored.
    Status,
    /// `Cache-Control: no-store`.
    NoStore,
    /// `Cache-Control: private` on an operation cached for every consumer alike.
    Private,
    /// `Set-Cookie`: a cookie is one client's.
    SetCookie,
    /// A header value that is not text cannot be replayed.
    BinaryHeader,
    /// Larger than `max_entry_bytes`.
    TooLarge,
}

/// Headers never stored: the connection's own, those Envoy writes for each answer, and the
/// ones tollgate sets on every answer itself.
const NOT_REPLAYED: [&str; 9] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "date",
    "age",
    "x-cache",
    "x-envoy-upstream-service-time",
    "proxy-connection",
];

/// Whether the upstream's answer (`:status` and headers as received, before tollgate's own
/// edits) may be stored for `request`; `Ok` gives the headers to store.
pub fn storable_headers(
    request: &CacheRequest,
    headers: &Headers,
) -> Result<Vec<(String, String)>, NotStored> {
    let status = headers
        .iter()
        .find(|(name, _)| name == ":status")
        .map(|(_, value)| value.as_slice());
    if status != Some(b"200".as_slice()) {
        return Err(NotStored::Status);
    }
    if has_directive(headers, "cache-control", "no-store") {
        return Err(NotStored::NoStore);
    }
    if !request.per_consumer && has_directive(headers, "cache-control", "private") {
        return Err(NotStored::Private);
    }
    if headers.iter().any(|(name, _)| name == "set-cookie") {
        return Err(NotStored::SetCookie);
    }
    let mut kept = Vec::new();
    for (name, value) in headers {
        if name.starts_with(':') || NOT_REPLAYED.contains(&name.as_str()) {
            continue;
        }
        let value = std::str::from_utf8(value).map_err(|_| NotStored::BinaryHeader)?;
        kept.push((name.clone(), value.to_string()));
    }
    Ok(kept)
}

/// An answer on its way from the upstream, copied as it passes to be stored at its end.
#[derive(Debug)]
pub struct Capture {
    request: CacheRequest,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Bytes the entry takes without its body.
    fixed_bytes: usize,
}

impl Capture {
    /// Starts copying an answer whose headers may be stored.
    pub fn start(request: CacheRequest, headers: Vec<(String, String)>) -> Result<Self, NotStored> {
        let fixed_bytes = store::encoded_len(&headers, 0);
        if fixed_bytes > request.max_entry_bytes {
            return Err(NotStored::TooLarge);
        }
        Ok(Self {
            request,
            headers,
            body: Vec::new(),
            fixed_bytes,
        })
    }

    /// Whether `more` bytes still fit: past `max_entry_bytes` the copy is given up (the answer
    /// itself passes on untouched).
    pub fn fits(&self, more: usize) -> bool {
        self.fixed_bytes
            .saturating_add(self.body.len())
            .saturating_add(more)
            <= self.request.max_entry_bytes
    }

    /// Adds a chunk of the body (as passed to the client); `Err` once it no longer fits.
    pub fn add(&mut self, chunk: &[u8]) -> Result<(), NotStored> {
        if !self.fits(chunk.len()) {
            return Err(NotStored::TooLarge);
        }
        self.body.extend_from_slice(chunk);
        Ok(())
    }

    pub fn operation(&self) -> OperationId {
        self.request.operation
    }

    /// The entry to store, stamped `now_ms`.
    pub fn finish(self, now_ms: u64) -> (CacheRequest, CacheEntry) {
        let entry = CacheEntry {
            tag: self.request.tag,
            stored_ms: now_ms,
            expires_ms: now_ms.saturating_add(self.request.ttl_ms),
            status: 200,
            headers: self.headers,
            body: self.body,
        };
        (self.request, entry)
    }
}

#[cfg(test)]
mod tests;
