//! `mask_backend_errors` (docs/configuration.md, "Body transforms and backend error masking"): a
//! 5xx that reaches the client — the backend's own, or one Envoy makes when the backend is down,
//! slow or resets — carries only its status, its reason phrase and the request id, so a traceback
//! or an internal host name never leaves the cluster. The original is logged (its first KiB).

use crate::operation::OperationId;

/// How much of an original body the warning log line keeps.
pub const LOGGED_BODY_BYTES: usize = 1024;

/// A reply tollgate writes over the upstream's: status and JSON body (APIM's shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedReply {
    pub status: u32,
    pub body: String,
}

impl MaskedReply {
    fn new(status: u32, phrase: &str, request_id: &str) -> Self {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct ApimError<'a> {
            status_code: u32,
            message: &'a str,
        }
        let message = format!("{phrase}. Request id {request_id}.");
        let body = serde_json::to_string(&ApimError {
            status_code: status,
            message: &message,
        })
        .unwrap_or_default();
        Self { status, body }
    }

    /// 502 for a 2xx that a response transform cannot be applied to.
    pub fn bad_gateway(request_id: &str) -> Self {
        Self::new(502, "Bad gateway", request_id)
    }

    pub fn headers() -> [(&'static str, &'static str); 1] {
        [("content-type", "application/json")]
    }
}

/// Masking for one request: on when its operation (or, without one, the top level) says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMasking {
    /// For the per-operation count; `None` for a request no operation matched.
    pub operation: Option<OperationId>,
    pub request_id: String,
}

impl ErrorMasking {
    /// The reply that replaces a response of `status`, when it is masked (5xx only).
    pub fn mask(&self, status: Option<u32>) -> Option<MaskedReply> {
        let status = status.filter(|s| (500..600).contains(s))?;
        Some(MaskedReply::new(
            status,
            reason_phrase(status),
            &self.request_id,
        ))
    }
}

/// RFC 9110's reason phrases of the 5xx statuses (and the registered extensions).
pub fn reason_phrase(status: u32) -> &'static str {
    match status {
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "Server Error",
    }
}

/// The start of an original body as one log-safe line: lossy UTF-8, control characters
/// escaped, at most `LOGGED_BODY_BYTES` of the input.
pub fn loggable(body: &[u8]) -> String {
    let head = body.get(..LOGGED_BODY_BYTES).unwrap_or(body);
    String::from_utf8_lossy(head).escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masking() -> ErrorMasking {
        ErrorMasking {
            operation: Some(0),
            request_id: "6f1d-aa".to_string(),
        }
    }

    #[test]
    fn a_5xx_keeps_its_status_and_names_the_request() {
        let reply = masking().mask(Some(500)).unwrap();
        assert_eq!(reply.status, 500);
        assert_eq!(
            reply.body,
            r#"{"statusCode":500,"message":"Internal Server Error. Request id 6f1d-aa."}"#
        );
        let reply = masking().mask(Some(503)).unwrap();
        assert_eq!(
            reply.body,
            r#"{"statusCode":503,"message":"Service Unavailable. Request id 6f1d-aa."}"#
        );
        assert!(masking()
            .mask(Some(599))
            .unwrap()
            .body
            .contains("Server Error."));
    }

    #[test]
    fn nothing_under_500_is_masked() {
        for status in [200, 201, 301, 400, 404, 422, 429, 499] {
            assert_eq!(masking().mask(Some(status)), None, "{status}");
        }
        assert_eq!(masking().mask(Some(600)), None);
        assert_eq!(masking().mask(None), None);
    }

    #[test]
    fn the_log_keeps_one_kib_on_one_line() {
        let body = format!("Traceback\n  File \"app.py\"\n{}", "x".repeat(5000));
        let logged = loggable(body.as_bytes());
        assert!(logged.starts_with("Traceback\\n  File \\\"app.py\\\"\\n"));
        assert!(!logged.contains('\n'));
        assert_eq!(logged.matches('x').count(), LOGGED_BODY_BYTES - 26);
        assert_eq!(loggable(b"\xff short"), "\u{fffd} short");
    }

    #[test]
    fn the_bad_gateway_of_a_transform() {
        assert_eq!(
            MaskedReply::bad_gateway("r1").body,
            r#"{"statusCode":502,"message":"Bad gateway. Request id r1."}"#
        );
    }
}
