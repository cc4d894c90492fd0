//! The JSON configuration exactly as users write it (docs/configuration.md).
//!
//! These types only describe the shape; every rule that needs more than a type (known products,
//! unique keys, valid templates...) is checked in `plan.rs`, which turns this into the plan the
//! request path reads.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

// With the `schema` feature (the CLI's), these types also derive `schemars::JsonSchema`: the
// doc comments below are the schema's descriptions (user-facing: docs/configuration.md says
// the same), and `schemars(...)` attributes add what the compile steps check and a schema can
// say (src/schema.rs). `Serialize` is derived there too, only so that defaults show in the
// schema. Without the feature none of it is compiled.

/// A tollgate plugin configuration: Envoy's `configuration` of the Wasm filter, or Istio's
/// `WasmPlugin.spec.pluginConfig` (docs/configuration.md).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where subscription keys are read: a header, then a query parameter.
    #[serde(default)]
    pub subscription_key: SubscriptionKeyConfig,
    /// JWT validation (Entra ID and other OpenID providers); needed by operations whose `auth`
    /// is `jwt`, `either` or `both`.
    pub jwt: Option<JwtConfig>,
    /// Products by name: the limits their consumers get. Names are printable ASCII without
    /// spaces, at most 128 bytes.
    #[cfg_attr(
        feature = "schema",
        schemars(extend(
            "minProperties" = 1,
            "propertyNames" = {"pattern": crate::schema::IDENTIFIER}
        ))
    )]
    pub products: Option<BTreeMap<String, ProductConfig>>,
    /// The callers: each on one product, with subscription keys, JWT client ids, or both.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub consumers: Option<Vec<ConsumerConfig>>,
    /// The API's operations; a request takes the first that matches it (literal templates
    /// before parameters).
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub operations: Vec<OperationConfig>,
    /// What a request no operation matches gets.
    #[serde(default)]
    pub unmatched: Unmatched,
    /// `"none"`, or the names of the rate-limit response headers.
    pub rate_limit_headers: Option<RateLimitHeadersConfig>,
    /// The rate-limit service that counts `"scope": "global"` limits.
    pub global_limits: Option<GlobalLimitsConfig>,
    /// The largest request body, in bytes, for every operation and for requests
    /// `unmatched: pass` forwards (absent: no limit).
    #[serde(default, deserialize_with = "nullable_whole_number")]
    pub max_request_body_bytes: Option<u64>,
    /// 5xx bodies reaching the client are replaced by APIM-shaped ones naming the request id
    /// (default false).
    #[cfg_attr(feature = "schema", schemars(extend("default" = false)))]
    pub mask_backend_errors: Option<bool>,
    /// APIM's `cors` policy, for every operation and for requests no operation matches.
    pub cors: Option<CorsConfig>,
    /// Caller addresses let in or kept out, for every operation and for requests no operation
    /// matches.
    pub ip_filter: Option<IpFilterConfig>,
    /// What the whole response cache may hold.
    pub cache_limits: Option<CacheLimitsConfig>,
}

/// An operation's response cache (APIM's `cache-lookup` / `cache-store`).
// Checked in `cache.rs`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long an entry is served, in seconds.
    #[serde(deserialize_with = "whole_number")]
    #[cfg_attr(
        feature = "schema",
        schemars(range(min = 1, max = crate::cache::MAX_TTL_S))
    )]
    pub ttl_s: u64,
    /// Query parameters that are part of the key (never the subscription-key parameter).
    #[cfg_attr(
        feature = "schema",
        schemars(inner(pattern(crate::schema::QUERY_NAME)))
    )]
    pub vary_by_query: Option<Vec<String>>,
    /// Request headers that are part of the key, case-insensitive (never `Authorization` or the
    /// key header).
    #[cfg_attr(feature = "schema", schemars(inner(pattern(crate::schema::TOKEN))))]
    pub vary_by_headers: Option<Vec<String>>,
    /// Each consumer has its own entries (default true).
    #[cfg_attr(feature = "schema", schemars(extend("default" = true)))]
    pub per_consumer: Option<bool>,
    /// The largest stored answer in bytes (default 65536, or `cache_limits.max_bytes` if
    /// smaller); at most `cache_limits.max_bytes`.
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[cfg_attr(
        feature = "schema",
        schemars(
            with = "u64",
            range(min = crate::cache::MIN_ENTRY_BYTES, max = crate::cache::MAX_MAX_BYTES)
        )
    )]
    pub max_entry_bytes: Option<u64>,
}

/// What the whole response cache may hold.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CacheLimitsConfig {
    /// The most bytes all entries take in one Envoy process (default 16777216).
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[cfg_attr(
        feature = "schema",
        schemars(
            with = "u64",
            range(min = crate::cache::MIN_ENTRY_BYTES, max = crate::cache::MAX_MAX_BYTES)
        )
    )]
    #[cfg_attr(feature = "schema", schemars(extend("default" = crate::cache::DEFAULT_MAX_BYTES)))]
    pub max_bytes: Option<u64>,
}

/// APIM's `cors` policy: which browser origins may call the API, with what.
// Checked and compiled in `cors.rs`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call: each `scheme://host[:port]`, one leading wildcard label
    /// (`https://*.powerapps.com`), or `*` alone.
    #[cfg_attr(feature = "schema", schemars(length(min = 1), inner(length(min = 1))))]
    pub allowed_origins: Vec<String>,
    /// Methods a preflight may ask for (default `["GET", "POST"]`); `*` alone for any.
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1), inner(pattern(crate::schema::TOKEN)))
    )]
    #[cfg_attr(feature = "schema", schemars(extend("default" = crate::cors::DEFAULT_METHODS)))]
    pub allowed_methods: Option<Vec<String>>,
    /// Request headers a preflight may ask for (default none); `*` alone for any.
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1), inner(pattern(crate::schema::TOKEN)))
    )]
    pub allowed_headers: Option<Vec<String>>,
    /// Response headers a page may read (default none); `*` alone only without
    /// `allow_credentials`.
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1), inner(pattern(crate::schema::TOKEN)))
    )]
    pub expose_headers: Option<Vec<String>>,
    /// Sends `Access-Control-Allow-Credentials: true`.
    #[serde(default)]
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age` on preflight answers, in seconds (default none).
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "u64", range(max = crate::cors::MAX_AGE_LIMIT_S))
    )]
    pub max_age_s: Option<u64>,
    /// A preflight that does not match gets an empty 200 (true, the default), or goes on as
    /// any request (false).
    #[cfg_attr(feature = "schema", schemars(extend("default" = true)))]
    pub terminate_unmatched: Option<bool>,
}

/// APIM's `ip-filter` policy: exactly one of `allow` or `forbid`.
// Compiled in `ip_filter.rs`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = crate::schema::one_ip_list))]
#[serde(deny_unknown_fields)]
pub struct IpFilterConfig {
    /// Only callers inside these addresses, prefixes and ranges are let in.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub allow: Option<Vec<IpEntryConfig>>,
    /// Callers inside these addresses, prefixes and ranges are refused.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
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

/// What `IpEntryConfig::deserialize` accepts.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for IpEntryConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IpEntry".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An IPv4 or IPv6 address, a CIDR prefix, or a range.",
            "anyOf": [
                {
                    "description": "An address (`13.66.201.169`, `2603:1030::1`) or a CIDR \
                                    prefix without host bits (`13.66.140.128/28`).",
                    "type": "string"
                },
                {
                    "description": "APIM's `address-range`: both ends included, one IP version.",
                    "type": "object",
                    "properties": {
                        "from": {"type": "string"},
                        "to": {"type": "string"}
                    },
                    "required": ["from", "to"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// The rate-limit service that counts `"scope": "global"` limits.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GlobalLimitsConfig {
    /// The Envoy cluster (HTTP/2) of the rate-limit service.
    #[cfg_attr(feature = "schema", schemars(pattern(crate::schema::PRINTABLE)))]
    pub cluster: String,
    /// The RLS domain: the counters' namespace (default `tollgate`). Services that share one
    /// Redis need distinct domains.
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1, max = crate::global_limits::MAX_DOMAIN_BYTES))
    )]
    #[cfg_attr(feature = "schema", schemars(extend("default" = crate::global_limits::DEFAULT_DOMAIN)))]
    pub domain: Option<String>,
    /// How long a request waits for the service's answer, in milliseconds (default 50).
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[cfg_attr(
        feature = "schema",
        schemars(
            with = "u64",
            range(min = 1, max = crate::global_limits::MAX_TIMEOUT_MS)
        )
    )]
    #[cfg_attr(feature = "schema", schemars(extend("default" = crate::global_limits::DEFAULT_TIMEOUT_MS)))]
    pub timeout_ms: Option<u64>,
    /// What a request gets when the service cannot answer (default `local`).
    #[cfg_attr(feature = "schema", schemars(extend("default" = FailureMode::default())))]
    pub failure_mode: Option<FailureMode>,
}

/// What a request gets when the rate-limit service cannot answer.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// In this Envoy process (one pod), from zero at each restart.
    #[default]
    Local,
    /// By the rate-limit service (`global_limits`), across every replica and restart.
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

/// What `RateLimitHeadersConfig::deserialize` accepts.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for RateLimitHeadersConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RateLimitHeaders".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                {
                    "description": "No rate-limit headers are sent.",
                    "type": "string",
                    "const": "none"
                },
                generator.subschema_for::<RateLimitHeaderNames>()
            ]
        })
    }
}

/// The names of the rate-limit response headers; the three must differ.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RateLimitHeaderNames {
    /// Default `x-ratelimit-limit`.
    #[cfg_attr(feature = "schema", schemars(pattern(crate::schema::TOKEN)))]
    pub limit: Option<String>,
    /// Default `x-ratelimit-remaining`.
    #[cfg_attr(feature = "schema", schemars(pattern(crate::schema::TOKEN)))]
    pub remaining: Option<String>,
    /// Default `x-ratelimit-reset`.
    #[cfg_attr(feature = "schema", schemars(pattern(crate::schema::TOKEN)))]
    pub reset: Option<String>,
}

/// Where subscription keys are read. The header wins over the query parameter; both are
/// removed before the upstream.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeyConfig {
    /// The header carrying the key.
    #[serde(default = "default_key_header")]
    #[cfg_attr(feature = "schema", schemars(pattern(crate::schema::TOKEN)))]
    pub header: String,
    /// The query parameter carrying the key.
    #[serde(default = "default_key_query")]
    #[cfg_attr(feature = "schema", schemars(pattern(crate::schema::QUERY_NAME)))]
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

/// JWT validation: tokens from `Authorization: Bearer <token>`. Needs signing keys: `jwks`,
/// `openid_config` or `jwks_uri` (one of the last two at most).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = crate::schema::jwt_key_sources))]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The token's `iss` must be one of these. Set both `issuers` and `audiences` for Entra ID.
    #[cfg_attr(feature = "schema", schemars(length(min = 1), inner(length(min = 1))))]
    pub issuers: Option<Vec<String>>,
    /// The token's `aud` (string or array) must hold one of these.
    #[cfg_attr(feature = "schema", schemars(length(min = 1), inner(length(min = 1))))]
    pub audiences: Option<Vec<String>>,
    /// The algorithms a token may be signed with (default `["RS256"]`); at least one key must
    /// fit one of them.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<Vec<crate::schema::AlgorithmName>>", length(min = 1))
    )]
    #[cfg_attr(feature = "schema", schemars(extend("default" = crate::jwt::DEFAULT_ALGORITHMS.map(|alg| alg.name()))))]
    pub algorithms: Option<Vec<String>>,
    /// Inline signing keys, as a JSON Web Key Set.
    pub jwks: Option<JwksConfig>,
    /// Keys found through an OpenID discovery document, fetched through an Envoy cluster.
    pub openid_config: Option<RemoteKeysConfig>,
    /// Keys fetched from a JWKS URL through an Envoy cluster.
    pub jwks_uri: Option<RemoteKeysConfig>,
    /// A token with an unknown `kid` may trigger a refetch at most this often, in seconds
    /// (default 300; 0 = never).
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[cfg_attr(feature = "schema", schemars(with = "u64"))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = crate::jwt::remote::DEFAULT_UNKNOWN_KID_REFETCH_S)))]
    pub unknown_kid_refetch_s: Option<u64>,
    /// Widens the `exp`, `nbf` and `iat` checks, in seconds (default 0).
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[cfg_attr(feature = "schema", schemars(with = "u64"))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 0)))]
    pub clock_skew_s: Option<u64>,
    /// The claim naming the calling client (default `azp`; Entra v1 tokens: `appid`).
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = crate::jwt::DEFAULT_CONSUMER_CLAIM)))]
    pub consumer_claim: Option<String>,
    /// Claims a token must carry, with the values they must hold.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub required_claims: Option<Vec<RequiredClaimConfig>>,
    /// Scalar claims copied into request headers: claim name -> header name.
    #[cfg_attr(
        feature = "schema",
        schemars(extend(
            "propertyNames" = {"minLength": 1},
            "additionalProperties" = {"type": "string", "pattern": crate::schema::TOKEN}
        ))
    )]
    pub claims_to_headers: Option<BTreeMap<String, String>>,
    /// `false` removes `Authorization` before the upstream (default true).
    #[cfg_attr(feature = "schema", schemars(extend("default" = true)))]
    pub forward_token: Option<bool>,
    /// A valid token whose client is no configured consumer becomes consumer `jwt:<client>`
    /// on this product (instead of 403).
    pub default_product: Option<String>,
    /// Entries of the per-VM verified-token cache (default 1024; 0 turns it off).
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "u64", range(max = crate::jwt::MAX_TOKEN_CACHE_SIZE))
    )]
    #[cfg_attr(feature = "schema", schemars(extend("default" = crate::jwt::token_cache::DEFAULT_CAPACITY)))]
    pub token_cache_size: Option<u64>,
    /// Places for the counters of `jwt:<client>` consumers of a limited `default_product`
    /// (default 1000).
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[cfg_attr(
        feature = "schema",
        schemars(
            with = "u64",
            range(min = 1, max = crate::dynamic_consumers::MAX_POOL_SIZE)
        )
    )]
    #[cfg_attr(feature = "schema", schemars(extend("default" = crate::dynamic_consumers::DEFAULT_POOL_SIZE)))]
    pub max_dynamic_consumers: Option<u64>,
}

/// Where signing keys are fetched from, through an Envoy cluster.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RemoteKeysConfig {
    /// The document's `http://` or `https://` URL.
    #[cfg_attr(feature = "schema", schemars(pattern(crate::schema::URL)))]
    pub url: String,
    /// The Envoy cluster it is fetched through (which carries TLS).
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub cluster: String,
    /// Seconds between fetches (default 3600).
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[cfg_attr(feature = "schema", schemars(with = "u64", range(min = 1)))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = crate::jwt::remote::DEFAULT_REFRESH_INTERVAL_S)))]
    pub refresh_interval_s: Option<u64>,
    /// How long a fetch may take, in milliseconds (default 5000).
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[cfg_attr(
        feature = "schema",
        schemars(
            with = "u64",
            range(min = 1, max = crate::jwt::remote::MAX_TIMEOUT_MS)
        )
    )]
    #[cfg_attr(feature = "schema", schemars(extend("default" = crate::jwt::remote::DEFAULT_TIMEOUT_MS)))]
    pub timeout_ms: Option<u64>,
}

/// A JSON Web Key Set as an identity provider publishes it.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JwksConfig {
    /// The keys; at least one must be a usable signing key.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub keys: Vec<JwkConfig>,
}

/// One JSON Web Key (RFC 7517): RSA (`n`, `e`; 2048 to 8192 bits), EC (`crv` P-256 or P-384,
/// `x`, `y`), OKP (`crv` Ed25519, `x`) or oct (`k`, at least 32 bytes). Members tollgate does
/// not use (`x5c`, `x5t`, Entra's `issuer`, ...) are ignored rather than refused, as RFC 7517
/// asks, so a key set can be pasted as published.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JwkConfig {
    /// Key type: `RSA`, `EC`, `OKP` or `oct`.
    pub kty: String,
    /// Key id, matched against a token's `kid`.
    pub kid: Option<String>,
    /// Restricts the key to this algorithm.
    pub alg: Option<String>,
    /// `sig`; keys with `enc` are left out.
    #[serde(rename = "use")]
    pub key_use: Option<String>,
    pub n: Option<String>,
    pub e: Option<String>,
    pub crv: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
    pub k: Option<String>,
}

/// A claim the token must carry: exactly one of `any_of` or `all_of`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = crate::schema::one_claim_rule))]
#[serde(deny_unknown_fields)]
pub struct RequiredClaimConfig {
    /// The claim's name.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub name: String,
    /// The claim must hold at least one of these values.
    #[cfg_attr(feature = "schema", schemars(length(min = 1), inner(length(min = 1))))]
    pub any_of: Option<Vec<String>>,
    /// The claim must hold every one of these values.
    #[cfg_attr(feature = "schema", schemars(length(min = 1), inner(length(min = 1))))]
    pub all_of: Option<Vec<String>>,
    /// Splits a string claim into values (`" "` for Entra's `scp`).
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub separator: Option<String>,
}

/// A product: the limits its consumers get; absent limits are unlimited.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductConfig {
    /// Burst protection: at most `calls` in a window that opens with the consumer's first
    /// request.
    pub rate_limit: Option<LimitConfig>,
    /// Volume: at most `calls` in fixed windows aligned to the Unix epoch.
    pub quota: Option<LimitConfig>,
}

/// A rate limit or a quota.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Requests admitted per window (a global limit: at most 4294967295).
    #[serde(deserialize_with = "whole_number")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub calls: u64,
    /// The window, in seconds, at most a year. A global limit's is one of the service's
    /// units: 1, 60, 3600, 86400, 604800, 2592000 or 31536000.
    #[serde(deserialize_with = "whole_number")]
    #[cfg_attr(
        feature = "schema",
        schemars(range(min = 1, max = crate::limits::MAX_PERIOD_S))
    )]
    pub renewal_period_s: u64,
    /// Where the limit is counted; `global` needs the `global_limits` section.
    #[serde(default)]
    pub scope: Scope,
}

/// A caller: its product and its credentials (`keys`, `jwt_client_ids`, or both).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = crate::schema::consumer_credentials))]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Unique; printable ASCII without spaces, at most 128 bytes, not starting with `jwt:`.
    /// Sent upstream by `{consumer}` and used as a metric label.
    #[cfg_attr(feature = "schema", schemars(pattern(crate::schema::IDENTIFIER)))]
    pub id: String,
    /// A product of `products`.
    pub product: String,
    /// SHA-256 hashes of its subscription keys (`tollgate new-key`, `tollgate hash-key`);
    /// several for rotation. Unique across all consumers.
    #[cfg_attr(
        feature = "schema",
        schemars(
            length(min = 1),
            inner(pattern(crate::schema::KEY_HASH)),
            extend("uniqueItems" = true)
        )
    )]
    pub keys: Option<Vec<String>>,
    /// Values of the token's `consumer_claim` that are this consumer. Unique across consumers.
    #[cfg_attr(
        feature = "schema",
        schemars(
            length(min = 1),
            inner(length(min = 1)),
            extend("uniqueItems" = true)
        )
    )]
    pub jwt_client_ids: Option<Vec<String>>,
}

/// An operation: which requests it matches (`methods` and exactly one of `path`,
/// `path_prefix` or `path_template`) and the policy they get.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = crate::schema::one_path))]
#[serde(deny_unknown_fields)]
pub struct OperationConfig {
    /// Unique; printable ASCII without spaces, at most 128 bytes. A metric label.
    #[cfg_attr(feature = "schema", schemars(pattern(crate::schema::IDENTIFIER)))]
    pub name: String,
    /// HTTP methods, compared upper-cased (absent: any). `GET` also matches `HEAD`.
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1), inner(pattern(crate::schema::TOKEN)))
    )]
    pub methods: Option<Vec<String>>,
    /// The exact path.
    #[cfg_attr(feature = "schema", schemars(pattern(crate::schema::PATH)))]
    pub path: Option<String>,
    /// A path prefix.
    #[cfg_attr(feature = "schema", schemars(pattern(crate::schema::PATH)))]
    pub path_prefix: Option<String>,
    /// An APIM URL template matching the whole path: literal and `{name}` segments
    /// (`/invoices/{invoice_id}`).
    #[cfg_attr(feature = "schema", schemars(pattern(crate::schema::PATH)))]
    pub path_template: Option<String>,
    /// How callers authenticate (default `subscription_key`).
    #[serde(default)]
    pub auth: AuthMode,
    /// Products allowed to call (absent: any); not with `auth: none`.
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1), inner(pattern(crate::schema::IDENTIFIER)))
    )]
    pub products: Option<Vec<String>>,
    /// Replaces the matched path (exact), prefix, or whole templated path (with the
    /// template's `{name}`s filled from the request); the query string is kept.
    #[cfg_attr(feature = "schema", schemars(pattern(crate::schema::PATH)))]
    pub rewrite: Option<String>,
    /// Edits of the request's headers before the upstream.
    pub request_headers: Option<HeaderRulesConfig>,
    /// Edits of the response's headers before the client.
    pub response_headers: Option<HeaderRulesConfig>,
    /// The operation's own request size limit, in bytes, replacing the top level's; `null`:
    /// no limit for this operation.
    #[serde(default, deserialize_with = "override_whole_number")]
    pub max_request_body_bytes: Override<u64>,
    /// The operation's own `cors` section, replacing the top level's whole; `null`: no CORS
    /// for this operation.
    #[serde(default)]
    pub cors: Override<CorsConfig>,
    /// The operation's own caller IP filter, replacing the top level's whole; `null`: no
    /// filter for this operation.
    #[serde(default)]
    pub ip_filter: Override<IpFilterConfig>,
    /// The operation's response cache: only with `GET` among its methods, not beside a
    /// `response_body` transform.
    pub cache: Option<CacheConfig>,
    /// A JMESPath transform of the JSON request body.
    pub request_body: Option<BodyTransformConfig>,
    /// A JMESPath transform of 2xx JSON response bodies.
    pub response_body: Option<BodyTransformConfig>,
    /// The operation's own `mask_backend_errors` (absent: the top level's).
    pub mask_backend_errors: Option<bool>,
}

/// `request_body` / `response_body`: a JMESPath transform of a JSON body.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BodyTransformConfig {
    /// A JMESPath expression over the context object (`body`, `consumer`, `product`,
    /// `operation`, `claims`, `query`, `headers`, and `status` for a response); its result is
    /// the new body.
    #[cfg_attr(
        feature = "schema",
        schemars(length(
            min = 1,
            max = crate::body_transform::expression::MAX_EXPRESSION_BYTES
        ))
    )]
    pub transform: String,
    /// The largest body transformed, in bytes (default 1048576).
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[cfg_attr(feature = "schema", schemars(with = "u64", range(min = 1)))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = crate::body_transform::DEFAULT_MAX_BYTES)))]
    pub max_bytes: Option<u64>,
    /// The body as the public sends or receives it (a JSON Schema object), for
    /// `tollgate connector`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::PublicSchema>")
    )]
    pub public_schema: Option<serde_json::Value>,
}

/// Header edits: `set` replaces, `append` adds, `remove` drops. A header may appear in only
/// one of them; no pseudo-headers.
#[derive(Debug, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderRulesConfig {
    /// Header name -> template: literal text with `{consumer}`, `{product}`, `{operation}` and
    /// `{claim:<name>}`.
    #[cfg_attr(
        feature = "schema",
        schemars(extend("propertyNames" = {"pattern": crate::schema::TOKEN}))
    )]
    pub set: Option<BTreeMap<String, String>>,
    /// Header name -> template, added beside the header's other values.
    #[cfg_attr(
        feature = "schema",
        schemars(extend("propertyNames" = {"pattern": crate::schema::TOKEN}))
    )]
    pub append: Option<BTreeMap<String, String>>,
    /// Header names to remove.
    #[cfg_attr(
        feature = "schema",
        schemars(
            length(min = 1),
            inner(pattern(crate::schema::TOKEN)),
            extend("uniqueItems" = true)
        )
    )]
    pub remove: Option<Vec<String>>,
}

/// How an operation authenticates its callers. APIM requires a subscription by default, and so
/// do we: an operation open to anyone must say `"auth": "none"`.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// A subscription key (header or query parameter).
    #[default]
    SubscriptionKey,
    /// A JWT (needs the `jwt` section).
    Jwt,
    /// A subscription key or a JWT (needs the `jwt` section).
    Either,
    /// A subscription key (it names the consumer) and a valid JWT (needs the `jwt` section).
    Both,
    /// Anyone: no consumer, no limits.
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

/// What a request no operation matches gets.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    /// 404.
    #[default]
    Reject,
    /// Forwarded untouched.
    Pass,
}

fn optional_whole_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    whole_number(deserializer).map(Some)
}

/// A whole number or `null` (= absent), for a field that always took `null`.
fn nullable_whole_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    Option::<serde_json::Number>::deserialize(deserializer)?
        .map(whole)
        .transpose()
}

/// An operation's own whole number: `null` switches the top level's off (see `Override`).
fn override_whole_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Override<u64>, D::Error> {
    Ok(match nullable_whole_number(deserializer)? {
        None => Override::Off,
        Some(value) => Override::Set(value),
    })
}

/// A non-negative whole number. Istio hands `pluginConfig` to Envoy as a protobuf `Struct`,
/// whose numbers are doubles, so `5` may arrive as `5.0`; both mean 5, `5.5` is refused.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    whole(serde_json::Number::deserialize(deserializer)?)
}

fn whole<E: serde::de::Error>(number: serde_json::Number) -> Result<u64, E> {
    if let Some(value) = number.as_u64() {
        return Ok(value);
    }
    match number.as_f64() {
        Some(value) if value >= 0.0 && value.fract() == 0.0 && value < u64::MAX as f64 => {
            Ok(value as u64)
        }
        _ => Err(E::custom(format!(
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

/// `Override::deserialize` reads `null` as "off" and anything else as the section itself.
#[cfg(feature = "schema")]
impl<T: schemars::JsonSchema> schemars::JsonSchema for Override<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Override_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Option::<T>::json_schema(generator)
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

    /// Every number of the configuration is read as a whole number: a `Struct` from Istio may
    /// carry `5` as `5.0`.
    #[test]
    fn request_size_limits_are_whole_numbers_like_every_other_number() {
        // (top level's, operation's) for the two members as written.
        let read = |top: &str, own: &str| {
            let text = format!(
                r#"{{"max_request_body_bytes": {top},
                    "operations": [{{"name": "a", "path": "/", "max_request_body_bytes": {own}}}]}}"#
            );
            serde_json::from_str::<super::Config>(&text)
                .map(|mut c| {
                    (
                        c.max_request_body_bytes,
                        c.operations.remove(0).max_request_body_bytes,
                    )
                })
                .map_err(|err| err.to_string())
        };
        assert_eq!(read("5", "7"), Ok((Some(5), Override::Set(7))));
        assert_eq!(read("5.0", "7.0"), Ok((Some(5), Override::Set(7))));
        assert_eq!(read("null", "null"), Ok((None, Override::Off)));
        for refused in ["7.5", "-1", "\"7\""] {
            assert!(read(refused, "1").is_err(), "{refused}");
            assert!(read("1", refused).is_err(), "{refused}");
        }
        let absent =
            serde_json::from_str::<super::Config>(r#"{"operations": [{"name": "a"}]}"#).unwrap();
        assert_eq!(absent.max_request_body_bytes, None);
        assert!(absent
            .operations
            .iter()
            .all(|op| op.max_request_body_bytes == Override::Inherit));
    }
}
