//! Signing keys fetched from the identity provider through an Envoy cluster: OpenID discovery
//! (`openid_config`, whose `jwks_uri` is then fetched through the same cluster) or a JWKS URL
//! (`jwks_uri`). This file holds what is not I/O: URLs, the refresh schedule, and turning
//! response bodies into key sets. The host glue does the fetching.

use super::keys::{JwksError, KeySet};
use crate::config::{JwksConfig, RemoteKeysConfig};
use crate::config_error::ConfigError;
use std::fmt;
use std::rc::Rc;

pub const DEFAULT_REFRESH_INTERVAL_S: u64 = 3600;
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;
pub const DEFAULT_UNKNOWN_KID_REFETCH_S: u64 = 300;
/// After a failed fetch, try again this soon (or at the refresh interval, if shorter).
pub const RETRY_AFTER_FAILURE_S: u64 = 10;

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
        if !(1..=60_000).contains(&timeout_ms) {
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

/// A fetched JWKS, parsed like an inline one.
pub fn key_set_from_body(body: &[u8]) -> Result<KeySet, FetchError> {
    let jwks: JwksConfig =
        serde_json::from_slice(body).map_err(|err| FetchError::JwksNotJson(err.to_string()))?;
    KeySet::from_jwks(&jwks).map_err(FetchError::Jwks)
}

/// The last good key set of one VM and when to fetch again.
#[derive(Debug, Default)]
pub struct RemoteKeyState {
    pub keys: Option<Rc<KeySet>>,
    last_attempt_s: Option<u64>,
    last_failed: bool,
    in_flight_since_s: Option<u64>,
    unknown_kid_seen: bool,
}

impl RemoteKeyState {
    /// Whether a fetch should start now.
    pub fn due(&self, remote: &RemoteKeys, now_s: u64) -> bool {
        let mut failed = self.last_failed;
        if let Some(since) = self.in_flight_since_s {
            // A call the host never answered must not block refreshing forever: past twice
            // its timeout it counts as failed.
            let timeout_s = remote.timeout_ms.div_ceil(1000).saturating_mul(2).max(2);
            if now_s < since.saturating_add(timeout_s) {
                return false;
            }
            failed = true;
        }
        let Some(last) = self.last_attempt_s else {
            return true;
        };
        let mut wait = remote.refresh_interval_s;
        if failed {
            wait = wait.min(RETRY_AFTER_FAILURE_S);
        }
        if self.unknown_kid_seen && remote.unknown_kid_refetch_s > 0 {
            wait = wait.min(remote.unknown_kid_refetch_s);
        }
        now_s >= last.saturating_add(wait)
    }

    pub fn started(&mut self, now_s: u64) {
        self.last_attempt_s = Some(now_s);
        self.in_flight_since_s = Some(now_s);
        self.unknown_kid_seen = false;
    }

    /// A fetch ended: a new key set replaces the previous one; a failure keeps it.
    pub fn finished(&mut self, result: Result<KeySet, FetchError>) -> Result<usize, FetchError> {
        self.in_flight_since_s = None;
        match result {
            Ok(keys) => {
                let count = keys.len();
                self.keys = Some(Rc::new(keys));
                self.last_failed = false;
                Ok(count)
            }
            Err(err) => {
                self.last_failed = true;
                Err(err)
            }
        }
    }

    /// A token named a `kid` no key has.
    pub fn saw_unknown_kid(&mut self) {
        self.unknown_kid_seen = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(refresh: u64, refetch: u64) -> RemoteKeys {
        RemoteKeys {
            kind: RemoteKind::JwksUri,
            target: parse_url("https://idp/keys").unwrap(),
            cluster: "idp".into(),
            refresh_interval_s: refresh,
            timeout_ms: 5000,
            unknown_kid_refetch_s: refetch,
        }
    }

    fn key_set() -> KeySet {
        key_set_from_body(br#"{"keys":[{"kty":"oct","kid":"h","k":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE"}]}"#)
            .unwrap()
    }

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
    fn discovery_and_jwks_bodies() {
        let target = jwks_target_from_discovery(
            br#"{"issuer":"x","jwks_uri":"https://login.microsoftonline.com/t/discovery/v2.0/keys"}"#,
        )
        .unwrap();
        assert_eq!(target.path, "/t/discovery/v2.0/keys");
        assert!(jwks_target_from_discovery(b"{}").is_err());
        assert!(jwks_target_from_discovery(b"<html>").is_err());
        assert_eq!(key_set().len(), 1);
        assert!(key_set_from_body(b"{\"keys\":[]}").is_err());
        assert!(key_set_from_body(b"nope").is_err());
    }

    #[test]
    fn schedule_first_fetch_refresh_and_failure_retry() {
        let remote = remote(3600, 300);
        let mut state = RemoteKeyState::default();
        assert!(state.due(&remote, 1000));
        state.started(1000);
        assert!(!state.due(&remote, 1001), "in flight");
        assert_eq!(state.finished(Ok(key_set())), Ok(1));
        assert!(!state.due(&remote, 4599));
        assert!(state.due(&remote, 4600));
        state.started(4600);
        assert!(state.finished(Err(FetchError::Empty)).is_err());
        assert!(
            state.keys.is_some(),
            "a failed fetch keeps the last good set"
        );
        assert!(!state.due(&remote, 4609));
        assert!(state.due(&remote, 4610), "failures retry sooner");
    }

    #[test]
    fn unknown_kid_refetch_is_bounded() {
        let remote = remote(3600, 300);
        let mut state = RemoteKeyState::default();
        state.started(0);
        state.finished(Ok(key_set())).unwrap();
        state.saw_unknown_kid();
        assert!(!state.due(&remote, 299));
        assert!(state.due(&remote, 300));
        state.started(300);
        state.finished(Ok(key_set())).unwrap();
        state.saw_unknown_kid();
        assert!(!state.due(&remote, 599));
        let never = super::RemoteKeys {
            unknown_kid_refetch_s: 0,
            ..remote
        };
        assert!(!state.due(&never, 3899));
    }

    #[test]
    fn an_unanswered_call_does_not_block_forever() {
        let remote = remote(3600, 300);
        let mut state = RemoteKeyState::default();
        state.started(0);
        assert!(!state.due(&remote, 9));
        assert!(state.due(&remote, 10));
    }
}
