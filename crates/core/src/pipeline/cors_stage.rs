//! The CORS stage (docs/configuration.md, "CORS"): a preflight is answered at the edge, before
//! credentials are looked at (a browser never sends them on one); every other response gets the
//! CORS headers of the section that applies, tollgate's own denials included, so a browser app can
//! read the APIM error.

use crate::cors::{CorsHeaders, OriginHeader, Preflight, PreflightReply};
use crate::credential::Headers;
use crate::plan::Plan;
use crate::verdict::{Trace, Verdict};

/// tollgate's answer when the request is a preflight it answers: under the section of the
/// operation the *requested* method and path would match. One that does not match gets an
/// empty `200` while the section (or, for no operation or an operation with none, the top
/// level's) says `terminate_unmatched`; otherwise it goes on as any request. With no section
/// at all a preflight is an ordinary request.
pub(super) fn answer_preflight(
    plan: &Plan,
    method: &str,
    path: &str,
    headers: &Headers,
    trace: &mut Trace,
) -> Option<Verdict> {
    let preflight = Preflight::read(method, headers)?;
    let operation = preflight
        .method
        .and_then(|asked| plan.match_operation(asked, path))
        .map(|matched| matched.operation);
    let own = operation.and_then(|id| plan.cors(Some(id)));
    let reply = match own.and_then(|policy| policy.answer_preflight(&preflight)) {
        Some(allowed) => allowed,
        None if own.or_else(|| plan.cors(None))?.terminate_unmatched => PreflightReply::unmatched(),
        None => return None,
    };
    trace.operation = operation;
    Some(Verdict::Preflight(reply))
}

/// The CORS headers of the response to a request that was not answered as a preflight: the
/// section of its operation, or the top level's when none matched. Nothing for a request
/// passed through untouched (`unmatched: pass`): that route is the backend's own.
pub(super) fn response_headers(
    plan: &Plan,
    headers: &Headers,
    trace: &Trace,
    verdict: &Verdict,
) -> CorsHeaders {
    if matches!(verdict, Verdict::Preflight(_) | Verdict::PassThrough(_)) {
        return CorsHeaders::default();
    }
    plan.cors(trace.operation)
        .map(|policy| policy.response_headers(OriginHeader::read(headers)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
