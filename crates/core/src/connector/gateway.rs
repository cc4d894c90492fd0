//! What tollgate itself puts in an operation's responses, for both outputs: its own answers
//! (the refusals of the caller IP filter, authentication, authorization and limits, with
//! `Retry-After` where it sends one; 404 for a path parameter that is no single segment) and the
//! rate-limit headers it adds to the responses it lets through (docs/responses.md).

use crate::config::AuthMode;
use crate::connector::public_api::Exposed;
use crate::plan::{Operation, Plan, Product};
use serde_json::{Map, Value};

/// One answer tollgate gives before the backend sees the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: &'static str,
    pub description: &'static str,
    /// Whether it carries `Retry-After` (429 always, 403 when the quota is spent).
    pub retry_after: bool,
    /// Its name among the OpenAPI description's `components.responses`.
    pub component: &'static str,
}

const UNAUTHORIZED: Answer = Answer {
    status: "401",
    description: "Access denied: the subscription key or the token is missing or invalid ({\"statusCode\": 401, \"message\": ...}).",
    retry_after: false,
    component: "TollgateUnauthorized",
};
const FORBIDDEN: Answer = Answer {
    status: "403",
    description: "Access denied: the product may not call this operation or a required claim is missing; or out of call volume quota, replenished after Retry-After seconds.",
    retry_after: true,
    component: "TollgateForbidden",
};
/// 403 where an `ip_filter` applies too: the caller's address comes first.
const FORBIDDEN_OR_ADDRESS: Answer = Answer {
    status: "403",
    description: "Access denied: the caller's address may not call this API (\"Forbidden\"), the product may not call this operation or a required claim is missing; or out of call volume quota, replenished after Retry-After seconds.",
    retry_after: true,
    component: "TollgateForbiddenOrAddress",
};
/// 403 of an operation open to anyone that an `ip_filter` applies to.
const ADDRESS_FORBIDDEN: Answer = Answer {
    status: "403",
    description: "Forbidden: the caller's address may not call this API ({\"statusCode\": 403, \"message\": \"Forbidden\"}).",
    retry_after: false,
    component: "TollgateAddressForbidden",
};
const TOO_MANY: Answer = Answer {
    status: "429",
    description: "Rate limit is exceeded. Try again in Retry-After seconds.",
    retry_after: true,
    component: "TollgateTooManyRequests",
};
const BAD_PATH: Answer = Answer {
    status: "400",
    description: "Bad request: an escaped '/' or '\\', a NUL or a '#' in the path, refused by the gateway before tollgate ({\"statusCode\": 400, \"message\": ...}).",
    retry_after: false,
    component: "TollgateBadRequest",
};
const NOT_FOUND: Answer = Answer {
    status: "404",
    description: "Unable to match incoming request to an operation: a path parameter is one non-empty segment, never '/', '.' or '..' ({\"statusCode\": 404, \"message\": ...}).",
    retry_after: false,
    component: "TollgateNotFound",
};

const BAD_BODY: Answer = Answer {
    status: "400",
    description: "Bad request: the body is not valid JSON, or the operation's transform failed on it ({\"statusCode\": 400, \"message\": ...}).",
    retry_after: false,
    component: "TollgateBadBody",
};
const TOO_LARGE: Answer = Answer {
    status: "413",
    description:
        "The body is larger than the operation's limit ({\"statusCode\": 413, \"message\": ...}).",
    retry_after: false,
    component: "TollgatePayloadTooLarge",
};
const NOT_JSON: Answer = Answer {
    status: "415",
    description: "Request body must be JSON ({\"statusCode\": 415, \"message\": ...}).",
    retry_after: false,
    component: "TollgateUnsupportedMediaType",
};
const BAD_GATEWAY: Answer = Answer {
    status: "502",
    description: "Bad gateway: the backend's answer could not be transformed; the message names the request id ({\"statusCode\": 502, \"message\": ...}).",
    retry_after: false,
    component: "TollgateBadGateway",
};

pub(crate) const RETRY_AFTER: &str = "Retry-After";
pub(crate) const RETRY_AFTER_TEXT: &str = "Seconds to wait before calling again (a whole number, at least 1, at most the window's length); sent with 429, and with 403 when the quota is spent.";

/// The answers tollgate itself may give an exposed operation's callers: the caller IP
/// filter's 403 where one applies; the refusals of authentication, authorization and limits
/// when the operation has a caller to refuse; and 404 when a path parameter's value is no
/// single segment (400 from the shipped Envoy configurations when it holds an escaped `/` or
/// `\`).
pub(crate) fn answers(exposed: &Exposed) -> Vec<Answer> {
    let mut answers = Vec::new();
    match (exposed.operation.auth, exposed.ip_filtered) {
        (AuthMode::None, false) => {}
        (AuthMode::None, true) => answers.push(ADDRESS_FORBIDDEN),
        (_, false) => answers.extend([UNAUTHORIZED, FORBIDDEN, TOO_MANY]),
        (_, true) => answers.extend([UNAUTHORIZED, FORBIDDEN_OR_ADDRESS, TOO_MANY]),
    }
    let has_params = exposed.public_path.contains('{');
    if has_params {
        answers.extend([BAD_PATH, NOT_FOUND]);
    }
    if exposed.operation.request_body.is_some() {
        if !has_params {
            answers.push(BAD_BODY);
        }
        answers.extend([TOO_LARGE, NOT_JSON]);
    }
    if exposed.operation.response_body.is_some() {
        answers.push(BAD_GATEWAY);
    }
    answers
}

/// Puts tollgate's answer under its status: it replaces what the backend documents for 401,
/// 403 and 429 (the backend never sees those calls), but a 400 or 404 the backend documents
/// (its own) stays. Whether it was put.
pub(crate) fn insert_answer(
    responses: &mut Map<String, Value>,
    answer: &Answer,
    value: Value,
) -> bool {
    if matches!(answer.status, "400" | "404") && responses.contains_key(answer.status) {
        return false;
    }
    responses.insert(answer.status.to_string(), value);
    true
}

/// A rate-limit header of the responses tollgate lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RateHeader {
    /// As the configuration names it (`rate_limit_headers`).
    pub name: String,
    pub description: &'static str,
    /// Its name among the OpenAPI description's `components.headers`.
    pub component: &'static str,
}

/// The headers tollgate adds to an operation's admitted responses: the three rate-limit
/// headers, when the configuration sends them (`rate_limit_headers` is not "none") and a
/// consumer that may call the operation has a limit; none for `auth: none` (no consumer).
pub(crate) fn rate_headers(plan: &Plan, operation: &Operation) -> Vec<RateHeader> {
    let Some(names) = plan.rate_headers.as_ref() else {
        return Vec::new();
    };
    let limited = |product: &Product| product.limits.any() || product.global.any();
    let any_limited = match &operation.products {
        Some(allowed) => allowed
            .iter()
            .filter_map(|id| plan.products.get(*id))
            .any(limited),
        None => plan.products.iter().any(limited),
    };
    if operation.auth == AuthMode::None || !any_limited {
        return Vec::new();
    }
    vec![
        RateHeader {
            name: names.limit.clone(),
            description: "Calls allowed in the current window of the tightest limit (rate limit or quota) of the caller's product.",
            component: "RateLimitLimit",
        },
        RateHeader {
            name: names.remaining.clone(),
            description: "Calls left in that window.",
            component: "RateLimitRemaining",
        },
        RateHeader {
            name: names.reset.clone(),
            description: "Seconds until that window resets.",
            component: "RateLimitReset",
        },
    ]
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(extra: Value) -> Plan {
        let mut config = json!({
        "products": {"limited": {"quota": {"calls": 10, "renewal_period_s": 60}},
                     "free": {}},
        "consumers": [{"id": "c", "product": "free",
            "keys": [format!("sha256:{}", "0".repeat(64))]}],
        "operations": [
            {"name": "any", "path": "/any"},
            {"name": "free", "path": "/free", "products": ["free"]},
            {"name": "open", "path": "/open", "auth": "none"}
        ]});
        if let (Value::Object(config), Value::Object(extra)) = (&mut config, extra) {
            config.extend(extra);
        }
        Plan::from_json(config.to_string().as_bytes()).unwrap()
    }

    fn names(plan: &Plan, operation: usize) -> Vec<String> {
        rate_headers(plan, &plan.operations[operation])
            .into_iter()
            .map(|h| h.name)
            .collect()
    }

    #[test]
    fn rate_headers_where_a_limited_consumer_may_call_under_the_configured_names() {
        let plan = config(json!({}));
        assert_eq!(
            names(&plan, 0),
            [
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset"
            ]
        );
        // Only an unlimited product may call it; no consumer at all.
        assert!(names(&plan, 1).is_empty());
        assert!(names(&plan, 2).is_empty());
        let renamed = config(json!({"rate_limit_headers": {"limit": "X-RL-Limit"}}));
        assert_eq!(names(&renamed, 0)[0], "x-rl-limit");
        let off = config(json!({"rate_limit_headers": "none"}));
        assert!(names(&off, 0).is_empty());
    }
}
