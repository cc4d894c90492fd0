//! What a request tells CORS: its `Origin`, and whether it is a preflight and what it asks for.

use super::ANY;
use crate::checks::is_token;
use crate::credential::Headers;

const ORIGIN: &str = "origin";
const REQUEST_METHOD: &str = "access-control-request-method";
const REQUEST_HEADERS: &str = "access-control-request-headers";

/// The names in `Access-Control-Request-Headers` (every value of it, comma lists),
/// lower-cased; `None` when one is not a header name.
pub(super) fn requested_header_names(values: &[&[u8]]) -> Option<Vec<String>> {
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
    pub(super) origin: OriginHeader<'r>,
    /// The method the browser asks about; `None` when sent twice or not text.
    pub(crate) method: Option<&'r str>,
    /// Every value of `Access-Control-Request-Headers`.
    pub(super) requested_headers: Vec<&'r [u8]>,
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
