//! The JSON configuration exactly as users write it (SPEC.md, "Configuration").
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
    pub jwt: Option<serde_json::Value>,
    pub products: Option<BTreeMap<String, ProductConfig>>,
    pub consumers: Option<Vec<ConsumerConfig>>,
    pub operations: Vec<OperationConfig>,
    #[serde(default)]
    pub unmatched: Unmatched,
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
    #[serde(default)]
    pub auth: AuthMode,
    pub products: Option<Vec<String>>,
    pub rewrite: Option<String>,
    pub request_headers: Option<HeaderRulesConfig>,
    pub response_headers: Option<HeaderRulesConfig>,
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
