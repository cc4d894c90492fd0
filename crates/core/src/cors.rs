//! APIM's `cors` policy (README, "CORS"): a section checked and compiled at load; per request,
//! tollgate's answer to a preflight, and the CORS headers a cross-origin response carries.
//! Which section applies to a request is the pipeline's to say (`pipeline/cors_stage.rs`).

pub(crate) mod origin;

use crate::checks::is_token;
use crate::config::{CorsConfig, Override};
use crate::config_error::ConfigError;
use crate::credential::Headers;
use crate::rewrite::HeaderEdit;
use origin::{AllowedOrigins, OriginError, OriginPattern};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

const ALLOW_ORIGIN: &str = "access-control-allow-origin";
const ALLOW_METHODS: &str = "access-control-allow-methods";
const ALLOW_HEADERS: &str = "access-control-allow-headers";
const ALLOW_CREDENTIALS: &str = "access-control-allow-credentials";
const EXPOSE_HEADERS: &str = "access-control-expose-headers";
const MAX_AGE: &str = "access-control-max-age";
const VARY: &str = "vary";
const ORIGIN: &str = "origin";
const REQUEST_METHOD: &str = "access-control-request-method";
const REQUEST_HEADERS: &str = "access-control-request-headers";

/// The one list entry that stands for everything.
const ANY: &str = "*";

/// The longest `max_age_s` accepted: browsers cap it lower still (Firefox at a day, Chromium
/// at two hours), so more would only mislead.
pub(crate) const MAX_AGE_LIMIT_S: u64 = 86_400;

/// Methods allowed when `allowed_methods` is left out (APIM's default).
const DEFAULT_METHODS: [&str; 2] = ["GET", "POST"];

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

/// A list that is either everything (`*`) or these entries.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Listed {
    Any,
    /// Normalised: methods upper-cased, header names lower-cased; header names sorted.
    Only(Vec<String>),
}

/// One `cors` section, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: AllowedOrigins,
    methods: Listed,
    headers: Listed,
    /// `Access-Control-Allow-Methods`, `-Allow-Headers` and `-Expose-Headers` as sent, built
    /// once (for listed entries).
    allow_methods: String,
    allow_headers: Option<String>,
    expose_headers: Option<String>,
    allow_credentials: bool,
    max_age_s: Option<u64>,
    /// A preflight that does not match: answered empty (`true`) or left to the pipeline.
    pub(crate) terminate_unmatched: bool,
}

/// The top level's section and each operation's, compiled: an operation without one inherits
/// the top level's, `null` has none, its own replaces the top level's whole.
pub(crate) type CompiledSections = (Option<Arc<CorsPolicy>>, Vec<Option<Arc<CorsPolicy>>>);

pub(crate) fn compile_sections(
    top_level: Option<CorsConfig>,
    operations: Vec<Override<CorsConfig>>,
) -> Result<CompiledSections, ConfigError> {
    let top_level = top_level
        .map(|config| CorsPolicy::compile("cors", config))
        .transpose()?
        .map(Arc::new);
    let operations = operations
        .into_iter()
        .enumerate()
        .map(|(index, section)| match section {
            Override::Inherit => Ok(top_level.clone()),
            Override::Off => Ok(None),
            Override::Set(config) => {
                CorsPolicy::compile(&format!("operations[{index}].cors"), config)
                    .map(|policy| Some(Arc::new(policy)))
            }
        })
        .collect::<Result<_, _>>()?;
    Ok((top_level, operations))
}

impl CorsPolicy {
    /// Checks and compiles one section found at `at` (`cors`, `operations[2].cors`).
    pub(crate) fn compile(at: &str, config: CorsConfig) -> Result<Self, ConfigError> {
        let origins = compile_origins(&config.allowed_origins, config.allow_credentials).map_err(
            |(index, err)| match index {
                Some(i) => ConfigError::rule(format!("{at}.allowed_origins[{i}]"), err),
                None => ConfigError::rule(format!("{at}.allowed_origins"), err),
            },
        )?;
        let methods = match config.allowed_methods {
            None => Listed::Only(DEFAULT_METHODS.map(str::to_string).to_vec()),
            Some(methods) => {
                compile_list(&format!("{at}.allowed_methods"), &methods, Kind::Method)?
            }
        };
        let headers = match config.allowed_headers {
            None => Listed::Only(Vec::new()),
            Some(headers) => {
                compile_list(&format!("{at}.allowed_headers"), &headers, Kind::Header)?
            }
        };
        let expose = match config.expose_headers {
            None => None,
            Some(exposed) => {
                let place = format!("{at}.expose_headers");
                let listed = compile_list(&place, &exposed, Kind::Header)?;
                if listed == Listed::Any && config.allow_credentials {
                    return Err(ConfigError::rule(
                        place,
                        CorsError::AnyExposedWithCredentials,
                    ));
                }
                Some(listed)
            }
        };
        if config.max_age_s.is_some_and(|age| age > MAX_AGE_LIMIT_S) {
            return Err(ConfigError::rule(
                format!("{at}.max_age_s"),
                CorsError::MaxAgeTooLong,
            ));
        }
        // `*` is sent as is only in `Access-Control-Expose-Headers`; a preflight echoes
        // what it asked for instead.
        let joined = |listed: &Listed| match listed {
            Listed::Any => ANY.to_string(),
            Listed::Only(entries) => entries.join(", "),
        };
        Ok(Self {
            allow_methods: joined(&methods),
            allow_headers: match &headers {
                Listed::Only(names) if !names.is_empty() => Some(joined(&headers)),
                Listed::Any | Listed::Only(_) => None,
            },
            expose_headers: expose.as_ref().map(joined),
            origins,
            methods,
            headers,
            allow_credentials: config.allow_credentials,
            max_age_s: config.max_age_s,
            terminate_unmatched: config.terminate_unmatched.unwrap_or(true),
        })
    }

    /// The headers of the `200` that allows this preflight; `None` when its origin, method
    /// or headers are not all allowed.
    pub(crate) fn answer_preflight(&self, preflight: &Preflight) -> Option<PreflightReply> {
        let OriginHeader::Text(origin) = preflight.origin else {
            return None;
        };
        let method = preflight.method?;
        if !self.origins.allows(origin) || !self.allows_method(method) {
            return None;
        }
        let requested = requested_header_names(&preflight.requested_headers)?;
        let allow_headers = match &self.headers {
            Listed::Any if requested.is_empty() => None,
            Listed::Any => Some(requested.join(", ")),
            Listed::Only(allowed) => {
                let all_allowed = requested
                    .iter()
                    .all(|name| allowed.binary_search(name).is_ok());
                if !all_allowed {
                    return None;
                }
                self.allow_headers.clone()
            }
        };
        let mut headers = vec![
            (ALLOW_ORIGIN, origin.to_string()),
            (
                ALLOW_METHODS,
                match self.methods {
                    Listed::Any => method.to_string(),
                    Listed::Only(_) => self.allow_methods.clone(),
                },
            ),
        ];
        if let Some(allow_headers) = allow_headers {
            headers.push((ALLOW_HEADERS, allow_headers));
        }
        if let Some(age) = self.max_age_s {
            headers.push((MAX_AGE, age.to_string()));
        }
        if self.allow_credentials {
            headers.push((ALLOW_CREDENTIALS, "true".to_string()));
        }
        headers.push((VARY, "Origin".to_string()));
        Some(PreflightReply { headers })
    }

    /// A listed `GET` allows `HEAD` too, as an operation's `methods` do.
    fn allows_method(&self, method: &str) -> bool {
        match &self.methods {
            Listed::Any => is_token(method),
            Listed::Only(methods) => methods
                .iter()
                .any(|m| m == method || (method == "HEAD" && m == "GET")),
        }
    }

    /// The CORS headers of the response to a request that is not a preflight (tollgate's own
    /// replies included). Tollgate owns them where a section applies: an allowed origin gets
    /// them, replacing the upstream's; any other origin gets none, the upstream's removed.
    /// `Vary: Origin` always, since the answer depends on it.
    pub(crate) fn response_headers(&self, origin: OriginHeader) -> CorsHeaders {
        let mut edits = Vec::with_capacity(4);
        match origin {
            OriginHeader::Text(origin) if self.origins.allows(origin) => {
                edits.push(HeaderEdit::Set(ALLOW_ORIGIN.into(), origin.into()));
                edits.push(match self.allow_credentials {
                    true => HeaderEdit::Set(ALLOW_CREDENTIALS.into(), "true".into()),
                    false => HeaderEdit::Remove(ALLOW_CREDENTIALS.into()),
                });
                edits.push(match &self.expose_headers {
                    Some(exposed) => HeaderEdit::Set(EXPOSE_HEADERS.into(), exposed.clone()),
                    None => HeaderEdit::Remove(EXPOSE_HEADERS.into()),
                });
            }
            OriginHeader::Text(_) | OriginHeader::Unusable => {
                edits.extend(
                    [ALLOW_ORIGIN, ALLOW_CREDENTIALS, EXPOSE_HEADERS]
                        .map(|name| HeaderEdit::Remove(name.into())),
                );
            }
            OriginHeader::Absent => {}
        }
        edits.push(HeaderEdit::Append(VARY.into(), "Origin".into()));
        CorsHeaders(edits)
    }
}

/// What kind of entries a list holds.
#[derive(Clone, Copy)]
enum Kind {
    Method,
    Header,
}

/// `allowed_origins`; a refusal names the entry's index when it is about one entry.
fn compile_origins(
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
fn compile_list(at: &str, entries: &[String], kind: Kind) -> Result<Listed, ConfigError> {
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

/// The names in `Access-Control-Request-Headers` (every value of it, comma lists),
/// lower-cased; `None` when one is not a header name.
fn requested_header_names(values: &[&[u8]]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for value in values {
        let text = std::str::from_utf8(value).ok()?;
        for name in text.split(',').map(|name| name.trim_matches([' ', '\t'])) {
            if name.is_empty() {
                continue;
            }
            if !is_token(name) || name == ANY {
                return None;
            }
            names.push(name.to_ascii_lowercase());
        }
    }
    Some(names)
}

/// A request's `Origin` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OriginHeader<'r> {
    Absent,
    Text(&'r str),
    /// Sent more than once, or not text: matches nothing.
    Unusable,
}

impl<'r> OriginHeader<'r> {
    pub(crate) fn read(headers: &'r Headers) -> Self {
        match sole_text(headers, ORIGIN) {
            Sole::Absent => Self::Absent,
            Sole::Text(text) => Self::Text(text),
            Sole::Unusable => Self::Unusable,
        }
    }
}

/// A preflight: an `OPTIONS` request with an `Origin` and an `Access-Control-Request-Method`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Preflight<'r> {
    origin: OriginHeader<'r>,
    /// The method the browser asks about; `None` when sent twice or not text.
    pub(crate) method: Option<&'r str>,
    /// Every value of `Access-Control-Request-Headers`.
    requested_headers: Vec<&'r [u8]>,
}

impl<'r> Preflight<'r> {
    /// The request as a preflight, if it is one.
    pub(crate) fn read(method: &str, headers: &'r Headers) -> Option<Self> {
        if method != "OPTIONS" {
            return None;
        }
        let origin = OriginHeader::read(headers);
        let asked_method = match sole_text(headers, REQUEST_METHOD) {
            Sole::Absent => return None,
            Sole::Text(method) => Some(method),
            Sole::Unusable => None,
        };
        if origin == OriginHeader::Absent {
            return None;
        }
        Some(Self {
            origin,
            method: asked_method,
            requested_headers: headers
                .iter()
                .filter(|(name, _)| name == REQUEST_HEADERS)
                .map(|(_, value)| value.as_slice())
                .collect(),
        })
    }
}

enum Sole<'r> {
    Absent,
    Text(&'r str),
    Unusable,
}

/// The one value of header `lower_name`, as text.
fn sole_text<'r>(headers: &'r Headers, lower_name: &str) -> Sole<'r> {
    let mut values = headers
        .iter()
        .filter(|(name, _)| name == lower_name)
        .map(|(_, value)| value);
    match (values.next(), values.next()) {
        (None, _) => Sole::Absent,
        (Some(value), None) => match std::str::from_utf8(value) {
            Ok(text) => Sole::Text(text),
            Err(_) => Sole::Unusable,
        },
        (Some(_), Some(_)) => Sole::Unusable,
    }
}

/// tollgate's own answer to a preflight: `200` without a body, with the CORS headers when it
/// is allowed and none when not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreflightReply {
    headers: Vec<(&'static str, String)>,
}

impl PreflightReply {
    pub const STATUS: u32 = 200;

    /// The empty `200` of a preflight that does not match (`terminate_unmatched`).
    pub(crate) fn unmatched() -> Self {
        Self::default()
    }

    pub fn headers(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect()
    }

    /// Whether it allows the preflight (carries CORS headers).
    pub fn allows(&self) -> bool {
        !self.headers.is_empty()
    }
}

/// The CORS headers of one response: edits of the upstream's response, whose sets and appends
/// are also the headers of a reply tollgate sends itself (a denial).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsHeaders(Vec<HeaderEdit>);

impl CorsHeaders {
    /// Edits of a response from the upstream, in order.
    pub fn response_edits(&self) -> &[HeaderEdit] {
        &self.0
    }

    /// Headers to add to a local reply (one that has no upstream header to remove).
    pub fn reply_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().filter_map(|edit| match edit {
            HeaderEdit::Set(name, value) | HeaderEdit::Append(name, value) => {
                Some((name.as_str(), value.as_str()))
            }
            HeaderEdit::Remove(_) => None,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests;
