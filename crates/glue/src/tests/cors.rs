//! CORS through the glue: a preflight answered locally and counted, the CORS headers on
//! tollgate's own replies (at once, once the rate-limit service fails, or when a streamed body
//! passes its limit) and on the upstream's response.

use super::fake_host::FakeHost;
use super::{config, configured, global_config, post, KEY};
use crate::filter::Next;
use serde_json::{json, Value};
use tollgate_core::metrics::{request_counter, PREFLIGHT};

const PORTAL: &str = "https://make.powerautomate.com";

fn with_cors(mut config: Value) -> Value {
    config["cors"] = json!({
        "allowed_origins": [PORTAL],
        "allowed_headers": ["content-type", "ocp-apim-subscription-key"],
        "expose_headers": ["x-ratelimit-remaining"],
        "max_age_s": 600
    });
    config
}

fn response_values(host: &FakeHost, name: &str) -> Vec<String> {
    host.response
        .borrow()
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn a_preflight_is_answered_and_counted_without_touching_the_request_or_the_counters() {
    let (host, plugin) = configured(&with_cors(config()));
    let filter = plugin.new_filter(2).unwrap();
    let counters_before = host.shared.borrow().clone();
    host.request(&[
        (":method", "OPTIONS"),
        (":path", "/validate"),
        (":authority", "api.example"),
        ("origin", PORTAL),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "content-type,ocp-apim-subscription-key",
        ),
    ]);
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    let replies = host.replies.borrow();
    let reply = replies.first().unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, ""));
    assert_eq!(reply.header("access-control-allow-origin"), Some(PORTAL));
    assert_eq!(
        reply.header("access-control-allow-methods"),
        Some("GET, POST")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
    assert_eq!(reply.header("vary"), Some("Origin"));
    assert_eq!(reply.header("content-type"), None, "no body, no type");
    assert_eq!(
        host.metric(&request_counter("validate", "-", PREFLIGHT)),
        Some(1)
    );
    assert_eq!(*host.shared.borrow(), counters_before, "no limit counted");
    assert!(!host.calls.borrow().contains(&"set_request_header"));
}

#[test]
fn a_cross_origin_denial_carries_the_cors_headers_beside_its_own() {
    let (host, plugin) = configured(&with_cors(config()));
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("origin", PORTAL)]);
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    let replies = host.replies.borrow();
    let reply = replies.first().unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.header("www-authenticate").is_some());
    assert_eq!(reply.header("access-control-allow-origin"), Some(PORTAL));
    assert_eq!(
        reply.header("access-control-expose-headers"),
        Some("x-ratelimit-remaining")
    );
    assert_eq!(reply.header("vary"), Some("Origin"));
}

#[test]
fn the_upstreams_response_gets_the_sections_headers_in_place_of_its_own() {
    let (host, plugin) = configured(&with_cors(config()));
    let filter = plugin.new_filter(2).unwrap();
    post(
        &host,
        &[("ocp-apim-subscription-key", KEY), ("origin", PORTAL)],
    );
    assert_eq!(
        filter.borrow_mut().on_request_headers(&host),
        Next::Continue
    );
    host.respond(&[
        (":status", "200"),
        ("server", "uvicorn"),
        ("vary", "Accept-Encoding"),
        ("access-control-allow-origin", "*"),
        ("access-control-allow-credentials", "true"),
    ]);
    filter.borrow_mut().on_response_headers(&host, false);
    assert_eq!(
        response_values(&host, "access-control-allow-origin"),
        [PORTAL]
    );
    assert_eq!(
        response_values(&host, "access-control-allow-credentials"),
        Vec::<String>::new(),
        "not configured: the upstream's own removed"
    );
    assert_eq!(
        response_values(&host, "access-control-expose-headers"),
        ["x-ratelimit-remaining"]
    );
    assert_eq!(
        response_values(&host, "vary"),
        ["Accept-Encoding", "Origin"]
    );
    // The operation's own edits still happen.
    assert_eq!(host.response_header_text("server"), None);
    assert!(host.response_header_text("x-ratelimit-remaining").is_some());
}

#[test]
fn the_rate_limit_services_503_carries_them_too() {
    let (host, plugin) = configured(&with_cors(global_config("deny")));
    let filter = plugin.new_filter(2).unwrap();
    post(
        &host,
        &[("ocp-apim-subscription-key", KEY), ("origin", PORTAL)],
    );
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    let token = host.grpc_calls.borrow().first().unwrap().token;
    filter
        .borrow_mut()
        .on_grpc_call_response(&host, token, 14, 0);
    let replies = host.replies.borrow();
    let reply = replies.first().unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.header("access-control-allow-origin"), Some(PORTAL));
    assert_eq!(reply.header("vary"), Some("Origin"));
}

#[test]
fn a_body_over_its_limit_is_413_with_them_declared_or_streamed() {
    let mut limited = with_cors(config());
    limited["max_request_body_bytes"] = 10.into();
    let (host, plugin) = configured(&limited);
    // Declared: refused with the headers, before the key is looked for.
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("origin", PORTAL), ("content-length", "11")]);
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    let reply = host.replies.borrow().first().cloned().unwrap();
    assert_eq!(reply.status, 413);
    assert_eq!(reply.header("access-control-allow-origin"), Some(PORTAL));
    // Streamed: refused mid-way, after the request went on.
    let filter = plugin.new_filter(3).unwrap();
    post(
        &host,
        &[("ocp-apim-subscription-key", KEY), ("origin", PORTAL)],
    );
    assert_eq!(
        filter.borrow_mut().on_request_headers(&host),
        Next::Continue
    );
    assert_eq!(
        filter.borrow_mut().on_request_body(&host, 11, false),
        Next::Stop
    );
    let reply = host.replies.borrow().first().cloned().unwrap();
    assert_eq!(reply.status, 413);
    assert_eq!(reply.header("access-control-allow-origin"), Some(PORTAL));
    assert_eq!(reply.header("vary"), Some("Origin"));
}
