//! Signing keys fetched from the identity provider through an Envoy cluster: OpenID discovery
//! (`openid_config`, whose `jwks_uri` is then fetched through the same cluster) or a JWKS URL
//! (`jwks_uri`). This file holds the source's configuration, its URLs, what can go wrong with an
//! answer, and the discovery document; `fetched.rs` reads the key set, `schedule.rs` says when
//! to fetch. The host glue does the fetching.

use super::keys::JwksError;
use crate::config::RemoteKeysConfig;
use crate::config_error::ConfigError;
use std::fmt;

pub const DEFAULT_REFRESH_INTERVAL_S: u64 = 3600;
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;
/// The longest `timeout_ms` of a key fetch (its message says the number).
pub const MAX_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_UNKNOWN_KID_REFETCH_S: u64 = 300;

/// Host and path of an HTTP(S) URL; the scheme and TLS are the cluster's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    pub authority: String,
    pub path: String,
}

/// Why a URL cannot be fetched through a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlError {
    /// Neither `https://` nor `http://`.
    Scheme,
    /// No host, or one with user info, a query or a fragment in it.
    Host,
    /// Spaces, control characters or a fragment in the path.
    Path,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Scheme => "must start with https:// or http://",
            Self::Host => "has no usable host",
            Self::Path => "has an unusable path",
        })
    }
}

pub fn parse_url(url: &str) -> Result<HttpTarget, UrlError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(UrlError::Scheme)?;
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    if authority.is_empty()
        || authority.contains(['@', '?', '#'])
        || authority
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(UrlError::Host);
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) || path.contains('#') {
        return Err(UrlError::Path);
    }
    Ok(HttpTarget {
        authority: authority.to_string(),
        path: path.to_string(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    OpenIdConfig,
    JwksUri,
}

/// `jwt.openid_config` or `jwt.jwks_uri`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteKeys {
    pub kind: RemoteKind,
    pub target: HttpTarget,
    pub cluster: String,
    pub refresh_interval_s: u64,
    pub timeout_ms: u64,
    /// 0: a token with an unknown `kid` never triggers a fetch.
    pub unknown_kid_refetch_s: u64,
}

impl RemoteKeys {
    pub fn compile(
        kind: RemoteKind,
        config: RemoteKeysConfig,
        unknown_kid_refetch_s: u64,
        at: &str,
    ) -> Result<Self, ConfigError> {
        let target =
            parse_url(&config.url).map_err(|err| ConfigError::rule(format!("{at}.url"), err))?;
        if config.cluster.is_empty() {
            return Err(ConfigError::rule(
                format!("{at}.cluster"),
                "must name an Envoy cluster",
            ));
        }
        let refresh_interval_s = config
            .refresh_interval_s
            .unwrap_or(DEFAULT_REFRESH_INTERVAL_S);
        if refresh_interval_s < 1 {
            return Err(ConfigError::rule(
                format!("{at}.refresh_interval_s"),
                "must be at least 1",
            ));
        }
        let timeout_ms = config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(ConfigError::rule(
                format!("{at}.timeout_ms"),
                "must be between 1 and 60000",
            ));
        }
        Ok(Self {
            kind,
            target,
            cluster: config.cluster,
            refresh_interval_s,
            timeout_ms,
            unknown_kid_refetch_s,
        })
    }
}

/// Why an answer of the identity provider gave no keys.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError {
    /// The provider answered with another status than 200 (its status text).
    Status(String),
    /// The answer is larger than `MAX_ANSWER_BYTES`.
    TooLarge(usize),
    /// The answer has no body.
    Empty,
    /// The discovery document is not JSON.
    DiscoveryNotJson,
    /// The discovery document names no `jwks_uri`.
    NoJwksUri,
    /// The discovery document's `jwks_uri` cannot be fetched.
    BadJwksUri(UrlError),
    /// The host would not call the `jwks_uri`.
    JwksUriNotCallable,
    /// The key set is not JSON of the JWKS shape (serde's finding).
    JwksNotJson(String),
    /// The key set is refused.
    Jwks(JwksError),
    /// Every signing key of the set was skipped as unusable (each is reported on its own).
    NoUsableKey {
        /// How many were skipped.
        skipped: usize,
    },
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => write!(f, "identity provider answered {status}"),
            Self::TooLarge(size) => write!(f, "answer of {size} bytes is too large"),
            Self::Empty => f.write_str("empty answer"),
            Self::DiscoveryNotJson => f.write_str("discovery document is not JSON"),
            Self::NoJwksUri => f.write_str("discovery document has no jwks_uri"),
            Self::BadJwksUri(err) => write!(f, "jwks_uri {err}"),
            Self::JwksUriNotCallable => f.write_str("cannot call the jwks_uri"),
            Self::JwksNotJson(err) => write!(f, "JWKS is not usable: {err}"),
            Self::Jwks(err) => write!(f, "{}: {err}", err.path("jwks")),
            Self::NoUsableKey { skipped } => {
                write!(f, "no usable signing key ({skipped} skipped)")
            }
        }
    }
}

/// The `jwks_uri` of an OpenID discovery document.
pub fn jwks_target_from_discovery(body: &[u8]) -> Result<HttpTarget, FetchError> {
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| FetchError::DiscoveryNotJson)?;
    let uri = document
        .get("jwks_uri")
        .and_then(serde_json::Value::as_str)
        .ok_or(FetchError::NoJwksUri)?;
    parse_url(uri).map_err(FetchError::BadJwksUri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration"),
            Ok(HttpTarget {
                authority: "login.microsoftonline.com".into(),
                path: "/t/v2.0/.well-known/openid-configuration".into()
            })
        );
        assert_eq!(
            parse_url("http://idp:8080").unwrap(),
            HttpTarget {
                authority: "idp:8080".into(),
                path: "/".into()
            }
        );
        assert!(parse_url("ftp://x/y").is_err());
        assert!(parse_url("https:///path").is_err());
        assert!(parse_url("https://user@host/").is_err());
        assert!(parse_url("https://host/a b").is_err());
    }

    #[test]
    fn discovery_bodies() {
        let target = jwks_target_from_discovery(
            br#"{"issuer":"x","jwks_uri":"https://login.microsoftonline.com/t/discovery/v2.0/keys"}"#,
        )
        .unwrap();
        assert_eq!(target.path, "/t/discovery/v2.0/keys");
        assert!(jwks_target_from_discovery(b"{}").is_err());
        assert!(jwks_target_from_discovery(b"<html>").is_err());
    }
}
