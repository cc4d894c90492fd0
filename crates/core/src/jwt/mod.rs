//! JWT validation for Entra ID (and any OpenID provider): keys, verification, claims and the
//! verified-token cache. Compiled once from the `jwt` section; the request path only looks up.

pub mod algorithm;
pub mod claims;
pub mod failure;
pub mod failure_log;
pub mod fetched;
pub mod key_binding;
pub mod key_fetch;
pub mod key_waiters;
pub mod keys;
pub mod remote;
pub mod rsa;
pub mod schedule;
pub mod signature;
pub mod token_cache;
pub mod verify;

#[cfg(test)]
mod tests;

use crate::checks::{check_header_name, non_empty_list};
use crate::config::{JwksConfig, JwtConfig, RemoteKeysConfig, RequiredClaimConfig};
use crate::config_error::ConfigError;
use algorithm::Algorithm;
use claims::{Expectation, RegisteredRules, RequiredClaim};
use keys::KeySet;
use std::collections::{BTreeMap, BTreeSet};
use verify::TokenVerifier;

pub const DEFAULT_CONSUMER_CLAIM: &str = "azp";
/// Entra ID signs access tokens with RS256; other algorithms must be allowed explicitly.
pub const DEFAULT_ALGORITHMS: [Algorithm; 1] = [Algorithm::RS256];
pub const MAX_TOKEN_CACHE_SIZE: u64 = 100_000;

/// The `jwt` section, compiled. (`default_product` and `max_dynamic_consumers` are the plan's:
/// they are about consumers and counters, not tokens.)
#[derive(Debug)]
pub struct JwtPlan {
    pub verifier: TokenVerifier,
    pub consumer_claim: String,
    pub required_claims: Vec<RequiredClaim>,
    /// (claim, lower-cased header)
    pub claims_to_headers: Vec<(String, String)>,
    pub forward_token: bool,
    pub token_cache_size: usize,
    /// Keys fetched from the identity provider, beside the inline ones.
    pub remote: Option<remote::RemoteKeys>,
}

impl JwtPlan {
    /// `template_claims`: claims named by `{claim:...}` in any operation's header rules, which
    /// the cache must keep.
    pub fn compile(
        config: JwtConfig,
        template_claims: &BTreeSet<String>,
    ) -> Result<Self, ConfigError> {
        let remote = compile_remote(
            config.openid_config,
            config.jwks_uri,
            config.unknown_kid_refetch_s,
        )?;
        let keys = compile_inline_keys(config.jwks.as_ref(), remote.is_some())?;
        let algorithms = compile_algorithms(config.algorithms)?;
        if remote.is_none()
            && !algorithms
                .iter()
                .any(|alg| keys.candidates(None, *alg).is_ok())
        {
            return Err(ConfigError::rule(
                "jwt.jwks",
                "no key fits any of the allowed algorithms (jwt.algorithms, default RS256)",
            ));
        }
        let rules = RegisteredRules {
            issuers: non_empty_strings("jwt.issuers", config.issuers)?,
            audiences: non_empty_strings("jwt.audiences", config.audiences)?,
            clock_skew_s: config.clock_skew_s.unwrap_or(0),
        };
        let consumer_claim = config
            .consumer_claim
            .unwrap_or_else(|| DEFAULT_CONSUMER_CLAIM.to_string());
        if consumer_claim.is_empty() {
            return Err(ConfigError::rule("jwt.consumer_claim", "must not be empty"));
        }
        let required_claims = compile_required_claims(config.required_claims)?;
        let claims_to_headers = compile_claims_to_headers(config.claims_to_headers)?;
        let token_cache_size = compile_token_cache_size(config.token_cache_size)?;

        let mut kept: BTreeSet<String> = template_claims.clone();
        kept.insert(consumer_claim.clone());
        kept.extend(required_claims.iter().map(|c| c.name.clone()));
        kept.extend(claims_to_headers.iter().map(|(claim, _)| claim.clone()));

        Ok(Self {
            verifier: TokenVerifier {
                keys,
                algorithms,
                rules,
                kept_claims: kept.into_iter().collect(),
                keys_fetched: remote.is_some(),
            },
            consumer_claim,
            required_claims,
            claims_to_headers,
            forward_token: config.forward_token.unwrap_or(true),
            token_cache_size,
            remote,
        })
    }
}

/// `jwt.openid_config` or `jwt.jwks_uri` (at most one).
fn compile_remote(
    openid_config: Option<RemoteKeysConfig>,
    jwks_uri: Option<RemoteKeysConfig>,
    unknown_kid_refetch_s: Option<u64>,
) -> Result<Option<remote::RemoteKeys>, ConfigError> {
    let unknown_kid_refetch_s =
        unknown_kid_refetch_s.unwrap_or(remote::DEFAULT_UNKNOWN_KID_REFETCH_S);
    let (kind, source, at) = match (openid_config, jwks_uri) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::rule(
                "jwt",
                "give one of 'openid_config' or 'jwks_uri', not both",
            ))
        }
        (Some(source), None) => (
            remote::RemoteKind::OpenIdConfig,
            source,
            "jwt.openid_config",
        ),
        (None, Some(source)) => (remote::RemoteKind::JwksUri, source, "jwt.jwks_uri"),
        (None, None) => return Ok(None),
    };
    remote::RemoteKeys::compile(kind, source, unknown_kid_refetch_s, at).map(Some)
}

/// `jwt.jwks`: required unless keys are fetched.
fn compile_inline_keys(jwks: Option<&JwksConfig>, fetched: bool) -> Result<KeySet, ConfigError> {
    match jwks {
        Some(jwks) => {
            KeySet::from_jwks(jwks).map_err(|err| ConfigError::rule(err.path("jwt.jwks"), err))
        }
        None if fetched => Ok(KeySet::default()),
        None => Err(ConfigError::rule(
            "jwt",
            "needs signing keys: 'jwks', 'openid_config' or 'jwks_uri'",
        )),
    }
}

/// `jwt.algorithms`: an allow-list; `none` is never on it.
fn compile_algorithms(names: Option<Vec<String>>) -> Result<Vec<Algorithm>, ConfigError> {
    let Some(names) = names else {
        return Ok(DEFAULT_ALGORITHMS.to_vec());
    };
    if names.is_empty() {
        return Err(ConfigError::rule(
            "jwt.algorithms",
            "must not be empty when given",
        ));
    }
    let mut algorithms = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let at = format!("jwt.algorithms[{i}]");
        if name.eq_ignore_ascii_case("none") {
            return Err(ConfigError::rule(
                at,
                "'none' is never allowed: every token must be signed",
            ));
        }
        let alg = Algorithm::parse(name).ok_or_else(|| {
            ConfigError::rule(
                &at,
                format!(
                    "unknown algorithm '{name}' (supported: {})",
                    algorithm::SUPPORTED
                ),
            )
        })?;
        algorithms.push(alg);
    }
    Ok(algorithms)
}

fn compile_required_claims(
    list: Option<Vec<RequiredClaimConfig>>,
) -> Result<Vec<RequiredClaim>, ConfigError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    if list.is_empty() {
        return Err(ConfigError::rule(
            "jwt.required_claims",
            "must not be empty when given",
        ));
    }
    let mut compiled = Vec::with_capacity(list.len());
    for (i, claim) in list.into_iter().enumerate() {
        let at = format!("jwt.required_claims[{i}]");
        if claim.name.is_empty() {
            return Err(ConfigError::rule(format!("{at}.name"), "must not be empty"));
        }
        let expect = match (claim.any_of, claim.all_of) {
            (Some(values), None) => {
                non_empty_list(&format!("{at}.any_of"), &values)?;
                Expectation::AnyOf(values)
            }
            (None, Some(values)) => {
                non_empty_list(&format!("{at}.all_of"), &values)?;
                Expectation::AllOf(values)
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::rule(
                    at,
                    "give one of 'any_of' or 'all_of', not both",
                ))
            }
            (None, None) => return Err(ConfigError::rule(at, "needs 'any_of' or 'all_of'")),
        };
        if claim.separator.as_deref() == Some("") {
            return Err(ConfigError::rule(
                format!("{at}.separator"),
                "must not be empty",
            ));
        }
        compiled.push(RequiredClaim {
            name: claim.name,
            expect,
            separator: claim.separator,
        });
    }
    Ok(compiled)
}

/// `jwt.claims_to_headers`: (claim, lower-cased header), one claim per header.
fn compile_claims_to_headers(
    map: Option<BTreeMap<String, String>>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut compiled = Vec::new();
    let mut headers_seen = BTreeSet::new();
    for (claim, header) in map.unwrap_or_default() {
        let at = format!("jwt.claims_to_headers.{claim}");
        if claim.is_empty() {
            return Err(ConfigError::rule(at, "claim name must not be empty"));
        }
        check_header_name(&at, &header)?;
        let lower = header.to_ascii_lowercase();
        if !headers_seen.insert(lower.clone()) {
            return Err(ConfigError::rule(
                at,
                format!("header '{header}' is already used for another claim"),
            ));
        }
        compiled.push((claim, lower));
    }
    Ok(compiled)
}

fn compile_token_cache_size(size: Option<u64>) -> Result<usize, ConfigError> {
    let size = size.unwrap_or(token_cache::DEFAULT_CAPACITY as u64);
    if size > MAX_TOKEN_CACHE_SIZE {
        return Err(ConfigError::rule(
            "jwt.token_cache_size",
            format!("must be at most {MAX_TOKEN_CACHE_SIZE}"),
        ));
    }
    Ok(usize::try_from(size).unwrap_or(usize::MAX))
}

fn non_empty_strings(
    at: &str,
    values: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, ConfigError> {
    match values {
        None => Ok(None),
        Some(values) => {
            non_empty_list(at, &values)?;
            Ok(Some(values))
        }
    }
}
