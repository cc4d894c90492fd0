//! JWT validation for Entra ID (and any OpenID provider): keys, verification, claims and the
//! verified-token cache. Compiled once from the `jwt` section; the request path only looks up.

pub mod algorithm;
pub mod claims;
pub mod keys;
pub mod remote;
pub mod token_cache;
pub mod verify;

#[cfg(test)]
pub(crate) mod tests;

use crate::config::JwtConfig;
use crate::plan::{PlanError, ProductId};
use algorithm::Algorithm;
use claims::{Expectation, RegisteredRules, RequiredClaim};
use keys::KeySet;
use std::collections::{BTreeSet, HashMap};
use verify::TokenVerifier;

pub const DEFAULT_CONSUMER_CLAIM: &str = "azp";
/// Entra ID signs access tokens with RS256; other algorithms must be allowed explicitly.
pub const DEFAULT_ALGORITHMS: [Algorithm; 1] = [Algorithm::RS256];
pub const MAX_TOKEN_CACHE_SIZE: u64 = 100_000;
pub const MAX_DYNAMIC_CONSUMERS: u64 = 100_000;

/// The `jwt` section, compiled.
#[derive(Debug)]
pub struct JwtPlan {
    pub verifier: TokenVerifier,
    pub consumer_claim: String,
    pub required_claims: Vec<RequiredClaim>,
    /// (claim, lower-cased header)
    pub claims_to_headers: Vec<(String, String)>,
    pub forward_token: bool,
    pub default_product: Option<ProductId>,
    pub token_cache_size: usize,
    /// Cap on dynamic consumers (`jwt:<client>`) that hold counters.
    pub max_dynamic_consumers: usize,
    /// Keys fetched from the identity provider, beside the inline ones.
    pub remote: Option<remote::RemoteKeys>,
}

fn error(path: impl Into<String>, message: impl Into<String>) -> PlanError {
    PlanError::new(path, message)
}

impl JwtPlan {
    /// `template_claims`: claims named by `{claim:...}` in any operation's header rules, which
    /// the cache must keep.
    pub fn compile(
        config: JwtConfig,
        product_ids: &HashMap<&str, ProductId>,
        template_claims: &BTreeSet<String>,
        check_header_name: impl Fn(&str, &str) -> Result<(), PlanError>,
    ) -> Result<Self, PlanError> {
        let unknown_kid_refetch_s = config
            .unknown_kid_refetch_s
            .unwrap_or(remote::DEFAULT_UNKNOWN_KID_REFETCH_S);
        let remote = match (config.openid_config, config.jwks_uri) {
            (Some(_), Some(_)) => {
                return Err(error(
                    "jwt",
                    "give one of 'openid_config' or 'jwks_uri', not both",
                ))
            }
            (Some(source), None) => Some((
                remote::RemoteKind::OpenIdConfig,
                source,
                "jwt.openid_config",
            )),
            (None, Some(source)) => Some((remote::RemoteKind::JwksUri, source, "jwt.jwks_uri")),
            (None, None) => None,
        }
        .map(|(kind, source, at)| {
            remote::RemoteKeys::compile(kind, source, unknown_kid_refetch_s, at)
                .map_err(|(path, msg)| error(path, msg))
        })
        .transpose()?;
        let keys = match (&config.jwks, &remote) {
            (Some(jwks), _) => {
                KeySet::from_jwks(jwks, "jwt.jwks").map_err(|(path, msg)| error(path, msg))?
            }
            (None, Some(_)) => KeySet::default(),
            (None, None) => {
                return Err(error(
                    "jwt",
                    "needs signing keys: 'jwks', 'openid_config' or 'jwks_uri'",
                ))
            }
        };

        let algorithms = match config.algorithms {
            None => DEFAULT_ALGORITHMS.to_vec(),
            Some(names) => {
                if names.is_empty() {
                    return Err(error("jwt.algorithms", "must not be empty when given"));
                }
                let mut algorithms = Vec::with_capacity(names.len());
                for (i, name) in names.iter().enumerate() {
                    if name.eq_ignore_ascii_case("none") {
                        return Err(error(
                            format!("jwt.algorithms[{i}]"),
                            "'none' is never allowed: every token must be signed",
                        ));
                    }
                    let alg = Algorithm::parse(name).ok_or_else(|| {
                        error(
                            format!("jwt.algorithms[{i}]"),
                            format!(
                                "unknown algorithm '{name}' (supported: {})",
                                algorithm::SUPPORTED
                            ),
                        )
                    })?;
                    algorithms.push(alg);
                }
                algorithms
            }
        };
        if remote.is_none()
            && !algorithms
                .iter()
                .any(|alg| keys.candidates(None, *alg).is_ok())
        {
            return Err(error(
                "jwt.jwks",
                "no key fits any of the allowed algorithms (jwt.algorithms, default RS256)",
            ));
        }

        let issuers = non_empty_strings("jwt.issuers", config.issuers)?;
        let audiences = non_empty_strings("jwt.audiences", config.audiences)?;

        let consumer_claim = config
            .consumer_claim
            .unwrap_or_else(|| DEFAULT_CONSUMER_CLAIM.to_string());
        if consumer_claim.is_empty() {
            return Err(error("jwt.consumer_claim", "must not be empty"));
        }

        let required_claims = match config.required_claims {
            None => Vec::new(),
            Some(list) => {
                if list.is_empty() {
                    return Err(error("jwt.required_claims", "must not be empty when given"));
                }
                let mut compiled = Vec::with_capacity(list.len());
                for (i, claim) in list.into_iter().enumerate() {
                    let at = format!("jwt.required_claims[{i}]");
                    if claim.name.is_empty() {
                        return Err(error(format!("{at}.name"), "must not be empty"));
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
                            return Err(error(at, "give one of 'any_of' or 'all_of', not both"))
                        }
                        (None, None) => return Err(error(at, "needs 'any_of' or 'all_of'")),
                    };
                    if claim.separator.as_deref() == Some("") {
                        return Err(error(format!("{at}.separator"), "must not be empty"));
                    }
                    compiled.push(RequiredClaim {
                        name: claim.name,
                        expect,
                        separator: claim.separator,
                    });
                }
                compiled
            }
        };

        let mut claims_to_headers = Vec::new();
        let mut headers_seen = BTreeSet::new();
        for (claim, header) in config.claims_to_headers.unwrap_or_default() {
            let at = format!("jwt.claims_to_headers.{claim}");
            if claim.is_empty() {
                return Err(error(at, "claim name must not be empty"));
            }
            check_header_name(&at, &header)?;
            let lower = header.to_ascii_lowercase();
            if !headers_seen.insert(lower.clone()) {
                return Err(error(
                    at,
                    format!("header '{header}' is already used for another claim"),
                ));
            }
            claims_to_headers.push((claim, lower));
        }

        let default_product = match &config.default_product {
            None => None,
            Some(name) => Some(*product_ids.get(name.as_str()).ok_or_else(|| {
                error("jwt.default_product", format!("unknown product '{name}'"))
            })?),
        };

        let token_cache_size = config
            .token_cache_size
            .unwrap_or(token_cache::DEFAULT_CAPACITY as u64);
        if token_cache_size > MAX_TOKEN_CACHE_SIZE {
            return Err(error(
                "jwt.token_cache_size",
                format!("must be at most {MAX_TOKEN_CACHE_SIZE}"),
            ));
        }

        let max_dynamic_consumers = config
            .max_dynamic_consumers
            .unwrap_or(crate::dynamic_consumers::DEFAULT_POOL_SIZE as u64);
        if !(1..=MAX_DYNAMIC_CONSUMERS).contains(&max_dynamic_consumers) {
            return Err(error(
                "jwt.max_dynamic_consumers",
                format!("must be between 1 and {MAX_DYNAMIC_CONSUMERS}"),
            ));
        }

        let mut kept: BTreeSet<String> = template_claims.clone();
        kept.insert(consumer_claim.clone());
        kept.extend(required_claims.iter().map(|c| c.name.clone()));
        kept.extend(claims_to_headers.iter().map(|(claim, _)| claim.clone()));

        Ok(Self {
            verifier: TokenVerifier {
                keys,
                algorithms,
                rules: RegisteredRules {
                    issuers,
                    audiences,
                    clock_skew_s: config.clock_skew_s.unwrap_or(0),
                },
                kept_claims: kept.into_iter().collect(),
            },
            consumer_claim,
            required_claims,
            claims_to_headers,
            forward_token: config.forward_token.unwrap_or(true),
            default_product,
            token_cache_size: usize::try_from(token_cache_size).unwrap_or(usize::MAX),
            max_dynamic_consumers: usize::try_from(max_dynamic_consumers).unwrap_or(1),
            remote,
        })
    }
}

fn non_empty_list(at: &str, values: &[String]) -> Result<(), PlanError> {
    if values.is_empty() {
        return Err(error(at, "must not be empty"));
    }
    if let Some(i) = values.iter().position(String::is_empty) {
        return Err(error(format!("{at}[{i}]"), "must not be empty"));
    }
    Ok(())
}

fn non_empty_strings(
    at: &str,
    values: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, PlanError> {
    match values {
        None => Ok(None),
        Some(values) => {
            non_empty_list(at, &values)?;
            Ok(Some(values))
        }
    }
}
