//! The glue driven natively: the plugin and the filter against a recording fake host, so every
//! host call the glue makes (or must not make) is checked without Envoy.

mod body_limit;
mod body_transform;
mod cache;
mod cors;
mod fake_host;
mod host_calls;
mod ip_filter;
mod remote_keys;

use crate::filter::Next;
use crate::plugin::Plugin;
use fake_host::FakeHost;
use serde_json::{json, Value};
use tollgate_core::metrics::{request_counter, SeriesKind};
use tollgate_core::KeyHash;

const KEY: &str = "primary-key-of-invoice-flow";

fn config() -> Value {
    json!({
        "products": {
            "starter": { "rate_limit": { "calls": 2, "renewal_period_s": 60 } },
            "open": {}
        },
        "consumers": [
            { "id": "invoice-flow", "product": "starter",
              "keys": [KeyHash::of(KEY.as_bytes()).to_config_string()] },
            { "id": "portal", "product": "open",
              "keys": [KeyHash::of(b"portal-key").to_config_string()] }
        ],
        "operations": [
            { "name": "validate", "methods": ["POST"], "path": "/validate",
              "rewrite": "/api/v1/validate",
              "request_headers": { "set": { "x-consumer-id": "{consumer}" } },
              "response_headers": { "remove": ["server"] } }
        ]
    })
}

fn configured(config: &Value) -> (FakeHost, Plugin) {
    let host = FakeHost::with_configuration(config);
    let mut plugin = Plugin::default();
    assert!(plugin.configure(&host), "configuration refused");
    (host, plugin)
}

fn post(host: &FakeHost, extra: &[(&str, &str)]) {
    let mut headers = vec![
        (":method", "POST"),
        (":path", "/validate?x=1"),
        (":authority", "api.example"),
        ("x-consumer-id", "spoofed"),
    ];
    headers.extend_from_slice(extra);
    host.request(&headers);
}

#[test]
fn a_refused_or_missing_configuration_fails_configure() {
    let host = FakeHost::with_configuration(&json!({ "operations": [] }));
    let mut plugin = Plugin::default();
    assert!(!plugin.configure(&host));
    assert!(plugin.new_filter(2).is_none(), "no filter without a plan");
    let host = FakeHost::default();
    assert!(!plugin.configure(&host));
    let host = FakeHost::with_configuration(&config());
    host.fail("get_plugin_configuration");
    assert!(!plugin.configure(&host));
}

#[test]
fn configure_creates_counters_and_defines_metrics_without_a_timer() {
    let (host, _) = configured(&config());
    let shared = host.shared.borrow();
    assert!(shared.contains_key("tollgate/c/invoice-flow"));
    assert!(
        !shared.contains_key("tollgate/c/portal"),
        "no counter for a product without limits"
    );
    assert_eq!(
        host.metric(&request_counter("validate", "invoice-flow", "allowed")),
        Some(0)
    );
    assert_eq!(host.tick_period_ms.get(), None, "no remote keys, no timer");
}

#[test]
fn an_admitted_request_is_edited_counted_and_its_response_rewritten() {
    let (host, plugin) = configured(&config());
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    assert_eq!(
        filter.borrow_mut().on_request_headers(&host),
        Next::Continue
    );
    assert!(host.replies.borrow().is_empty());
    assert_eq!(host.request_header("ocp-apim-subscription-key"), None);
    assert_eq!(
        host.request_header("x-consumer-id").as_deref(),
        Some("invoice-flow")
    );
    assert_eq!(
        host.request_header(":path").as_deref(),
        Some("/api/v1/validate?x=1")
    );
    assert_eq!(
        host.metric(&request_counter("validate", "invoice-flow", "allowed")),
        Some(1)
    );

    host.now_ms.set(host.now_ms.get() + 25);
    host.respond(&[(":status", "503"), ("server", "uvicorn")]);
    filter.borrow_mut().on_response_headers(&host, false);
    assert_eq!(host.response_header_text("server"), None);
    assert_eq!(
        host.response_header_text("x-ratelimit-remaining")
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        host.response_header_text("x-ratelimit-limit").as_deref(),
        Some("2")
    );
    let metrics = host.metrics.borrow();
    let latency = metrics
        .iter()
        .find(|m| m.name == "tollgate_upstream_latency_ms.op=validate")
        .unwrap();
    assert_eq!((latency.value, latency.last), (1, 25));
    assert_eq!(latency.kind, SeriesKind::Histogram);
    drop(metrics);
    assert_eq!(
        host.metric("tollgate_upstream_responses_total.op=validate.class=5xx"),
        Some(1)
    );
}

#[test]
fn a_denied_request_gets_the_apim_reply_and_never_reaches_the_upstream() {
    let (host, plugin) = configured(&config());
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[]);
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    let replies = host.replies.borrow();
    let reply = replies.first().unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .starts_with("AzureApiManagementKey realm=\"api.example\""));
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["statusCode"], 401);
    assert_eq!(
        host.request_header("x-consumer-id").as_deref(),
        Some("spoofed"),
        "a denied request is not edited"
    );
    assert_eq!(
        host.metric(&request_counter("validate", "-", "missing_credential")),
        Some(1)
    );
    drop(replies);
    // Nothing was forwarded, so the response phase observes nothing.
    host.respond(&[(":status", "401")]);
    filter.borrow_mut().on_response_headers(&host, false);
    assert_eq!(
        host.metric("tollgate_upstream_responses_total.op=validate.class=4xx"),
        Some(0)
    );
}

#[test]
fn limits_are_shared_through_the_host_store_by_every_filter() {
    let (host, plugin) = configured(&config());
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let filter = plugin.new_filter(2).unwrap();
        post(&host, &[("ocp-apim-subscription-key", KEY)]);
        filter.borrow_mut().on_request_headers(&host);
        statuses.push(host.replies.borrow().first().map_or(200, |r| r.status));
    }
    assert_eq!(statuses, vec![200, 200, 429]);
    let replies = host.replies.borrow();
    assert!(replies.first().unwrap().header("retry-after").is_some());
    assert_eq!(
        host.metric(&request_counter("validate", "invoice-flow", "rate_limited")),
        Some(1)
    );
}

/// Envoy fails only some of these (a dispatch, a stat, a CAS); the rest it would answer with a
/// panic in the SDK. The glue must survive every one regardless.
#[test]
fn host_failures_are_survived() {
    let (host, plugin) = configured(&config());
    // Headers unreadable: the core sees a request without :method and answers 400.
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    host.fail("get_request_headers");
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    assert_eq!(host.replies.borrow().first().map(|r| r.status), Some(400));
    host.failing.borrow_mut().clear();

    // The shared store down: refused (429, Retry-After 1), never admitted uncounted.
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    host.fail("get_shared_data");
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    let replies = host.replies.borrow();
    let reply = replies.first().unwrap();
    assert_eq!(
        (reply.status, reply.header("retry-after")),
        (429, Some("1"))
    );
    drop(replies);
    host.failing.borrow_mut().clear();

    // Edits and replies that fail are logged; the filter goes on.
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    host.fail("set_request_header");
    host.fail("increment_metric");
    assert_eq!(
        filter.borrow_mut().on_request_headers(&host),
        Next::Continue
    );
    host.fail("set_response_header");
    host.respond(&[(":status", "200")]);
    filter.borrow_mut().on_response_headers(&host, false);
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[]);
    host.fail("send_http_response");
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
}

#[test]
fn a_busy_filter_refuses_the_request_rather_than_let_it_through() {
    let (host, plugin) = configured(&config());
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    let busy = filter.borrow_mut();
    assert_eq!(
        crate::filter::on_request_headers(&filter, &host, false),
        Next::Stop
    );
    crate::filter::on_response_headers(&filter, &host, false);
    crate::filter::on_grpc_call_response(&filter, &host, 1, 0, 0);
    // A body chunk cannot be counted, and is not held up for it (logged).
    assert_eq!(
        crate::filter::on_request_body(&filter, &host, 1, false),
        Next::Continue
    );
    drop(busy);
    assert_eq!(host.replies.borrow().first().map(|r| r.status), Some(500));
    assert_eq!(
        host.request_header("ocp-apim-subscription-key").as_deref(),
        Some(KEY)
    );
}

fn global_config(failure_mode: &str) -> Value {
    json!({
        "global_limits": { "cluster": "tollgate_rls", "timeout_ms": 80,
                           "failure_mode": failure_mode },
        "products": {
            "partner": { "rate_limit": { "calls": 2, "renewal_period_s": 60, "scope": "global" } }
        },
        "consumers": [
            { "id": "invoice-flow", "product": "partner",
              "keys": [KeyHash::of(KEY.as_bytes()).to_config_string()] }
        ],
        "operations": [
            { "name": "validate", "methods": ["POST"], "path": "/validate",
              "rewrite": "/api/v1/validate",
              "request_headers": { "set": { "x-consumer-id": "{consumer}" } } }
        ]
    })
}

/// `RateLimitResponse { overall_code: OK, statuses: [{ code: OK, limit_remaining: 1,
/// duration_until_reset: 7 s }] }`, as protobuf bytes.
const RLS_OK: &[u8] = &[
    0x08, 0x01, 0x12, 0x08, 0x08, 0x01, 0x18, 0x01, 0x22, 0x02, 0x08, 0x07,
];
/// `RateLimitResponse { overall_code: OVER_LIMIT, statuses: [{ code: OVER_LIMIT,
/// duration_until_reset: 5 s }] }`.
const RLS_OVER: &[u8] = &[0x08, 0x02, 0x12, 0x06, 0x08, 0x02, 0x22, 0x02, 0x08, 0x05];

#[test]
fn a_global_limit_holds_the_request_until_the_service_answers() {
    let (host, plugin) = configured(&global_config("local"));
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    // Envoy runs the request callback with the request's context effective.
    host.effective.set(2);
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    let call = host.grpc_calls.borrow().first().cloned().unwrap();
    assert_eq!(
        (
            call.cluster.as_str(),
            call.service.as_str(),
            call.method.as_str(),
            call.timeout_ms
        ),
        (
            "tollgate_rls",
            "envoy.service.ratelimit.v3.RateLimitService",
            "ShouldRateLimit",
            80
        )
    );
    assert!(
        call.message.windows(12).any(|w| w == b"invoice-flow"),
        "the descriptor names the consumer"
    );
    assert_eq!(
        host.request_header("x-consumer-id").as_deref(),
        Some("spoofed"),
        "nothing is edited before the answer"
    );

    // The call is made in the root context's name (its calls always end with a callback,
    // even when the request is gone), and the request's context is made effective again.
    assert_eq!(call.context, 0, "the default plugin's root context");
    assert_eq!(host.effective.get(), 2);

    // An answer for another call changes nothing.
    filter
        .borrow_mut()
        .on_grpc_call_response(&host, call.token + 1, 0, 0);
    assert_eq!(host.resumed.get(), 0);

    *host.grpc_answer.borrow_mut() = Some(RLS_OK.to_vec());
    filter
        .borrow_mut()
        .on_grpc_call_response(&host, call.token, 0, RLS_OK.len());
    assert_eq!(host.resumed.get(), 1);
    assert_eq!(
        host.request_header("x-consumer-id").as_deref(),
        Some("invoice-flow")
    );
    assert_eq!(
        host.metric(&request_counter("validate", "invoice-flow", "allowed")),
        Some(1)
    );
    host.respond(&[(":status", "200")]);
    filter.borrow_mut().on_response_headers(&host, false);
    assert_eq!(
        host.response_header_text("x-ratelimit-remaining")
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        host.response_header_text("x-ratelimit-reset").as_deref(),
        Some("7")
    );
    assert_eq!(
        host.metric("tollgate_rate_limit_service_failures_total"),
        Some(0)
    );
}

#[test]
fn over_the_global_limit_is_a_429_and_the_request_never_resumes() {
    let (host, plugin) = configured(&global_config("local"));
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    filter.borrow_mut().on_request_headers(&host);
    let token = host.grpc_calls.borrow().first().unwrap().token;
    *host.grpc_answer.borrow_mut() = Some(RLS_OVER.to_vec());
    filter
        .borrow_mut()
        .on_grpc_call_response(&host, token, 0, RLS_OVER.len());
    assert_eq!(host.resumed.get(), 0);
    let replies = host.replies.borrow();
    let reply = replies.first().unwrap();
    assert_eq!(
        (reply.status, reply.header("retry-after")),
        (429, Some("5"))
    );
    assert_eq!(
        host.metric(&request_counter("validate", "invoice-flow", "rate_limited")),
        Some(1)
    );
}

#[test]
fn a_failing_service_is_counted_and_its_failure_mode_applies() {
    // deny: 503 from the answer's error status.
    let (host, plugin) = configured(&global_config("deny"));
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    filter.borrow_mut().on_request_headers(&host);
    let token = host.grpc_calls.borrow().first().unwrap().token;
    filter
        .borrow_mut()
        .on_grpc_call_response(&host, token, 14, 0);
    assert_eq!(host.replies.borrow().first().map(|r| r.status), Some(503));
    assert_eq!(
        host.metric("tollgate_rate_limit_service_failures_total"),
        Some(1)
    );
    assert_eq!(
        host.metric(&request_counter("validate", "invoice-flow", "unavailable")),
        Some(1)
    );

    // local: a call the host will not make is settled at once, with this process's counters.
    let (host, plugin) = configured(&global_config("local"));
    host.fail("dispatch_grpc_call");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let filter = plugin.new_filter(2).unwrap();
        post(&host, &[("ocp-apim-subscription-key", KEY)]);
        let next = filter.borrow_mut().on_request_headers(&host);
        statuses.push(match next {
            Next::Continue => 200,
            Next::Stop => host.replies.borrow().first().map_or(0, |r| r.status),
        });
    }
    assert_eq!(statuses, vec![200, 200, 429]);
    assert_eq!(
        host.metric("tollgate_rate_limit_service_failures_total"),
        Some(3)
    );

    // allow: admitted, still counted as a failure.
    let (host, plugin) = configured(&global_config("allow"));
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    filter.borrow_mut().on_request_headers(&host);
    let token = host.grpc_calls.borrow().first().unwrap().token;
    filter
        .borrow_mut()
        .on_grpc_call_response(&host, token, 4, 0);
    assert_eq!(host.resumed.get(), 1);
    assert_eq!(
        host.metric("tollgate_rate_limit_service_failures_total"),
        Some(1)
    );
}
