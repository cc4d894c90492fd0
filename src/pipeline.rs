//! The per-request pipeline of SPEC.md: operation → credential → consumer → authorize → rewrite.
//! It reads the compiled plan and the request headers and returns what to do; the host glue
//! carries it out. Nothing here parses configuration or talks to the host.

use crate::config::{AuthMode, Unmatched};
use crate::credential::{presented_key, query_without, split_path, Headers, PresentedKey};
use crate::deny::Denial;
use crate::operation::OperationId;
use crate::plan::{Operation, Plan};
use crate::rewrite::{upstream_path, HeaderEdit};
use crate::subscription::ConsumerId;
use crate::template::{NoClaims, TemplateValues};

/// What to do with one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Answer with this error; the upstream never sees the request.
    Deny(Denial),
    /// Forward with these changes.
    Forward(Forward),
    /// No operation matched and `unmatched` is `pass`: forward untouched.
    PassThrough,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Forward {
    pub operation: OperationId,
    pub consumer: Option<ConsumerId>,
    pub request_edits: Vec<HeaderEdit>,
    /// New `:path`, when the key left the query or the operation rewrites the path.
    pub path: Option<String>,
    /// Edits for the response, rendered now while the request's identity is at hand.
    pub response_edits: Vec<HeaderEdit>,
}

/// Decides what to do with a request, given all of its headers (pseudo-headers included).
pub fn decide(plan: &Plan, headers: &Headers) -> Verdict {
    let (Some(method), Some(path_and_query)) = (
        text_header(headers, ":method"),
        text_header(headers, ":path"),
    ) else {
        return Verdict::Deny(Denial::bad_request());
    };
    let (path, query) = split_path(path_and_query);

    let Some((operation_id, matched_len)) = plan.match_operation(method, path) else {
        return match plan.unmatched {
            Unmatched::Reject => Verdict::Deny(Denial::no_operation()),
            Unmatched::Pass => Verdict::PassThrough,
        };
    };
    let Some(operation) = plan.operations.get(operation_id) else {
        return Verdict::Deny(Denial::no_operation());
    };

    let consumer = match authenticate(plan, operation, headers, query) {
        Ok(consumer) => consumer,
        Err(denial) => return Verdict::Deny(denial),
    };
    if let Err(denial) = authorize(plan, operation, consumer) {
        return Verdict::Deny(denial);
    }
    Verdict::Forward(rewrite(
        plan,
        operation_id,
        operation,
        consumer,
        path,
        matched_len,
        query,
    ))
}

/// The consumer the request's credentials name, if the operation asks for any.
fn authenticate(
    plan: &Plan,
    operation: &Operation,
    headers: &Headers,
    query: Option<&str>,
) -> Result<Option<ConsumerId>, Denial> {
    match operation.auth {
        AuthMode::None => Ok(None),
        // The plan refuses JWT modes until JWT validation exists; treat them as key auth
        // rather than ever letting a request through unauthenticated.
        AuthMode::SubscriptionKey | AuthMode::Jwt | AuthMode::Either | AuthMode::Both => {
            match presented_key(headers, &plan.key_header, query, &plan.key_query) {
                PresentedKey::Missing => Err(Denial::missing_subscription_key(
                    text_header(headers, ":authority").unwrap_or_default(),
                    &plan.key_header_display,
                )),
                PresentedKey::Conflicting => Err(Denial::invalid_subscription_key()),
                PresentedKey::Found(key) => plan
                    .keys
                    .consumer_for(&key)
                    .map(Some)
                    .ok_or_else(Denial::invalid_subscription_key),
            }
        }
    }
}

fn authorize(
    plan: &Plan,
    operation: &Operation,
    consumer: Option<ConsumerId>,
) -> Result<(), Denial> {
    let Some(consumer) = consumer.and_then(|id| plan.consumers.get(id)) else {
        return Ok(());
    };
    if operation.allows(consumer.product) {
        return Ok(());
    }
    let product = plan
        .products
        .get(consumer.product)
        .map_or("", |p| p.name.as_str());
    Err(Denial::forbidden(&format!(
        "Product '{product}' is not allowed on operation '{}'",
        operation.name
    )))
}

fn rewrite(
    plan: &Plan,
    operation_id: OperationId,
    operation: &Operation,
    consumer: Option<ConsumerId>,
    path: &str,
    matched_len: usize,
    query: Option<&str>,
) -> Forward {
    let consumer_plan = consumer.and_then(|id| plan.consumers.get(id));
    let values = TemplateValues {
        consumer: consumer_plan.map(|c| c.id.as_str()),
        product: consumer_plan
            .and_then(|c| plan.products.get(c.product))
            .map(|p| p.name.as_str()),
        operation: &operation.name,
        claims: &NoClaims,
    };

    // The upstream never sees a subscription key, whichever operation it was sent to.
    let mut request_edits = vec![HeaderEdit::Remove(plan.key_header.clone())];
    operation
        .request_headers
        .push_edits(&values, &mut request_edits);
    let mut response_edits = Vec::new();
    operation
        .response_headers
        .push_edits(&values, &mut response_edits);

    let stripped_query = query.map(|q| query_without(q, &plan.key_query));
    let query_changed =
        matches!((query, &stripped_query), (Some(q), Some(s)) if s.as_deref() != Some(q));
    let path = (operation.rewrite.is_some() || query_changed).then(|| {
        upstream_path(
            path,
            matched_len,
            operation.rewrite.as_deref(),
            stripped_query.flatten().as_deref(),
        )
    });

    Forward {
        operation: operation_id,
        consumer,
        request_edits,
        path,
        response_edits,
    }
}

/// A header's first value as text; `None` when absent or not UTF-8.
fn text_header<'a>(headers: &'a Headers, lower_name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(name, _)| name == lower_name)
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
}

#[cfg(test)]
mod tests;
