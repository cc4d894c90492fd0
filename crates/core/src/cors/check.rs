//! The checks of a `cors` section that need more than its shape: origins, lists of methods
//! and header names, `*` and what it cannot go with. Each refusal names its path.

use super::origin::{AllowedOrigins, OriginError, OriginPattern};
use super::{Listed, ANY, MAX_AGE_LIMIT_S};
use crate::checks::is_token;
use crate::config_error::ConfigError;
use std::collections::HashMap;
use std::fmt;

/// Why a `cors` section is refused; `Display` is the message after the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CorsError {
    Origin(OriginError),
    Empty,
    /// `*` beside other entries.
    AnyNotAlone,
    /// `allowed_origins: ["*"]` with `allow_credentials: true`.
    AnyOriginWithCredentials,
    /// `expose_headers: ["*"]` with `allow_credentials: true`.
    AnyExposedWithCredentials,
    /// The entry allows what the one at `first` in the same list already does.
    Duplicate {
        first: usize,
    },
    NotAMethod(String),
    NotAHeaderName(String),
    MaxAgeTooLong,
}

impl fmt::Display for CorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Origin(err) => err.fmt(f),
            Self::Empty => f.write_str("must not be empty when given"),
            Self::AnyNotAlone => f.write_str("'*' stands for everything: list nothing beside it"),
            Self::AnyOriginWithCredentials => f.write_str(
                "'*' cannot go with allow_credentials true (browsers refuse credentials for \
                 any origin): list the origins",
            ),
            Self::AnyExposedWithCredentials => f.write_str(
                "'*' cannot go with allow_credentials true (browsers then read it as a header \
                 named '*'): list the headers",
            ),
            Self::Duplicate { first } => write!(f, "the same as entry [{first}]"),
            Self::NotAMethod(text) => write!(f, "{text:?} is not an HTTP method"),
            Self::NotAHeaderName(text) => write!(
                f,
                "{text:?} is not a header name (letters, digits and !#$%&'*+-.^_`|~ only)"
            ),
            Self::MaxAgeTooLong => write!(
                f,
                "must be at most {MAX_AGE_LIMIT_S} seconds (browsers cap it lower still)"
            ),
        }
    }
}

/// What kind of entries a list holds.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Method,
    Header,
}

/// `allowed_origins`; a refusal names the entry's index when it is about one entry.
pub(super) fn compile_origins(
    origins: &[String],
    allow_credentials: bool,
) -> Result<AllowedOrigins, (Option<usize>, CorsError)> {
    if origins.is_empty() {
        return Err((None, CorsError::Empty));
    }
    if let Some(any) = origins.iter().position(|origin| origin == ANY) {
        return match (origins.len(), allow_credentials) {
            (1, false) => Ok(AllowedOrigins::Any),
            (1, true) => Err((Some(any), CorsError::AnyOriginWithCredentials)),
            _ => Err((Some(any), CorsError::AnyNotAlone)),
        };
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut patterns = Vec::with_capacity(origins.len());
    for (index, text) in origins.iter().enumerate() {
        let pattern =
            OriginPattern::parse(text).map_err(|err| (Some(index), CorsError::Origin(err)))?;
        if let Some(&first) = seen.get(&pattern.normalised()) {
            return Err((Some(index), CorsError::Duplicate { first }));
        }
        seen.insert(pattern.normalised(), index);
        patterns.push(pattern);
    }
    Ok(AllowedOrigins::listed(patterns))
}

/// `allowed_methods`, `allowed_headers` or `expose_headers` at `at`.
pub(super) fn compile_list(
    at: &str,
    entries: &[String],
    kind: Kind,
) -> Result<Listed, ConfigError> {
    if entries.is_empty() {
        return Err(ConfigError::rule(at, CorsError::Empty));
    }
    if let Some(any) = entries.iter().position(|entry| entry == ANY) {
        return match entries.len() {
            1 => Ok(Listed::Any),
            _ => Err(ConfigError::rule(
                format!("{at}[{any}]"),
                CorsError::AnyNotAlone,
            )),
        };
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut listed = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let place = || format!("{at}[{index}]");
        if !is_token(entry) {
            let err = match kind {
                Kind::Method => CorsError::NotAMethod(entry.clone()),
                Kind::Header => CorsError::NotAHeaderName(entry.clone()),
            };
            return Err(ConfigError::rule(place(), err));
        }
        // Methods are compared upper-cased, as operations' are; header names are
        // case-insensitive.
        let normalised = match kind {
            Kind::Method => entry.to_ascii_uppercase(),
            Kind::Header => entry.to_ascii_lowercase(),
        };
        if let Some(&first) = seen.get(&normalised) {
            return Err(ConfigError::rule(place(), CorsError::Duplicate { first }));
        }
        seen.insert(normalised.clone(), index);
        listed.push(normalised);
    }
    if let Kind::Header = kind {
        listed.sort_unstable();
    }
    Ok(Listed::Only(listed))
}
