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

/// The metric label value when there is no operation or no consumer.
pub const NO_LABEL: &str = "-";

/// A label value fit for a stat name: letters, digits and `_ - : @` kept, anything else
/// (dots above all, which separate the name's parts) becomes `_`.
pub fn metric_label(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Names that become metric labels must stay apart once labelled (`a.b` and `a_b` would
/// share a series) and must not take a label tollgate reserves. `names` yields (path, name).
pub(crate) fn check_distinct_labels<'a>(
    names: impl Iterator<Item = (String, &'a str)>,
    reserved: &[&str],
) -> Result<(), ConfigError> {
    let mut seen: std::collections::HashMap<String, (String, &str)> =
        std::collections::HashMap::new();
    for (at, name) in names {
        let label = metric_label(name);
        if reserved.contains(&label.as_str()) {
            return Err(ConfigError::rule(
                at,
                format!("'{name}' is reserved (its metric label '{label}' means something else)"),
            ));
        }
        if let Some((first_at, first)) = seen.get(&label) {
            return Err(ConfigError::rule(
                at,
                format!(
                    "'{name}' would share the metric label '{label}' with '{first}' ({first_at})"
                ),
            ));
        }
        seen.insert(label, (at, name));
    }
    Ok(())
}
