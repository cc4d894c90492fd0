//! Body transforms and error masking through the glue, with the fake host playing Envoy's
//! part: a paused request's body reaches the filter only after the resume (Envoy buffers it
//! meanwhile), and while the filter buffers a body each callback gives the size of all of it.
//! Operations without a transform or masking make no body host call at all.

use super::{configured, post, KEY};
use crate::filter::Next;
use serde_json::{json, Value};
use tollgate_core::metrics::request_counter;

const FLOW_TO_MODEL: &str = "{invoice_id: body.InvoiceNumber, amount: body.Total, \
    currency: body.Currency || 'EUR', submitted_by: consumer}";

fn transformed(config: &mut Value) {
    config["operations"][0]["request_body"] =
        json!({ "transform": FLOW_TO_MODEL, "max_bytes": 100 });
    config["operations"][0]["response_body"] = json!({ "transform": "{valid: body.valid}" });
}

fn transform_config() -> Value {
    let mut config = super::config();
    transformed(&mut config);
    config
}

fn masking_config() -> Value {
    let mut config = super::config();
    config["mask_backend_errors"] = true.into();
    config
}

const JSON: (&str, &str) = ("content-type", "application/json");

fn body_calls(host: &crate::tests::fake_host::FakeHost) -> Vec<&'static str> {
    host.calls
        .borrow()
        .iter()
        .copied()
        .filter(|call| call.contains("body"))
        .collect()
}

#[test]
fn without_a_transform_or_masking_bodies_stream_at_no_cost() {
    let (host, plugin) = configured(&super::config());
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY), JSON]);
    assert_eq!(
        filter.borrow_mut().on_request_headers(&host),
        Next::Continue
    );
    host.calls.borrow_mut().clear();
    for (size, end) in [(65536, false), (65536, false), (10, true)] {
        assert_eq!(
            filter.borrow_mut().on_request_body(&host, size, end),
            Next::Continue
        );
    }
    host.respond(&[(":status", "500"), ("content-type", "text/plain")]);
    assert_eq!(
        filter.borrow_mut().on_response_headers(&host, false),
        Next::Continue
    );
    assert_eq!(
        filter.borrow_mut().on_response_body(&host, 100, true),
        Next::Continue
    );
    assert!(host
        .calls
        .borrow()
        .iter()
        .all(|call| !call.contains("body")));
    assert!(host.replies.borrow().is_empty());
}

#[test]
fn a_request_body_is_buffered_to_its_end_and_replaced() {
    let (host, plugin) = configured(&transform_config());
    let filter = plugin.new_filter(2).unwrap();
    post(
        &host,
        &[
            ("ocp-apim-subscription-key", KEY),
            JSON,
            ("content-length", "48"),
        ],
    );
    // The headers go on (Envoy passes the body only after them), without a length.
    assert_eq!(
        filter.borrow_mut().on_request_headers(&host),
        Next::Continue
    );
    assert_eq!(host.request_header("content-length"), None);
    assert_eq!(
        host.request_header("content-type").as_deref(),
        Some("application/json")
    );
    let body = br#"{"InvoiceNumber": "INV-1", "Total": 12.5}      "#;
    *host.request_body.borrow_mut() = body[..20].to_vec();
    assert_eq!(
        filter.borrow_mut().on_request_body(&host, 20, false),
        Next::Stop
    );
    // Buffered: the next callback sees all of it.
    *host.request_body.borrow_mut() = body.to_vec();
    assert_eq!(
        filter.borrow_mut().on_request_body(&host, body.len(), true),
        Next::Continue
    );
    let sent: Value = serde_json::from_slice(&host.request_body.borrow()).unwrap();
    assert_eq!(
        sent,
        json!({ "invoice_id": "INV-1", "amount": 12.5, "currency": "EUR",
                "submitted_by": "invoice-flow" })
    );
    assert!(host.replies.borrow().is_empty());
}

#[test]
fn a_body_the_transform_cannot_take_is_refused_under_its_consumer() {
    for (body, status, outcome) in [
        (&br#"{"InvoiceNumber": "#[..], 400, "bad_body"),
        (&[b' '; 101][..], 413, "too_large"),
    ] {
        let (host, plugin) = configured(&transform_config());
        let filter = plugin.new_filter(2).unwrap();
        post(&host, &[("ocp-apim-subscription-key", KEY), JSON]);
        assert_eq!(
            filter.borrow_mut().on_request_headers(&host),
            Next::Continue
        );
        *host.request_body.borrow_mut() = body.to_vec();
        assert_eq!(
            filter
                .borrow_mut()
                .on_request_body(&host, body.len(), body.len() < 100),
            Next::Stop
        );
        let replies = host.replies.borrow();
        assert_eq!(replies.first().map(|r| r.status), Some(status));
        assert_eq!(
            host.metric(&request_counter("validate", "invoice-flow", outcome)),
            Some(1),
            "{outcome}"
        );
        drop(replies);
        // tollgate's own reply is never masked nor reshaped.
        host.respond(&[(":status", &status.to_string()), JSON]);
        assert_eq!(
            filter.borrow_mut().on_response_headers(&host, false),
            Next::Continue
        );
    }
}

#[test]
fn another_type_than_json_is_415_with_the_headers() {
    let (host, plugin) = configured(&transform_config());
    let filter = plugin.new_filter(2).unwrap();
    post(
        &host,
        &[
            ("ocp-apim-subscription-key", KEY),
            ("content-type", "text/csv"),
        ],
    );
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    let replies = host.replies.borrow();
    let reply = replies.first().unwrap();
    assert_eq!(reply.status, 415);
    assert_eq!(
        reply.body,
        r#"{"statusCode":415,"message":"Request body must be JSON."}"#
    );
    assert_eq!(
        host.metric(&request_counter("validate", "invoice-flow", "bad_body")),
        Some(1)
    );
}

#[test]
fn a_request_without_a_body_goes_on_untouched() {
    let (host, plugin) = configured(&transform_config());
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    assert_eq!(
        filter.borrow_mut().on_request_headers_ending(&host, true),
        Next::Continue
    );
    assert!(host.replies.borrow().is_empty());
}

/// A request that waits for the rate-limit service: Envoy holds its body meanwhile and hands
/// it over after the resume, where it is reshaped like any other.
#[test]
fn a_request_waiting_for_the_rate_limit_service_is_reshaped_after_the_resume() {
    let mut config = super::global_config("local");
    transformed(&mut config);
    let (host, plugin) = configured(&config);
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY), JSON]);
    host.effective.set(2);
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    let call = host.grpc_calls.borrow().first().cloned().unwrap();
    *host.grpc_answer.borrow_mut() = Some(super::RLS_OK.to_vec());
    filter
        .borrow_mut()
        .on_grpc_call_response(&host, call.token, 0, super::RLS_OK.len());
    assert_eq!(host.resumed.get(), 1, "the headers go on");
    assert_eq!(host.request_header("content-length"), None);
    let body = br#"{"InvoiceNumber": "INV-9", "Total": 1, "Currency": "USD"}"#;
    *host.request_body.borrow_mut() = body.to_vec();
    assert_eq!(
        filter.borrow_mut().on_request_body(&host, body.len(), true),
        Next::Continue
    );
    let sent: Value = serde_json::from_slice(&host.request_body.borrow()).unwrap();
    assert_eq!(sent["invoice_id"], "INV-9");
    assert_eq!(sent["currency"], "USD");
}

/// Were a host to hand the body over while the request waits, it is held (never let through
/// before the decision) and reshaped when the wait ends; a bad one is refused, never resumed.
#[test]
fn a_body_that_ends_while_the_request_waits_is_held_then_reshaped_or_refused() {
    for (body, resumed, status) in [
        (&br#"{"InvoiceNumber": "INV-3", "Total": 2}"#[..], 1, None),
        (&b"not json"[..], 0, Some(400)),
    ] {
        let mut config = super::global_config("local");
        transformed(&mut config);
        let (host, plugin) = configured(&config);
        let filter = plugin.new_filter(2).unwrap();
        post(&host, &[("ocp-apim-subscription-key", KEY), JSON]);
        host.effective.set(2);
        assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
        *host.request_body.borrow_mut() = body.to_vec();
        assert_eq!(
            filter.borrow_mut().on_request_body(&host, body.len(), true),
            Next::Stop,
            "held while the service is asked"
        );
        let call = host.grpc_calls.borrow().first().cloned().unwrap();
        *host.grpc_answer.borrow_mut() = Some(super::RLS_OK.to_vec());
        filter
            .borrow_mut()
            .on_grpc_call_response(&host, call.token, 0, super::RLS_OK.len());
        assert_eq!(host.resumed.get(), resumed);
        assert_eq!(host.replies.borrow().first().map(|r| r.status), status);
        if resumed == 1 {
            let sent: Value = serde_json::from_slice(&host.request_body.borrow()).unwrap();
            assert_eq!(sent["invoice_id"], "INV-3");
        }
    }
}

#[test]
fn a_5xx_is_masked_chunk_by_chunk_and_counted() {
    let (host, plugin) = configured(&masking_config());
    let filter = plugin.new_filter(2).unwrap();
    post(
        &host,
        &[
            ("ocp-apim-subscription-key", KEY),
            ("x-request-id", "rq-42"),
        ],
    );
    assert_eq!(
        filter.borrow_mut().on_request_headers(&host),
        Next::Continue
    );
    host.respond(&[
        (":status", "500"),
        ("content-type", "text/plain"),
        ("content-length", "3000"),
        ("content-encoding", "gzip"),
    ]);
    assert_eq!(
        filter.borrow_mut().on_response_headers(&host, false),
        Next::Continue
    );
    let masked = r#"{"statusCode":500,"message":"Internal Server Error. Request id rq-42."}"#;
    assert_eq!(
        host.response_header_text("content-type").as_deref(),
        Some("application/json")
    );
    let length = masked.len().to_string();
    assert_eq!(
        host.response_header_text("content-length").as_deref(),
        Some(length.as_str())
    );
    assert_eq!(host.response_header_text("content-encoding"), None);
    *host.response_body.borrow_mut() = b"Traceback: db.internal:5432 refused".repeat(50);
    let size = host.response_body.borrow().len();
    assert_eq!(
        filter.borrow_mut().on_response_body(&host, size, false),
        Next::Continue
    );
    assert!(
        host.response_body.borrow().is_empty(),
        "the chunk is dropped"
    );
    *host.response_body.borrow_mut() = b"tail".to_vec();
    assert_eq!(
        crate::filter::on_response_body(&filter, &host, 4, true),
        Next::Continue
    );
    assert_eq!(host.response_body.borrow().as_slice(), masked.as_bytes());
    assert_eq!(
        host.metric("tollgate_masked_errors_total.op=validate"),
        Some(1)
    );
    // The original was read once, its first KiB only.
    assert_eq!(
        body_calls(&host)
            .iter()
            .filter(|c| **c == "get_response_body")
            .count(),
        1
    );
}

#[test]
fn a_4xx_passes_untouched_and_a_bodyless_5xx_is_answered_whole() {
    let (host, plugin) = configured(&masking_config());
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    filter.borrow_mut().on_request_headers(&host);
    host.respond(&[(":status", "422"), JSON]);
    assert_eq!(
        filter.borrow_mut().on_response_headers(&host, false),
        Next::Continue
    );
    *host.response_body.borrow_mut() = br#"{"detail": []}"#.to_vec();
    filter.borrow_mut().on_response_body(&host, 14, true);
    assert_eq!(host.response_body.borrow().as_slice(), br#"{"detail": []}"#);
    assert_eq!(
        host.metric("tollgate_masked_errors_total.op=validate"),
        Some(0)
    );

    let filter = plugin.new_filter(3).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    filter.borrow_mut().on_request_headers(&host);
    host.respond(&[(":status", "503")]);
    assert_eq!(
        filter.borrow_mut().on_response_headers(&host, true),
        Next::Stop
    );
    let replies = host.replies.borrow();
    assert_eq!(replies.first().map(|r| r.status), Some(503));
    assert!(replies
        .first()
        .unwrap()
        .body
        .contains("Service Unavailable. Request id unknown."));
}

#[test]
fn tollgates_own_503_is_not_masked() {
    let mut config = super::global_config("deny");
    config["mask_backend_errors"] = true.into();
    let (host, plugin) = configured(&config);
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    host.effective.set(2);
    host.fail("dispatch_grpc_call");
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    assert_eq!(host.replies.borrow().first().map(|r| r.status), Some(503));
    host.respond(&[(":status", "503"), JSON]);
    assert_eq!(
        filter.borrow_mut().on_response_headers(&host, false),
        Next::Continue
    );
    assert_eq!(
        host.metric("tollgate_masked_errors_total.op=validate"),
        Some(0)
    );
}

#[test]
fn a_2xx_is_reshaped_and_one_that_is_not_json_is_a_502() {
    let (host, plugin) = configured(&transform_config());
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    assert_eq!(
        filter.borrow_mut().on_request_headers_ending(&host, true),
        Next::Continue
    );
    host.respond(&[(":status", "200"), JSON, ("content-length", "60")]);
    assert_eq!(
        filter.borrow_mut().on_response_headers(&host, false),
        Next::Continue
    );
    assert_eq!(host.response_header_text("content-length"), None);
    let body = br#"{"valid": false, "problems": ["x"], "received": {"a": 1}}"#;
    *host.response_body.borrow_mut() = body.to_vec();
    assert_eq!(
        filter.borrow_mut().on_response_body(&host, 20, false),
        Next::Stop
    );
    assert_eq!(
        filter
            .borrow_mut()
            .on_response_body(&host, body.len(), true),
        Next::Continue
    );
    assert_eq!(
        host.response_body.borrow().as_slice(),
        br#"{"valid":false}"#
    );

    let filter = plugin.new_filter(3).unwrap();
    post(
        &host,
        &[("ocp-apim-subscription-key", KEY), ("x-request-id", "r7")],
    );
    filter.borrow_mut().on_request_headers_ending(&host, true);
    host.respond(&[(":status", "200"), ("content-type", "text/html")]);
    assert_eq!(
        filter.borrow_mut().on_response_headers(&host, false),
        Next::Stop
    );
    let replies = host.replies.borrow();
    let reply = replies.first().unwrap();
    assert_eq!(reply.status, 502);
    assert_eq!(
        reply.body,
        r#"{"statusCode":502,"message":"Bad gateway. Request id r7."}"#
    );
    assert_eq!(
        host.metric("tollgate_response_transform_failures_total.op=validate"),
        Some(1)
    );
    drop(replies);

    // Not 2xx: left as it is (the other consumer: the first has used its two calls).
    let filter = plugin.new_filter(4).unwrap();
    post(&host, &[("ocp-apim-subscription-key", "portal-key")]);
    filter.borrow_mut().on_request_headers_ending(&host, true);
    host.respond(&[(":status", "422"), JSON]);
    assert_eq!(
        filter.borrow_mut().on_response_headers(&host, false),
        Next::Continue
    );
    assert_eq!(
        filter.borrow_mut().on_response_body(&host, 10, true),
        Next::Continue
    );
    assert!(host.replies.borrow().is_empty());
}

#[test]
fn unmatched_pass_through_is_masked_by_the_top_level() {
    let mut config = masking_config();
    config["unmatched"] = "pass".into();
    let (host, plugin) = configured(&config);
    let filter = plugin.new_filter(2).unwrap();
    host.request(&[(":method", "GET"), (":path", "/elsewhere")]);
    assert_eq!(
        filter.borrow_mut().on_request_headers(&host),
        Next::Continue
    );
    host.respond(&[(":status", "502"), ("content-type", "text/plain")]);
    filter.borrow_mut().on_response_headers(&host, false);
    *host.response_body.borrow_mut() = b"upstream connect error".to_vec();
    filter.borrow_mut().on_response_body(&host, 22, true);
    assert!(String::from_utf8_lossy(&host.response_body.borrow()).contains("Bad Gateway."));
    assert_eq!(host.metric("tollgate_masked_errors_total.op=-"), Some(1));
}

/// A body that ends with trailers (HTTP/2) is complete at the trailers: reshaped there, never
/// let through unshaped; a masked 5xx whose last chunk never came is cut off, not ended short.
#[test]
fn trailers_complete_a_reshaped_body_and_cut_off_a_masked_one() {
    let (host, plugin) = configured(&transform_config());
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY), JSON]);
    assert_eq!(
        filter.borrow_mut().on_request_headers(&host),
        Next::Continue
    );
    let body = br#"{"InvoiceNumber": "INV-5", "Total": 5}"#;
    *host.request_body.borrow_mut() = body.to_vec();
    assert_eq!(
        filter
            .borrow_mut()
            .on_request_body(&host, body.len(), false),
        Next::Stop
    );
    assert_eq!(
        crate::filter::on_request_trailers(&filter, &host),
        Next::Continue
    );
    let sent: Value = serde_json::from_slice(&host.request_body.borrow()).unwrap();
    assert_eq!(sent["invoice_id"], "INV-5");

    let (host, plugin) = configured(&masking_config());
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    filter.borrow_mut().on_request_headers(&host);
    host.respond(&[(":status", "500"), JSON]);
    filter.borrow_mut().on_response_headers(&host, false);
    *host.response_body.borrow_mut() = b"secret".to_vec();
    filter.borrow_mut().on_response_body(&host, 6, false);
    assert_eq!(
        crate::filter::on_response_trailers(&filter, &host),
        Next::Stop
    );
    assert_eq!(host.replies.borrow().first().map(|r| r.status), Some(500));
}
