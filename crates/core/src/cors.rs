//! APIM's `cors` policy (docs/configuration.md, "CORS"): a section checked and compiled at load;
//! per request, tollgate's answer to a preflight, and the CORS headers a cross-origin response
//! carries. Which section applies to a request is the pipeline's to say (`pipeline/cors_stage.rs`).

mod check;
pub(crate) mod origin;
mod reply;
mod request;

pub use reply::{CorsHeaders, PreflightReply};
pub(crate) use request::{OriginHeader, Preflight};

use crate::checks::is_token;
use crate::config::{CorsConfig, Override};
use crate::config_error::ConfigError;
use crate::rewrite::HeaderEdit;
use check::{compile_list, compile_origins, CorsError, Kind};
use origin::AllowedOrigins;
use request::requested_header_names;
use std::sync::Arc;

const ALLOW_ORIGIN: &str = "access-control-allow-origin";
const ALLOW_METHODS: &str = "access-control-allow-methods";
const ALLOW_HEADERS: &str = "access-control-allow-headers";
const ALLOW_CREDENTIALS: &str = "access-control-allow-credentials";
const EXPOSE_HEADERS: &str = "access-control-expose-headers";
const MAX_AGE: &str = "access-control-max-age";
const VARY: &str = "vary";

/// The one list entry that stands for everything.
const ANY: &str = "*";

/// The longest `max_age_s` accepted: browsers cap it lower still (Firefox at a day, Chromium
/// at two hours), so more would only mislead.
pub(crate) const MAX_AGE_LIMIT_S: u64 = 86_400;

/// Methods allowed when `allowed_methods` is left out (APIM's default).
pub(crate) const DEFAULT_METHODS: [&str; 2] = ["GET", "POST"];

/// A list that is either everything (`*`) or these entries.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Listed {
    Any,
    /// Normalised: methods upper-cased, header names lower-cased; header names sorted.
    Only(Vec<String>),
}

/// One `cors` section, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CorsPolicy {
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
        Some(PreflightReply::allowing(headers))
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

#[cfg(test)]
mod tests;
