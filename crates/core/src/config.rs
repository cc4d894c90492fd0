//! The JSON configuration exactly as users write it (docs/configuration.md).
//!
//! These types only describe the shape; every rule that needs more than a type (known products,
//! unique keys, valid templates...) is checked in `plan.rs`, which turns this into the plan the
//! request path reads.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub subscription_key: SubscriptionKeyConfig,
    pub jwt: Option<JwtConfig>,
    pub products: Option<BTreeMap<String, ProductConfig>>,
    pub consumers: Option<Vec<ConsumerConfig>>,
    pub operations: Vec<OperationConfig>,
    #[serde(default)]
    pub unmatched: Unmatched,
    pub rate_limit_headers: Option<RateLimitHeadersConfig>,
    pub global_limits: Option<GlobalLimitsConfig>,
    /// Largest request body, in bytes (absent: no limit).
    pub max_request_body_bytes: Option<u64>,
    /// 5xx bodies replaced by APIM-shaped ones naming the request id (default false).
    pub mask_backend_errors: Option<bool>,
    pub cors: Option<CorsConfig>,
    pub ip_filter: Option<IpFilterConfig>,
    pub cache_limits: Option<CacheLimitsConfig>,
}

/// An operation's response cache (APIM's `cache-lookup` / `cache-store`); checked in
/// `cache.rs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(deserialize_with = "whole_number")]
    pub ttl_s: u64,
    pub vary_by_query: Option<Vec<String>>,
    pub vary_by_headers: Option<Vec<String>>,
    pub per_consumer: Option<bool>,
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub max_entry_bytes: Option<u64>,
}

/// What the whole response cache may hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheLimitsConfig {
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub max_bytes: Option<u64>,
}

/// APIM's `cors` policy: which browser origins may call the API, with what
/// (docs/configuration.md, "CORS").
/// Checked and compiled in `cors.rs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Option<Vec<String>>,
    pub allowed_headers: Option<Vec<String>>,
    pub expose_headers: Option<Vec<String>>,
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub max_age_s: Option<u64>,
    pub terminate_unmatched: Option<bool>,
}

/// `ip_filter` (APIM's `ip-filter` policy): exactly one of `allow` or `forbid`
/// (docs/configuration.md, "Caller IP filter"); compiled in `ip_filter.rs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpFilterConfig {
    pub allow: Option<Vec<IpEntryConfig>>,
    pub forbid: Option<Vec<IpEntryConfig>>,
}

/// One `ip_filter` entry: an address or CIDR prefix as text, or APIM's `address-range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpEntryConfig {
    Text(String),
    Range { from: String, to: String },
}

impl<'de> Deserialize<'de> for IpEntryConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Range {
            from: String,
            to: String,
        }
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Ok(Self::Text(text)),
            value @ serde_json::Value::Object(_) => serde_json::from_value(value)
                .map(|Range { from, to }| Self::Range { from, to })
                .map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom(
                "must be an IP address, a CIDR prefix or {\"from\": <address>, \"to\": <address>}",
            )),
        }
    }
}

/// The rate-limit service that counts `"scope": "global"` limits (docs/configuration.md,
/// "Global limits").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalLimitsConfig {
    pub cluster: String,
    pub domain: Option<String>,
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub timeout_ms: Option<u64>,
    pub failure_mode: Option<FailureMode>,
}

/// What a request gets when the rate-limit service cannot answer.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Count with this process's own counters (each replica holds the limit on its own).
    #[default]
    Local,
    /// 503, `Retry-After: 1`.
    Deny,
    /// Admit.
    Allow,
}

impl FailureMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Deny => "deny",
            Self::Allow => "allow",
        }
    }
}

/// Where a limit is counted.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// In this Envoy process (proxy-wasm shared data).
    #[default]
    Local,
    /// By the rate-limit service, across every replica and restart.
    Global,
}

/// `"none"`, or the names of the three headers (each defaulting to `x-ratelimit-*`).
#[derive(Debug)]
pub enum RateLimitHeadersConfig {
    Off,
    Names(RateLimitHeaderNames),
}

impl<'de> Deserialize<'de> for RateLimitHeadersConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) if text == "none" => Ok(Self::Off),
            value @ serde_json::Value::Object(_) => serde_json::from_value(value)
                .map(Self::Names)
                .map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom(
                "must be \"none\" or an object {limit, remaining, reset} of header names",
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitHeaderNames {
    pub limit: Option<String>,
    pub remaining: Option<String>,
    pub reset: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeyConfig {
    #[serde(default = "default_key_header")]
    pub header: String,
    #[serde(default = "default_key_query")]
    pub query: String,
}

impl Default for SubscriptionKeyConfig {
    fn default() -> Self {
        Self {
            header: default_key_header(),
            query: default_key_query(),
        }
    }
}

fn default_key_header() -> String {
    "Ocp-Apim-Subscription-Key".to_string()
}

fn default_key_query() -> String {
    "subscription-key".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    pub issuers: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub algorithms: Option<Vec<String>>,
    pub jwks: Option<JwksConfig>,
    pub openid_config: Option<RemoteKeysConfig>,
    pub jwks_uri: Option<RemoteKeysConfig>,
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub unknown_kid_refetch_s: Option<u64>,
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub clock_skew_s: Option<u64>,
    pub consumer_claim: Option<String>,
    pub required_claims: Option<Vec<RequiredClaimConfig>>,
    pub claims_to_headers: Option<BTreeMap<String, String>>,
    pub forward_token: Option<bool>,
    pub default_product: Option<String>,
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub token_cache_size: Option<u64>,
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub max_dynamic_consumers: Option<u64>,
}

/// Where signing keys are fetched from, through an Envoy cluster.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteKeysConfig {
    pub url: String,
    pub cluster: String,
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub refresh_interval_s: Option<u64>,
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub timeout_ms: Option<u64>,
}

/// A JSON Web Key Set as an identity provider publishes it.
#[derive(Debug, Deserialize)]
pub struct JwksConfig {
    pub keys: Vec<JwkConfig>,
}

/// One JSON Web Key (RFC 7517). Members tollgate does not use (`x5c`, `x5t`, Entra's `issuer`,
/// ...) are ignored rather than refused, as RFC 7517 asks, so a key set can be pasted as
/// published.
#[derive(Debug, Deserialize)]
pub struct JwkConfig {
    pub kty: String,
    pub kid: Option<String>,
    pub alg: Option<String>,
    #[serde(rename = "use")]
    pub key_use: Option<String>,
    pub n: Option<String>,
    pub e: Option<String>,
    pub crv: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
    pub k: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredClaimConfig {
    pub name: String,
    pub any_of: Option<Vec<String>>,
    pub all_of: Option<Vec<String>>,
    /// Splits a string claim into values (`" "` for Entra's `scp`).
    pub separator: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductConfig {
    pub rate_limit: Option<LimitConfig>,
    pub quota: Option<LimitConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    #[serde(deserialize_with = "whole_number")]
    pub calls: u64,
    #[serde(deserialize_with = "whole_number")]
    pub renewal_period_s: u64,
    #[serde(default)]
    pub scope: Scope,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    pub id: String,
    pub product: String,
    pub keys: Option<Vec<String>>,
    pub jwt_client_ids: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationConfig {
    pub name: String,
    pub methods: Option<Vec<String>>,
    pub path: Option<String>,
    pub path_prefix: Option<String>,
    pub path_template: Option<String>,
    #[serde(default)]
    pub auth: AuthMode,
    pub products: Option<Vec<String>>,
    pub rewrite: Option<String>,
    pub request_headers: Option<HeaderRulesConfig>,
    pub response_headers: Option<HeaderRulesConfig>,
    #[serde(default)]
    pub max_request_body_bytes: Override<u64>,
    #[serde(default)]
    pub cors: Override<CorsConfig>,
    #[serde(default)]
    pub ip_filter: Override<IpFilterConfig>,
    pub cache: Option<CacheConfig>,
    pub request_body: Option<BodyTransformConfig>,
    pub response_body: Option<BodyTransformConfig>,
    /// The operation's own `mask_backend_errors` (absent: the top level's).
    pub mask_backend_errors: Option<bool>,
}

/// `request_body` / `response_body`: a JMESPath transform of a JSON body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyTransformConfig {
    pub transform: String,
    #[serde(default, deserialize_with = "optional_whole_number")]
    pub max_bytes: Option<u64>,
    /// The body as the public sends or receives it (a JSON Schema object), for the connector.
    pub public_schema: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HeaderRulesConfig {
    pub set: Option<BTreeMap<String, String>>,
    pub append: Option<BTreeMap<String, String>>,
    pub remove: Option<Vec<String>>,
}

/// How an operation authenticates its callers. APIM requires a subscription by default, and so
/// do we: an operation open to anyone must say `"auth": "none"`.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    #[default]
    SubscriptionKey,
    Jwt,
    Either,
    Both,
    None,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::SubscriptionKey => "subscription_key",
            AuthMode::Jwt => "jwt",
            AuthMode::Either => "either",
            AuthMode::Both => "both",
            AuthMode::None => "none",
        }
    }
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    #[default]
    Reject,
    Pass,
}

fn optional_whole_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    whole_number(deserializer).map(Some)
}

/// A non-negative whole number. Istio hands `pluginConfig` to Envoy as a protobuf `Struct`,
/// whose numbers are doubles, so `5` may arrive as `5.0`; both mean 5, `5.5` is refused.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(value) = number.as_u64() {
        return Ok(value);
    }
    match number.as_f64() {
        Some(value) if value >= 0.0 && value.fract() == 0.0 && value < u64::MAX as f64 => {
            Ok(value as u64)
        }
        _ => Err(serde::de::Error::custom(format!(
            "expected a whole number of at least 0, got {number}"
        ))),
    }
}

/// An operation's own section of an API-wide policy (`ip_filter`, `cors`, ...): absent, the
/// top level's applies; `null`, none applies; an object replaces the top level's whole.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Override<T> {
    #[default]
    Inherit,
    Off,
    Set(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Override<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Only called when the key is present (fields use `#[serde(default)]`): null = off.
        Ok(match Option::<T>::deserialize(deserializer)? {
            None => Self::Off,
            Some(section) => Self::Set(section),
        })
    }
}

impl<T> Override<T> {
    /// The section that applies to the operation, given the top level's.
    pub fn resolve<'a>(&'a self, top_level: Option<&'a T>) -> Option<&'a T> {
        match self {
            Self::Inherit => top_level,
            Self::Off => None,
            Self::Set(section) => Some(section),
        }
    }
}

#[cfg(test)]
mod override_tests {
    use super::Override;

    #[derive(Debug, serde::Deserialize)]
    struct Operation {
        #[serde(default)]
        section: Override<u32>,
    }

    #[test]
    fn absent_inherits_null_switches_off_a_value_replaces() {
        let read = |text: &str| serde_json::from_str::<Operation>(text).unwrap().section;
        assert_eq!(read("{}"), Override::Inherit);
        assert_eq!(read(r#"{"section": null}"#), Override::Off);
        assert_eq!(read(r#"{"section": 7}"#), Override::Set(7));
        assert_eq!(Override::Inherit.resolve(Some(&1)), Some(&1));
        assert_eq!(Override::<u32>::Off.resolve(Some(&1)), None);
        assert_eq!(Override::Set(2).resolve(Some(&1)), Some(&2));
        assert!(serde_json::from_str::<Operation>(r#"{"section": "x"}"#).is_err());
    }
}
