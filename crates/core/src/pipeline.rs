//! The per-request pipeline (docs/how-it-works.md): operation → caller IP filter
//! → preflight → request size → credential → consumer → authorize → admit → rewrite → cache key, and the CORS
//! headers of the response.
//! It reads the compiled plan and the request headers and returns what to do; the host glue
//! carries it out. Nothing here parses configuration or talks to the host.

mod cors_stage;

use crate::body_transform::{
    check_request_headers, request_id, Credentials, Facts, RequestReshape, ResponseReshape,
};
use crate::cache::{self, CachePolicy, CacheRequest, KeyParts};
use crate::config::{AuthMode, Unmatched};
use crate::credential::{
    bearer_token, presented_key, query_without, split_path, Headers, PresentedKey, PresentedToken,
};
use crate::deny::Denial;
use crate::dynamic_consumers::Pool;
use crate::error_masking::ErrorMasking;
use crate::global_limits::{self, Asked};
use crate::ip_filter::{admit_caller, SourceAddress};
use crate::jwt::claims::header_text;
use crate::jwt::failure::JwtFailure;
use crate::jwt::keys::KeySet;
use crate::jwt::token_cache::TokenCache;
use crate::jwt::verify::VerifiedToken;
use crate::jwt::JwtPlan;
use crate::limits::{CounterState, CounterStore, Limits, RateHeaders};
use crate::local_count::{self, Counter};
use crate::operation::OperationId;
use crate::path_template::is_ambiguous;
use crate::plan::{Operation, Plan, ProductId};
use crate::rewrite::{upstream_path, HeaderEdit};
use crate::route_table::{Matched, RouteMatch};
use crate::subscription::ConsumerId;
use crate::subscription::KnownKeys;
use crate::template::{ClaimSource, NoClaims, TemplateValues};
use crate::verdict::{forward_with_headers, CounterOwner};
use crate::verdict::{Decision, Forward, GlobalCheck, Trace, Verdict};
use std::rc::Rc;

/// Who is calling: a configured consumer, or a JWT client admitted through
/// `jwt.default_product` as its own consumer `jwt:<client>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumer<'p> {
    Configured(ConsumerId, &'p crate::plan::Consumer),
    Dynamic { id: String, product: ProductId },
}

impl Consumer<'_> {
    pub fn id(&self) -> &str {
        match self {
            Consumer::Configured(_, consumer) => &consumer.id,
            Consumer::Dynamic { id, .. } => id,
        }
    }

    pub fn product(&self) -> ProductId {
        match self {
            Consumer::Configured(_, consumer) => consumer.product,
            Consumer::Dynamic { product, .. } => *product,
        }
    }
}

/// What authentication established.
struct Caller<'p> {
    consumer: Option<Consumer<'p>>,
    token: Option<Rc<VerifiedToken>>,
}

/// The time as the host tells it (proxy-wasm `get_current_time` in Envoy), in Unix ms.
pub trait Clock {
    fn now_ms(&self) -> u64;
}

/// What the pipeline reads besides the request: the time (read once per request), the VM's
/// verified-token cache, the process-wide counter store, and the keys fetched so far.
pub struct RequestEnv<'a> {
    pub now_ms: u64,
    pub tokens: &'a mut TokenCache,
    pub counters: &'a dyn CounterStore,
    /// Signing keys fetched from the identity provider, if any yet.
    pub fetched_keys: Option<&'a KeySet>,
    /// The VM's valid subscription keys seen so far, if it keeps them.
    pub known_keys: Option<&'a mut KnownKeys>,
    /// A body follows the headers (the headers did not end the request): only then is there
    /// a body to transform.
    pub body_follows: bool,
    /// Where the caller's address is read, only when an `ip_filter` applies; without it, a
    /// filter refuses every caller.
    pub source_address: Option<&'a dyn SourceAddress>,
}

impl<'a> RequestEnv<'a> {
    pub fn new(
        clock: &dyn Clock,
        tokens: &'a mut TokenCache,
        counters: &'a dyn CounterStore,
    ) -> Self {
        Self {
            now_ms: clock.now_ms(),
            tokens,
            counters,
            fetched_keys: None,
            known_keys: None,
            body_follows: true,
            source_address: None,
        }
    }

    fn now_unix_s(&self) -> u64 {
        self.now_ms / 1000
    }
}

/// Decides what to do with a request, given all of its headers (pseudo-headers included).
pub fn decide(plan: &Plan, headers: &Headers, env: &mut RequestEnv) -> Decision {
    let mut trace = Trace::default();
    let mut unknown_kid = false;
    let verdict = run(plan, headers, env, &mut trace, &mut unknown_kid);
    let request_body_limit = match &verdict {
        Verdict::Deny(_) | Verdict::Preflight(_) => None,
        Verdict::PassThrough(_) => plan.body_limit,
        Verdict::Forward(_) | Verdict::AskGlobal(_) => trace
            .operation
            .and_then(|id| plan.operations.get(id))
            .and_then(|operation| operation.body_limit),
    };
    let masking = match &verdict {
        Verdict::Deny(_) | Verdict::Preflight(_) => false,
        Verdict::PassThrough(_) => plan.mask_backend_errors,
        Verdict::Forward(_) | Verdict::AskGlobal(_) => trace
            .operation
            .and_then(|id| plan.operations.get(id))
            .is_some_and(|operation| operation.mask_backend_errors),
    };
    let error_masking = masking.then(|| ErrorMasking {
        operation: trace.operation,
        request_id: request_id(headers),
    });
    let cors = cors_stage::response_headers(plan, headers, &trace, &verdict);
    Decision {
        verdict,
        trace,
        unknown_kid,
        request_body_limit,
        error_masking,
        cors,
    }
}

/// The pipeline itself; `trace` and `unknown_kid` record what it finds on the way, whatever
/// step ends it.
fn run(
    plan: &Plan,
    headers: &Headers,
    env: &mut RequestEnv,
    trace: &mut Trace,
    unknown_kid: &mut bool,
) -> Verdict {
    let (Some(method), Some(path_and_query)) = (
        text_header(headers, ":method"),
        text_header(headers, ":path"),
    ) else {
        return Verdict::Deny(Denial::bad_request());
    };
    let (path, query) = split_path(path_and_query);
    if let Some(answer) = cors_stage::answer_preflight(plan, method, path, headers, trace) {
        // A preflight is a caller too: the IP filter of the operation it asks about (or the
        // top level's) comes first, as for any request.
        let operation = trace.operation.and_then(|id| plan.operations.get(id));
        if let Err(denial) = admit_caller(plan.caller_filter(operation), env.source_address) {
            return Verdict::Deny(denial);
        }
        return answer;
    }

    let Some(RouteMatch {
        operation: operation_id,
        matched,
    }) = plan.match_operation(method, path)
    else {
        if let Err(denial) = admit_caller(plan.caller_filter(None), env.source_address) {
            return Verdict::Deny(denial);
        }
        return match plan.unmatched {
            // Passed on untouched, an encoded slash or a dot segment could reach a route an
            // operation guards once the backend decodes it.
            Unmatched::Pass if !is_ambiguous(path) => {
                if let Some(Err(denial)) = plan.body_limit.map(|l| l.check_declared(headers)) {
                    return Verdict::Deny(denial);
                }
                let mut edits: Vec<HeaderEdit> = plan
                    .identity_headers
                    .iter()
                    .cloned()
                    .map(HeaderEdit::Remove)
                    .collect();
                drop_absent_removals(&mut edits, headers);
                Verdict::PassThrough(edits)
            }
            Unmatched::Pass | Unmatched::Reject => Verdict::Deny(Denial::no_operation()),
        };
    };
    let Some(operation) = plan.operations.get(operation_id) else {
        return Verdict::Deny(Denial::no_operation());
    };
    trace.operation = Some(operation_id);
    // The caller's address before anything else: a refused network never learns which
    // credentials an operation takes.
    if let Err(denial) = admit_caller(plan.caller_filter(Some(operation)), env.source_address) {
        return Verdict::Deny(denial);
    }
    if let Some(Err(denial)) = operation.body_limit.map(|l| l.check_declared(headers)) {
        return Verdict::Deny(denial);
    }

    let caller = match authenticate(plan, operation, headers, query, env, unknown_kid) {
        Ok(caller) => caller,
        Err(denial) => return Verdict::Deny(denial),
    };
    if let Some(consumer) = &caller.consumer {
        trace.consumer = Some(consumer.id().to_string());
        trace.dynamic_consumer = matches!(consumer, Consumer::Dynamic { .. });
        if let Consumer::Configured(id, _) = consumer {
            trace.configured_consumer = Some(*id);
        }
    }
    if let Err(denial) = authorize(plan, operation, &caller) {
        return Verdict::Deny(denial);
    }
    // What the headers tell of a body to transform, before the request is counted.
    if let (Some(transform), true) = (&operation.request_body, env.body_follows) {
        if let Err(denial) = check_request_headers(transform, headers) {
            return Verdict::Deny(denial);
        }
    }
    let admitted = match admit(plan, &caller, env) {
        Ok(admitted) => admitted,
        Err(denial) => return Verdict::Deny(denial),
    };
    let request = MatchedRequest {
        headers,
        path,
        matched,
        query,
    };
    let mut forward = rewrite(
        plan,
        operation_id,
        operation,
        caller,
        request,
        env.body_follows,
    );
    forward.cache = operation.cache.as_ref().and_then(|policy| {
        let parts = KeyParts {
            operation: operation_id,
            path,
            query,
            headers,
            consumer: forward.consumer.as_deref(),
        };
        cache_request(plan, policy, &parts, method, env.counters)
    });
    match (admitted, &plan.global) {
        (
            Admitted::AskGlobal {
                local,
                local_counted,
                asked,
                owner,
            },
            Some(global),
        ) => {
            let consumer = forward.consumer.as_deref().unwrap_or_default();
            Verdict::AskGlobal(Box::new(GlobalCheck {
                message: global_limits::request(&global.domain, consumer, &asked),
                forward,
                local_headers: local,
                local_counted,
                asked,
                owner,
            }))
        }
        // A global limit loads only with a `global_limits` section.
        (Admitted::AskGlobal { local, .. }, None) | (Admitted::Counted(local), _) => {
            forward_with_headers(plan, forward, [local, None])
        }
    }
}

/// What counting found: done, or the global limits still to ask the service.
enum Admitted {
    Counted(Option<RateHeaders>),
    AskGlobal {
        local: Option<RateHeaders>,
        local_counted: Option<(Limits, CounterState)>,
        asked: Vec<Asked>,
        owner: CounterOwner,
    },
}

/// Counts the request against its consumer's local rate limit and quota; global ones are left
/// for the rate-limit service.
fn admit(plan: &Plan, caller: &Caller, env: &RequestEnv) -> Result<Admitted, Denial> {
    let Some(consumer) = &caller.consumer else {
        return Ok(Admitted::Counted(None));
    };
    let Some(product) = plan.products.get(consumer.product()) else {
        return Ok(Admitted::Counted(None));
    };
    let (local, local_counted) = if product.limits.any() {
        let counter = match consumer {
            Consumer::Configured(_, configured) => Counter::Entry(&configured.counter_key),
            Consumer::Dynamic { id, .. } => Counter::Slot {
                pool: Pool::Local,
                size: plan.dynamic.map_or(1, |dynamic| dynamic.pool_size),
                owner: id,
            },
        };
        let (headers, written) =
            local_count::count(env.counters, counter, &product.limits, env.now_ms)?;
        (headers, Some((product.limits, written)))
    } else {
        (None, None)
    };
    if !product.global.any() {
        return Ok(Admitted::Counted(local));
    }
    let owner = match consumer {
        Consumer::Configured(id, _) => CounterOwner::Configured(*id),
        Consumer::Dynamic { id, .. } => CounterOwner::Dynamic(id.clone()),
    };
    Ok(Admitted::AskGlobal {
        local,
        local_counted,
        asked: global_limits::asked(&product.global),
        owner,
    })
}

fn authenticate<'p>(
    plan: &'p Plan,
    operation: &Operation,
    headers: &Headers,
    query: Option<&str>,
    env: &mut RequestEnv,
    unknown_kid: &mut bool,
) -> Result<Caller<'p>, Denial> {
    let by_key = |key, env: &mut RequestEnv| -> Result<Caller<'p>, Denial> {
        Ok(Caller {
            consumer: Some(key_consumer(plan, key, env)?),
            token: None,
        })
    };
    match operation.auth {
        AuthMode::None => Ok(Caller {
            consumer: None,
            token: None,
        }),
        AuthMode::SubscriptionKey => {
            match presented_key(headers, &plan.key_header, query, &plan.key_query) {
                PresentedKey::Missing => Err(missing_key(plan, headers)),
                key => by_key(key, env),
            }
        }
        AuthMode::Jwt => {
            let (jwt, token) = verified_token(plan, headers, env, unknown_kid)?;
            Ok(Caller {
                consumer: Some(token_consumer(plan, jwt, &token)?),
                token: Some(token),
            })
        }
        AuthMode::Either => {
            match presented_key(headers, &plan.key_header, query, &plan.key_query) {
                PresentedKey::Missing => {}
                key => return by_key(key, env),
            }
            if bearer_token(headers) == PresentedToken::Missing {
                return Err(Denial::missing_key_or_jwt(
                    text_header(headers, ":authority").unwrap_or_default(),
                    &plan.key_header_display,
                ));
            }
            let (jwt, token) = verified_token(plan, headers, env, unknown_kid)?;
            Ok(Caller {
                consumer: Some(token_consumer(plan, jwt, &token)?),
                token: Some(token),
            })
        }
        // The key names the consumer; the token must be valid as well.
        AuthMode::Both => {
            let consumer = match presented_key(headers, &plan.key_header, query, &plan.key_query) {
                PresentedKey::Missing => return Err(missing_key(plan, headers)),
                key => key_consumer(plan, key, env)?,
            };
            let (_, token) = verified_token(plan, headers, env, unknown_kid)?;
            Ok(Caller {
                consumer: Some(consumer),
                token: Some(token),
            })
        }
    }
}

fn missing_key(plan: &Plan, headers: &Headers) -> Denial {
    Denial::missing_subscription_key(
        text_header(headers, ":authority").unwrap_or_default(),
        &plan.key_header_display,
    )
}

fn key_consumer<'p>(
    plan: &'p Plan,
    key: PresentedKey,
    env: &mut RequestEnv,
) -> Result<Consumer<'p>, Denial> {
    match key {
        PresentedKey::Found(key) => {
            let id = match env.known_keys.as_deref_mut() {
                Some(known) => known.consumer_for(&plan.keys, &key),
                None => plan.keys.consumer_for(&key),
            };
            id.and_then(|id| plan.consumers.get(id).map(|c| Consumer::Configured(id, c)))
                .ok_or_else(Denial::invalid_subscription_key)
        }
        PresentedKey::Missing | PresentedKey::Conflicting => {
            Err(Denial::invalid_subscription_key())
        }
    }
}

/// The request's bearer token, verified: from the cache, or verified now and cached.
fn verified_token<'p>(
    plan: &'p Plan,
    headers: &Headers,
    env: &mut RequestEnv,
    unknown_kid: &mut bool,
) -> Result<(&'p JwtPlan, Rc<VerifiedToken>), Denial> {
    // Operations that need a token load only with a `jwt` section.
    let jwt = plan.jwt.as_ref().ok_or_else(Denial::missing_jwt)?;
    let token = match bearer_token(headers) {
        PresentedToken::Missing => return Err(Denial::missing_jwt()),
        PresentedToken::Unusable => return Err(Denial::invalid_jwt(JwtFailure::Malformed)),
        PresentedToken::Found(token) => token,
    };
    let hash = env.tokens.hash(token);
    let now = env.now_unix_s();
    let fetched = env.fetched_keys;
    // A cached verdict holds only while its key (or, for a failure, the key set) does.
    if let Some(verified) = env.tokens.get(&hash, now, fetched) {
        return Ok((jwt, verified));
    }
    if let Some(failure) = env.tokens.failure_with(&hash, now, fetched) {
        return Err(Denial::invalid_jwt(failure));
    }
    match jwt.verifier.verify(token, now, fetched) {
        Ok(verified) => {
            let token = Rc::new(verified.token);
            env.tokens
                .insert_verified(hash, Rc::clone(&token), verified.key, now);
            Ok((jwt, token))
        }
        Err(failure) => {
            *unknown_kid |= failure.may_mean_rotated_keys();
            env.tokens.remember_failure(hash, failure, fetched, now);
            Err(Denial::invalid_jwt(failure))
        }
    }
}

/// The consumer a verified token names through `jwt.consumer_claim`.
fn token_consumer<'p>(
    plan: &'p Plan,
    jwt: &JwtPlan,
    token: &VerifiedToken,
) -> Result<Consumer<'p>, Denial> {
    let client = token
        .claims
        .get(&jwt.consumer_claim)
        .and_then(serde_json::Value::as_str);
    if let Some(consumer) = client
        .and_then(|client| plan.jwt_clients.get(client))
        .and_then(|&id| plan.consumers.get(id).map(|c| Consumer::Configured(id, c)))
    {
        return Ok(consumer);
    }
    match (client, plan.dynamic) {
        (Some(client), Some(dynamic)) if usable_client_id(client) => Ok(Consumer::Dynamic {
            id: format!("jwt:{client}"),
            product: dynamic.product,
        }),
        _ => Err(Denial::forbidden(&format!(
            "The token's '{}' claim names no registered consumer",
            jwt.consumer_claim
        ))),
    }
}

/// A client id that may become a consumer name (headers, logs, metric labels).
fn usable_client_id(client: &str) -> bool {
    !client.is_empty() && client.len() <= 128 && client.bytes().all(|b| b.is_ascii_graphic())
}

fn authorize(plan: &Plan, operation: &Operation, caller: &Caller) -> Result<(), Denial> {
    if let Some(consumer) = &caller.consumer {
        if !operation.allows(consumer.product()) {
            let product = plan
                .products
                .get(consumer.product())
                .map_or("", |p| p.name.as_str());
            return Err(Denial::forbidden(&format!(
                "Product '{product}' is not allowed on operation '{}'",
                operation.name
            )));
        }
    }
    if let (Some(token), Some(jwt)) = (&caller.token, &plan.jwt) {
        if let Some(unmet) = jwt
            .required_claims
            .iter()
            .find(|rule| !rule.satisfied_by(&token.claims))
        {
            return Err(Denial::forbidden(&format!(
                "Required claim '{}' is missing or has no accepted value",
                unmet.name
            )));
        }
    }
    Ok(())
}

impl ClaimSource for VerifiedToken {
    fn claim(&self, name: &str) -> Option<String> {
        self.claims.get(name).and_then(header_text)
    }
}

/// The request as matched: its headers, its path (without query), what of the path the
/// operation matched, and its query string.
struct MatchedRequest<'r> {
    headers: &'r Headers,
    path: &'r str,
    matched: Matched,
    query: Option<&'r str>,
}

fn rewrite<'p>(
    plan: &'p Plan,
    operation_id: OperationId,
    operation: &Operation,
    caller: Caller<'p>,
    request: MatchedRequest,
    body_follows: bool,
) -> Forward {
    let MatchedRequest {
        headers,
        path,
        matched,
        query,
    } = request;
    let claims: &dyn ClaimSource = match &caller.token {
        Some(token) => token.as_ref(),
        None => &NoClaims,
    };
    let values = TemplateValues {
        consumer: caller.consumer.as_ref().map(Consumer::id),
        product: caller
            .consumer
            .as_ref()
            .and_then(|c| plan.products.get(c.product()))
            .map(|p| p.name.as_str()),
        operation: &operation.name,
        claims,
    };

    // The upstream never sees a subscription key, whichever operation it was sent to.
    let mut request_edits = vec![HeaderEdit::Remove(plan.key_header.clone())];
    // Nor a client's own identity header, on any operation: those this operation sets are
    // replaced below, the claim headers set or removed; the rest go here.
    request_edits.extend(
        operation
            .identity_removals
            .iter()
            .cloned()
            .map(HeaderEdit::Remove),
    );
    if let Some(jwt) = &plan.jwt {
        // With a `jwt` section, a bearer token reaches the upstream only when it was verified
        // for this request (and `forward_token` allows it): never an unverified one sent
        // beside a key.
        if !jwt.forward_token || caller.token.is_none() {
            request_edits.push(HeaderEdit::Remove("authorization".to_string()));
        }
        // Claim headers are ours on every operation: set from the token, or removed so a
        // client cannot send its own.
        for (claim, header) in &jwt.claims_to_headers {
            request_edits.push(match claims.claim(claim) {
                Some(value) => HeaderEdit::Set(header.clone(), value),
                None => HeaderEdit::Remove(header.clone()),
            });
        }
    }
    operation
        .request_headers
        .push_edits(&values, &mut request_edits);
    drop_absent_removals(&mut request_edits, headers);
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
            &matched,
            operation.rewrite.as_ref(),
            stripped_query.flatten().as_deref(),
        )
    });

    let transforms_request = operation.request_body.is_some() && body_follows;
    let facts = (transforms_request || operation.response_body.is_some()).then(|| {
        Rc::new(Facts::gather(
            headers,
            query,
            &Credentials {
                key_header: &plan.key_header,
                key_query: &plan.key_query,
            },
            (values.consumer, values.product),
            &operation.name,
            caller.token.as_ref().map(|token| &token.claims),
        ))
    });
    let request_body = facts
        .as_ref()
        .filter(|_| transforms_request)
        .map(|facts| RequestReshape {
            operation: operation_id,
            facts: Rc::clone(facts),
        });
    let response_body = facts
        .filter(|_| operation.response_body.is_some())
        .map(|facts| ResponseReshape {
            operation: operation_id,
            facts,
            request_id: request_id(headers),
        });

    Forward {
        operation: operation_id,
        consumer: caller.consumer.as_ref().map(|c| c.id().to_string()),
        request_edits,
        path,
        response_edits,
        cache: None,
        request_body,
        response_body,
    }
}

/// The request's place in the response cache, under the process's hash key for this
/// configuration (none yet, or another configuration's: the request bypasses the cache).
fn cache_request(
    plan: &Plan,
    policy: &CachePolicy,
    parts: &KeyParts,
    method: &str,
    store: &dyn CounterStore,
) -> Option<CacheRequest> {
    let layout = plan.cache.as_ref()?;
    let hash_key = cache::hash_key(store, layout)?;
    cache::cache_request(policy, layout, &hash_key, parts, method)
}

/// Removing a header the request does not carry is a wasted host call (and a route-cache clear
/// in Envoy): drops those edits.
fn drop_absent_removals(edits: &mut Vec<HeaderEdit>, headers: &Headers) {
    edits.retain(|edit| match edit {
        HeaderEdit::Remove(name) => headers.iter().any(|(present, _)| present == name),
        _ => true,
    });
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
