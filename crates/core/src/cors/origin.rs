//! Browser origins (`scheme://host[:port]`, RFC 6454), as `allowed_origins` lists them and as
//! an `Origin` header sends them: parsed into scheme, host and port and compared as such, never
//! as text, so `https://evilpowerapps.com` cannot pass for `https://*.powerapps.com`.
//!
//! Scheme and host are compared case-insensitively and a default port (80 for `http`, 443 for
//! `https`) is the same as none, as browsers serialise origins without it.

use std::collections::{HashMap, HashSet};
use std::fmt;

/// Why an entry of `allowed_origins` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OriginError {
    /// `null`, which sandboxed frames, local files and some redirects send: any page can
    /// claim it.
    Null,
    /// No `scheme://` in front.
    MissingScheme,
    BadScheme,
    /// `user@host`.
    Userinfo,
    /// Something after host and port: a path, a query, a fragment, a trailing `/`.
    PathQueryOrFragment,
    BadHost,
    BadPort,
    /// `*` anywhere but as the whole first label of the host.
    MisplacedWildcard,
    /// A wildcard over a top-level domain (`*.com`), an address, or nothing (`*.`).
    WildcardTooBroad,
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Null => {
                "'null' can never be allowed: sandboxed frames and local files send it, so \
                 any page can claim it"
            }
            Self::MissingScheme => {
                "must be scheme://host[:port], e.g. https://make.powerautomate.com"
            }
            Self::BadScheme => {
                "the scheme must start with a letter and hold only letters, digits, '+', '-' \
                 and '.'"
            }
            Self::Userinfo => "an origin carries no user information ('user@')",
            Self::PathQueryOrFragment => {
                "an origin ends after host and port: no path, query, fragment or trailing '/'"
            }
            Self::BadHost => {
                "the host must be a domain name (labels of letters, digits and '-' separated \
                 by '.'), an IPv4 address or a bracketed IPv6 address"
            }
            Self::BadPort => "the port must be a number from 1 to 65535",
            Self::MisplacedWildcard => {
                "a wildcard may only be the whole first label of the host \
                 (https://*.example.com)"
            }
            Self::WildcardTooBroad => {
                "a wildcard needs a domain name of at least two labels under it \
                 (https://*.example.com; not *.com, an address, or nothing)"
            }
        })
    }
}

/// An origin taken apart, as written (case unchanged); the port is `None` when absent or the
/// scheme's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<u16>,
    /// The host began with `*.` (and `host` is what follows).
    wildcard: bool,
}

impl Parts<'_> {
    /// `scheme://host[:port]`, lower-cased: equal for equal origins.
    fn serialised(&self) -> String {
        serialise(self.scheme, self.host, self.port)
    }
}

fn serialise(scheme: &str, host: &str, port: Option<u16>) -> String {
    let mut text = format!("{scheme}://{host}");
    if let Some(port) = port {
        text.push(':');
        text.push_str(&port.to_string());
    }
    text.make_ascii_lowercase();
    text
}

fn parse(text: &str) -> Result<Parts<'_>, OriginError> {
    if text.eq_ignore_ascii_case("null") {
        return Err(OriginError::Null);
    }
    let (scheme, authority) = text.split_once("://").ok_or(OriginError::MissingScheme)?;
    if !is_scheme(scheme) {
        return Err(OriginError::BadScheme);
    }
    let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
    let (authority, rest) = authority.split_at(end);
    if authority.contains('@') {
        return Err(OriginError::Userinfo);
    }
    if !rest.is_empty() {
        return Err(OriginError::PathQueryOrFragment);
    }
    let (authority, wildcard) = match authority.strip_prefix("*.") {
        Some(under) => (under, true),
        None => (authority, false),
    };
    let (host, port) = split_port(authority)?;
    let port = port.filter(|&port| default_port(scheme) != Some(port));
    if host.contains('*') {
        return Err(OriginError::MisplacedWildcard);
    }
    if wildcard && !is_wildcard_domain(host) {
        return Err(OriginError::WildcardTooBroad);
    }
    if !is_host(host) {
        return Err(OriginError::BadHost);
    }
    Ok(Parts {
        scheme,
        host,
        port,
        wildcard,
    })
}

/// RFC 3986: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(scheme: &str) -> bool {
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    }
}

/// Host and port of an authority; a bracketed IPv6 host keeps its brackets.
fn split_port(authority: &str) -> Result<(&str, Option<u16>), OriginError> {
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or(OriginError::BadHost)?;
        let (host, after) = authority.split_at(close + 1);
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(OriginError::BadHost),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => None,
        Some(digits) => Some(parse_port(digits).ok_or(OriginError::BadPort)?),
    };
    Ok((host, port))
}

fn parse_port(digits: &str) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u16>().ok().filter(|&port| port != 0)
}

/// A domain name, an IPv4 address (same shape), or a bracketed IPv6 address.
fn is_host(host: &str) -> bool {
    if let Some(inside) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inside.contains(':')
            && inside
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// What a wildcard may stand over: a domain name of two labels or more whose top-level label
/// is not a number (an address is not a domain).
fn is_wildcard_domain(domain: &str) -> bool {
    is_host(domain)
        && !domain.starts_with('[')
        && domain.contains('.')
        && domain
            .rsplit('.')
            .next()
            .is_some_and(|top| top.bytes().any(|b| b.is_ascii_alphabetic()))
}

/// One entry of `allowed_origins` other than `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OriginPattern {
    /// One origin, serialised lower-case without a default port.
    Exact(String),
    /// `scheme://*.domain[:port]`: any host one or more labels under `domain`.
    Under {
        scheme: String,
        domain: String,
        port: Option<u16>,
    },
}

impl OriginPattern {
    pub(crate) fn parse(text: &str) -> Result<Self, OriginError> {
        let parts = parse(text)?;
        if !parts.wildcard {
            return Ok(Self::Exact(parts.serialised()));
        }
        Ok(Self::Under {
            scheme: parts.scheme.to_ascii_lowercase(),
            domain: parts.host.to_ascii_lowercase(),
            port: parts.port,
        })
    }

    /// The pattern written one way, whichever way it was configured: two entries with the
    /// same text allow the same origins.
    pub(crate) fn normalised(&self) -> String {
        match self {
            Self::Exact(origin) => origin.clone(),
            Self::Under {
                scheme,
                domain,
                port,
            } => serialise(scheme, &format!("*.{domain}"), *port),
        }
    }
}

/// `allowed_origins` compiled: any origin, or exact origins and wildcard domains looked up by
/// hash, so a check costs the same for a list of three or of three hundred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AllowedOrigins {
    Any,
    Listed {
        exact: HashSet<String>,
        /// Wildcard domains, each with the schemes and ports allowed under it.
        under: HashMap<String, Vec<(String, Option<u16>)>>,
    },
}

impl AllowedOrigins {
    pub(crate) fn listed(patterns: impl IntoIterator<Item = OriginPattern>) -> Self {
        let mut exact = HashSet::new();
        let mut under: HashMap<String, Vec<(String, Option<u16>)>> = HashMap::new();
        for pattern in patterns {
            match pattern {
                OriginPattern::Exact(origin) => {
                    exact.insert(origin);
                }
                OriginPattern::Under {
                    scheme,
                    domain,
                    port,
                } => under.entry(domain).or_default().push((scheme, port)),
            }
        }
        Self::Listed { exact, under }
    }

    /// Whether `origin` (an `Origin` header's value) is allowed. `null`, and anything that is
    /// not one origin, never is, not even by `*`.
    pub(crate) fn allows(&self, origin: &str) -> bool {
        let Ok(parts) = parse(origin) else {
            return false;
        };
        if parts.wildcard {
            return false;
        }
        let (exact, under) = match self {
            Self::Any => return true,
            Self::Listed { exact, under } => (exact, under),
        };
        if exact.contains(&parts.serialised()) {
            return true;
        }
        if under.is_empty() {
            return false;
        }
        let host = parts.host.to_ascii_lowercase();
        // Every domain strictly above the host, nearest first: a.b.example.com is under
        // b.example.com, example.com and com; the host itself is not under itself.
        let mut rest = host.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            let allowed = under.get(parent).is_some_and(|allowed| {
                allowed.iter().any(|(scheme, port)| {
                    scheme.eq_ignore_ascii_case(parts.scheme) && *port == parts.port
                })
            });
            if allowed {
                return true;
            }
            rest = parent;
        }
        false
    }
}

#[cfg(test)]
mod tests;
