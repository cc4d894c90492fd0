//! Checks on names and lists that several sections of the configuration share. A leaf: each
//! compile step uses these without depending on another step.

use crate::config_error::ConfigError;

/// RFC 9110 token characters: what header names and methods are made of.
pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(crate) fn check_header_name(at: &str, name: &str) -> Result<(), ConfigError> {
    if is_token(name) {
        Ok(())
    } else {
        Err(ConfigError::rule(
            at,
            format!("{name:?} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only; pseudo-headers cannot be set)"),
        ))
    }
}

pub(crate) fn check_query_name(at: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty()
        || name.contains(['&', '=', '#', '?', '%', '+'])
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        Err(ConfigError::rule(
            at,
            format!("{name:?} is not a usable query parameter name"),
        ))
    } else {
        Ok(())
    }
}

/// Names that end up in headers, logs and metric labels: printable, no spaces, at most 128
/// bytes.
pub(crate) fn check_identifier(at: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::rule(at, "must not be empty"));
    }
    if name.len() > 128 {
        return Err(ConfigError::rule(at, "must be at most 128 bytes"));
    }
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::rule(
            at,
            format!("{name:?} may only hold printable ASCII without spaces"),
        ));
    }
    Ok(())
}

pub(crate) fn check_path(at: &str, path: &str) -> Result<(), ConfigError> {
    if !path.starts_with('/') {
        return Err(ConfigError::rule(at, "must start with '/'"));
    }
    if path.contains(['?', '#']) {
        return Err(ConfigError::rule(at, "must not contain '?' or '#'"));
    }
    if path.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ConfigError::rule(
            at,
            "must not contain spaces or control characters",
        ));
    }
    Ok(())
}

/// A list given in the configuration must hold something, and no empty strings.
pub(crate) fn non_empty_list(at: &str, values: &[String]) -> Result<(), ConfigError> {
    if values.is_empty() {
        return Err(ConfigError::rule(at, "must not be empty"));
    }
    if let Some(i) = values.iter().position(String::is_empty) {
        return Err(ConfigError::rule(format!("{at}[{i}]"), "must not be empty"));
    }
    Ok(())
}
