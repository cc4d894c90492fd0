//! The APIM error catalogue: every response tollgate itself sends, in one place
//! (docs/responses.md). Bodies are `{"statusCode": <int>, "message": "<text>"}`;
//! no message ever carries a key or a token.

/// Why a request was refused, in the words the metrics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    MissingCredential,
    InvalidCredential,
    Forbidden,
    RateLimited,
    QuotaExceeded,
    NoOperation,
    /// The rate-limit service could not count a global limit (`failure_mode: deny`).
    Unavailable,
    /// The request body is over `max_request_body_bytes`, or over a transform's `max_bytes`.
    TooLarge,
    /// The request body of a transformed operation is not JSON, or the transform failed on it.
    BadBody,
    /// The caller's address is not let in by the `ip_filter` that applies.
    IpForbidden,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::MissingCredential => "missing_credential",
            Outcome::InvalidCredential => "invalid_credential",
            Outcome::Forbidden => "forbidden",
            Outcome::RateLimited => "rate_limited",
            Outcome::QuotaExceeded => "quota_exceeded",
            Outcome::NoOperation => "no_operation",
            Outcome::Unavailable => "unavailable",
            Outcome::TooLarge => "too_large",
            Outcome::BadBody => "bad_body",
            Outcome::IpForbidden => "ip_forbidden",
        }
    }
}

/// A response tollgate sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub status: u32,
    pub outcome: Outcome,
    pub message: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Denial {
    fn new(status: u32, outcome: Outcome, message: impl Into<String>) -> Self {
        Self {
            status,
            outcome,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 401: no subscription key in the header or the query. `realm` is the request's host;
    /// `header` the key header's name as configured.
    pub fn missing_subscription_key(realm: &str, header: &str) -> Self {
        Self::new(
            401,
            Outcome::MissingCredential,
            "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.",
        )
        .with_header(
            "www-authenticate",
            format!(
                "AzureApiManagementKey realm=\"{}\",name=\"{}\",type=\"header\"",
                quoted_string_safe(realm),
                quoted_string_safe(header)
            ),
        )
    }

    /// 401: a key was sent but belongs to no consumer.
    pub fn invalid_subscription_key() -> Self {
        Self::new(
            401,
            Outcome::InvalidCredential,
            "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.",
        )
    }

    /// 401: the operation needs a JWT and no bearer token came.
    pub fn missing_jwt() -> Self {
        Self::new(401, Outcome::MissingCredential, "JWT not present.")
            .with_header("www-authenticate", "Bearer".to_string())
    }

    /// 401: the bearer token failed verification; the failure's text is short and never quotes
    /// the token.
    pub fn invalid_jwt(failure: crate::jwt::failure::JwtFailure) -> Self {
        Self::new(
            401,
            Outcome::InvalidCredential,
            format!("JWT validation failed: {failure}. Access denied."),
        )
        .with_header(
            "www-authenticate",
            "Bearer error=\"invalid_token\"".to_string(),
        )
    }

    /// 401 for `auth: either` when neither credential came: the key message, with both
    /// challenges so a client can pick the one it has.
    pub fn missing_key_or_jwt(realm: &str, header: &str) -> Self {
        Self::missing_subscription_key(realm, header)
            .with_header("www-authenticate", "Bearer".to_string())
    }

    /// 403: the consumer is known but something it needs is missing; `what` says what,
    /// without a trailing full stop.
    pub fn forbidden(what: &str) -> Self {
        Self::new(403, Outcome::Forbidden, format!("{what}. Access denied."))
    }

    /// 429: the consumer's rate limit is used up for this window.
    pub fn rate_limited(retry_after_s: u64) -> Self {
        Self::new(
            429,
            Outcome::RateLimited,
            format!("Rate limit is exceeded. Try again in {retry_after_s} seconds."),
        )
        .with_header("retry-after", retry_after_s.to_string())
    }

    /// 403: the consumer's quota is used up until the window renews.
    pub fn quota_exceeded(retry_after_s: u64) -> Self {
        let (hours, minutes, seconds) = (
            retry_after_s / 3600,
            retry_after_s / 60 % 60,
            retry_after_s % 60,
        );
        Self::new(
            403,
            Outcome::QuotaExceeded,
            format!(
                "Out of call volume quota. Quota will be replenished in {hours:02}:{minutes:02}:{seconds:02}."
            ),
        )
        .with_header("retry-after", retry_after_s.to_string())
    }

    /// 503: the rate-limit service cannot count a global limit and `failure_mode` is `deny`.
    pub fn limit_service_unavailable() -> Self {
        Self::new(
            503,
            Outcome::Unavailable,
            "Rate limit service unavailable. Try again in 1 seconds.",
        )
        .with_header("retry-after", "1".to_string())
    }

    /// 403: the `ip_filter` that applies does not let the caller's address in (APIM's
    /// `ip-filter` answers with the bare "Forbidden" too).
    pub fn ip_forbidden() -> Self {
        Self::new(403, Outcome::IpForbidden, "Forbidden")
    }

    /// 404: no operation matches and `unmatched` is `reject`.
    pub fn no_operation() -> Self {
        Self::new(
            404,
            Outcome::NoOperation,
            "Unable to match incoming request to an operation.",
        )
    }

    /// 413: the body is (or declares to be) over `max_request_body_bytes`.
    pub fn too_large(max_bytes: u64) -> Self {
        Self::new(
            413,
            Outcome::TooLarge,
            format!("Request body is larger than {max_bytes} bytes."),
        )
    }

    /// 413: the body of a transformed operation is over its `max_bytes`.
    pub fn body_too_large(max_bytes: u64) -> Self {
        Self::too_large(max_bytes)
    }

    /// 415: an operation that transforms its request body got another type than JSON.
    pub fn body_not_json_type() -> Self {
        Self::new(415, Outcome::BadBody, "Request body must be JSON.")
    }

    /// 400: the body of a transformed operation does not parse as JSON.
    pub fn body_not_json() -> Self {
        Self::new(400, Outcome::BadBody, "Request body is not valid JSON.")
    }

    /// 400: the request transform failed on this body; `reason` is the expression's error.
    pub fn body_transform_failed(reason: &str) -> Self {
        Self::new(
            400,
            Outcome::BadBody,
            format!(
                "Request body could not be transformed: {}.",
                reason.trim_end_matches('.')
            ),
        )
    }

    /// 400: the request line itself cannot be read (a path that is not UTF-8).
    pub fn bad_request() -> Self {
        Self::new(400, Outcome::NoOperation, "Bad request.")
    }

    /// The JSON body, APIM's shape and field order.
    /// The reply's headers: JSON, plus the denial's own (`WWW-Authenticate`, `Retry-After`).
    pub fn reply_headers(&self) -> Vec<(&str, &str)> {
        let mut headers = Vec::with_capacity(1 + self.headers.len());
        headers.push(("content-type", "application/json"));
        headers.extend(
            self.headers
                .iter()
                .map(|(name, value)| (*name, value.as_str())),
        );
        headers
    }

    pub fn body(&self) -> String {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct ApimError<'a> {
            status_code: u32,
            message: &'a str,
        }
        serde_json::to_string(&ApimError {
            status_code: self.status,
            message: &self.message,
        })
        .unwrap_or_default()
    }
}

/// Text fit inside a quoted-string of a header: printable ASCII without `"` or `\`, so a hostile
/// `Host` cannot break out of the `realm="..."` quotes.
fn quoted_string_safe(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .filter(|c| *c != '"' && *c != '\\')
        .take(256)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_key_matches_apim_wording_and_challenge() {
        let d = Denial::missing_subscription_key("api.contoso.com", "Ocp-Apim-Subscription-Key");
        assert_eq!(d.status, 401);
        assert_eq!(
            d.body(),
            r#"{"statusCode":401,"message":"Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API."}"#
        );
        assert_eq!(
            d.headers,
            vec![(
                "www-authenticate",
                r#"AzureApiManagementKey realm="api.contoso.com",name="Ocp-Apim-Subscription-Key",type="header""#
                    .to_string()
            )]
        );
    }

    #[test]
    fn hostile_host_cannot_break_the_challenge_quotes() {
        let d = Denial::missing_subscription_key("evil\"\r\nx: y\\", "K");
        assert_eq!(
            d.headers[0].1,
            r#"AzureApiManagementKey realm="evilx: y",name="K",type="header""#
        );
    }

    #[test]
    fn throttling_denials() {
        let d = Denial::rate_limited(7);
        assert_eq!((d.status, d.outcome), (429, Outcome::RateLimited));
        assert_eq!(d.message, "Rate limit is exceeded. Try again in 7 seconds.");
        assert_eq!(d.headers, vec![("retry-after", "7".to_string())]);
        let d = Denial::quota_exceeded(16 * 3600 + 5 * 60 + 9);
        assert_eq!((d.status, d.outcome), (403, Outcome::QuotaExceeded));
        assert_eq!(
            d.message,
            "Out of call volume quota. Quota will be replenished in 16:05:09."
        );
        assert_eq!(d.headers, vec![("retry-after", "57909".to_string())]);
        assert!(Denial::quota_exceeded(30 * 86400)
            .message
            .contains("in 720:00:00."));
    }

    #[test]
    fn jwt_denials() {
        let missing = Denial::missing_jwt();
        assert_eq!(missing.status, 401);
        assert_eq!(missing.message, "JWT not present.");
        assert_eq!(
            missing.headers,
            vec![("www-authenticate", "Bearer".to_string())]
        );
        let invalid = Denial::invalid_jwt(crate::jwt::failure::JwtFailure::Expired);
        assert_eq!(
            invalid.message,
            "JWT validation failed: token has expired. Access denied."
        );
        assert_eq!(
            invalid.headers,
            vec![(
                "www-authenticate",
                r#"Bearer error="invalid_token""#.to_string()
            )]
        );
        assert_eq!(Denial::missing_key_or_jwt("h", "K").headers.len(), 2);
    }

    #[test]
    fn bodies_parse_as_apim_json() {
        for d in [
            Denial::invalid_subscription_key(),
            Denial::forbidden("Product 'starter' is not allowed on operation 'v'"),
            Denial::no_operation(),
            Denial::ip_forbidden(),
        ] {
            let v: serde_json::Value = serde_json::from_str(&d.body()).unwrap();
            assert_eq!(v["statusCode"], d.status);
            assert_eq!(v["message"], d.message.as_str());
        }
        assert_eq!(
            Denial::forbidden("Product 'starter' is not allowed on operation 'v'").message,
            "Product 'starter' is not allowed on operation 'v'. Access denied."
        );
        assert_eq!(Denial::no_operation().status, 404);
        assert_eq!(
            Denial::ip_forbidden().body(),
            r#"{"statusCode":403,"message":"Forbidden"}"#
        );
        assert_eq!(Denial::ip_forbidden().outcome.as_str(), "ip_forbidden");
    }
}
