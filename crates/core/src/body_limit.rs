//! `max_request_body_bytes`: the request-size stage. A declared `Content-Length` over the limit
//! is refused with the headers, before credentials are looked at; a body without one (chunked,
//! or HTTP/2 without the header) is counted as it streams and refused the moment it passes the
//! limit — Envoy then resets the upstream request, so the backend never takes a cut-off body
//! for a whole one.

use crate::credential::Headers;
use crate::deny::Denial;

/// The limit of one request, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit {
    pub max_bytes: u64,
}

impl BodyLimit {
    /// Refuses a request whose declared length is over the limit. An unreadable
    /// `Content-Length` is left to Envoy, which refuses it before any filter runs.
    pub fn check_declared(&self, headers: &Headers) -> Result<(), Denial> {
        let declared = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        match declared {
            Some(length) if length > self.max_bytes => Err(Denial::too_large(self.max_bytes)),
            _ => Ok(()),
        }
    }

    /// A counter for the body as it streams.
    pub fn counter(self) -> BodyCounter {
        BodyCounter {
            limit: self,
            seen: 0,
        }
    }
}

/// Bytes of a request body seen so far, against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyCounter {
    limit: BodyLimit,
    seen: u64,
}

impl BodyCounter {
    /// Counts one chunk; the denial to send once the body is over the limit.
    pub fn add(&mut self, chunk_bytes: usize) -> Result<(), Denial> {
        let chunk = u64::try_from(chunk_bytes).unwrap_or(u64::MAX);
        self.seen = self.seen.saturating_add(chunk);
        if self.seen > self.limit.max_bytes {
            return Err(Denial::too_large(self.limit.max_bytes));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
