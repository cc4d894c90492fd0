//! What the pipeline decides about a request, as plain values the glue carries out: deny,
//! forward with edits, pass through untouched, answer a CORS preflight, or ask the rate-limit
//! service first.

use crate::body_limit::BodyLimit;
use crate::body_transform::{RequestReshape, ResponseReshape};
use crate::cache::CacheRequest;
use crate::cors::{CorsHeaders, PreflightReply};
use crate::deny::Denial;
use crate::error_masking::ErrorMasking;
use crate::global_limits::Asked;
use crate::limits::{tightest, CounterState, Limits, RateHeaders};
use crate::operation::OperationId;
use crate::plan::Plan;
use crate::rewrite::HeaderEdit;
use crate::subscription::ConsumerId;

/// Everything `decide` found out about one request: what to do, and what the host needs to
/// know besides (for metrics, logs and key refresh).
#[derive(Debug, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    /// What the request turned out to be, as far as the pipeline got.
    pub trace: Trace,
    /// A token named a `kid` no key has: the provider may have rotated its keys.
    pub unknown_kid: bool,
    /// The limit to count the request's body against as it streams, when it goes on
    /// (`max_request_body_bytes`; a declared length over it was refused already).
    pub request_body_limit: Option<BodyLimit>,
    /// 5xx answers to replace, when the request goes on and masking is on for it.
    pub error_masking: Option<ErrorMasking>,
    /// CORS headers for whatever response the request gets: the upstream's, or a denial
    /// tollgate sends (now, or once the rate-limit service answers).
    pub cors: CorsHeaders,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Trace {
    pub operation: Option<OperationId>,
    /// The consumer's id, once known.
    pub consumer: Option<String>,
    /// Its index, for a configured consumer.
    pub configured_consumer: Option<ConsumerId>,
    /// The consumer came through `jwt.default_product`.
    pub dynamic_consumer: bool,
}

/// What to do with one request.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Answer with this error; the upstream never sees the request.
    Deny(Denial),
    /// A CORS preflight, answered by tollgate (`200`, no body).
    Preflight(PreflightReply),
    /// Forward with these changes.
    Forward(Forward),
    /// No operation matched and `unmatched` is `pass`: forward untouched but for these edits
    /// (the identity headers tollgate owns, removed when the client sent them).
    PassThrough(Vec<HeaderEdit>),
    /// Admitted so far; the rate-limit service must count the global limits before the
    /// request may go on (`global_answer::settle` reads its answer).
    AskGlobal(Box<GlobalCheck>),
}

#[derive(Debug, PartialEq)]
pub struct Forward {
    pub operation: OperationId,
    /// The consumer's id, when the operation identifies its callers.
    pub consumer: Option<String>,
    pub request_edits: Vec<HeaderEdit>,
    /// New `:path`, when the key left the query or the operation rewrites the path.
    pub path: Option<String>,
    /// Edits for the response, rendered now while the request's identity is at hand.
    pub response_edits: Vec<HeaderEdit>,
    /// Where the answer may be in the response cache (a GET or HEAD of a cached operation,
    /// admitted: a hit counts against the consumer's limits like any call).
    pub cache: Option<CacheRequest>,
    /// The request body to reshape once complete (`request_body`, and a body follows).
    pub request_body: Option<RequestReshape>,
    /// The response body to reshape (`response_body`).
    pub response_body: Option<ResponseReshape>,
}

/// A request waiting for the rate-limit service.
#[derive(Debug, PartialEq)]
pub struct GlobalCheck {
    /// The serialized `ShouldRateLimit` request.
    pub message: Vec<u8>,
    /// The forward to make once admitted (rate-limit headers still to come).
    pub(crate) forward: Forward,
    /// What the local limits reported.
    pub(crate) local_headers: Option<RateHeaders>,
    /// The local limits and the state their counting wrote, to give the count back if a
    /// global limit refuses the request (counted only when admitted by all).
    pub(crate) local_counted: Option<(Limits, CounterState)>,
    /// The global limits asked, in descriptor order.
    pub(crate) asked: Vec<Asked>,
    /// Whose counters: the local limits' count given back on a refusal, and the fallback
    /// counted when the service fails and `failure_mode` is `local`.
    pub(crate) owner: CounterOwner,
}

/// The consumer whose counters a waiting request touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CounterOwner {
    Configured(ConsumerId),
    /// A dynamic JWT consumer, by id (`jwt:<client>`).
    Dynamic(String),
}

/// Forwards with the rate-limit headers of the tightest of the reports, when configured.
pub(crate) fn forward_with_headers(
    plan: &Plan,
    mut forward: Forward,
    reports: [Option<RateHeaders>; 2],
) -> Verdict {
    let [a, b] = reports;
    if let (Some(names), Some(values)) = (&plan.rate_headers, tightest(a, b)) {
        forward.response_edits.extend([
            HeaderEdit::Set(names.limit.clone(), values.limit.to_string()),
            HeaderEdit::Set(names.remaining.clone(), values.remaining.to_string()),
            HeaderEdit::Set(names.reset.clone(), values.reset_s.to_string()),
        ]);
    }
    Verdict::Forward(forward)
}
