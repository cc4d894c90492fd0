//! What tollgate sends back for CORS: its answer to a preflight, and the headers a response
//! to any other request gets.

use crate::rewrite::HeaderEdit;

/// tollgate's own answer to a preflight: `200` without a body, with the CORS headers when it
/// is allowed and none when not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreflightReply {
    headers: Vec<(&'static str, String)>,
}

impl PreflightReply {
    pub const STATUS: u32 = 200;

    pub(super) fn allowing(headers: Vec<(&'static str, String)>) -> Self {
        Self { headers }
    }

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
pub struct CorsHeaders(pub(super) Vec<HeaderEdit>);

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
