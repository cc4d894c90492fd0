//! `max_request_body_bytes` through the glue: a declared length refused with the headers, a
//! streamed body refused the moment it passes the limit, and one that passes it while the
//! request waits refused when the wait ends instead of being forwarded.

use super::{configured, post, KEY};
use crate::filter::Next;
use serde_json::Value;
use tollgate_core::metrics::request_counter;

fn limited(max_bytes: u64) -> Value {
    let mut config = super::config();
    config["max_request_body_bytes"] = max_bytes.into();
    config
}

#[test]
fn a_declared_length_over_the_limit_is_413_before_credentials() {
    let (host, plugin) = configured(&limited(10));
    let filter = plugin.new_filter(2).unwrap();
    // No key at all: the size is checked first.
    post(&host, &[("content-length", "11")]);
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    let replies = host.replies.borrow();
    let reply = replies.first().unwrap();
    assert_eq!(reply.status, 413);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["message"], "Request body is larger than 10 bytes.");
    assert_eq!(
        host.metric(&request_counter("validate", "-", "too_large")),
        Some(1)
    );
}

#[test]
fn a_streamed_body_is_refused_the_moment_it_passes_the_limit() {
    let (host, plugin) = configured(&limited(10));
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    assert_eq!(
        filter.borrow_mut().on_request_headers(&host),
        Next::Continue
    );
    assert_eq!(
        filter.borrow_mut().on_request_body(&host, 6, false),
        Next::Continue
    );
    assert_eq!(
        filter.borrow_mut().on_request_body(&host, 4, false),
        Next::Continue
    );
    assert!(host.replies.borrow().is_empty(), "exactly the limit passes");
    assert_eq!(
        filter.borrow_mut().on_request_body(&host, 1, false),
        Next::Stop
    );
    assert_eq!(host.replies.borrow().first().map(|r| r.status), Some(413));
    assert_eq!(
        host.metric(&request_counter("validate", "-", "too_large")),
        Some(1)
    );
    // Nothing more is counted or sent for the rest of the stream.
    assert_eq!(
        filter.borrow_mut().on_request_body(&host, 100, false),
        Next::Continue
    );
    assert_eq!(host.replies.borrow().len(), 1);
}

#[test]
fn without_a_limit_the_body_is_never_looked_at() {
    let (host, plugin) = configured(&super::config());
    let filter = plugin.new_filter(2).unwrap();
    post(
        &host,
        &[
            ("ocp-apim-subscription-key", KEY),
            ("content-length", "999999"),
        ],
    );
    assert_eq!(
        filter.borrow_mut().on_request_headers(&host),
        Next::Continue
    );
    assert_eq!(
        filter
            .borrow_mut()
            .on_request_body(&host, usize::MAX, false),
        Next::Continue
    );
    assert!(host.replies.borrow().is_empty());
}

#[test]
fn an_operation_can_switch_the_limit_off_or_set_its_own() {
    let mut config = limited(10);
    config["operations"][0]["max_request_body_bytes"] = Value::Null;
    let (host, plugin) = configured(&config);
    let filter = plugin.new_filter(2).unwrap();
    post(
        &host,
        &[("ocp-apim-subscription-key", KEY), ("content-length", "11")],
    );
    assert_eq!(
        filter.borrow_mut().on_request_headers(&host),
        Next::Continue
    );

    config["operations"][0]["max_request_body_bytes"] = 20.into();
    let (host, plugin) = configured(&config);
    let filter = plugin.new_filter(2).unwrap();
    post(
        &host,
        &[("ocp-apim-subscription-key", KEY), ("content-length", "21")],
    );
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    assert_eq!(host.replies.borrow().first().map(|r| r.status), Some(413));
}

#[test]
fn a_body_that_passes_the_limit_while_the_request_waits_is_refused_not_forwarded() {
    let mut config = super::global_config("local");
    config["max_request_body_bytes"] = 10.into();
    let (host, plugin) = configured(&config);
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    host.effective.set(2);
    // Waiting for the rate-limit service.
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    let call = host.grpc_calls.borrow().first().cloned().unwrap();
    assert_eq!(
        filter.borrow_mut().on_request_body(&host, 11, false),
        Next::Stop
    );
    assert!(
        host.replies.borrow().is_empty(),
        "nothing sent while it waits"
    );
    *host.grpc_answer.borrow_mut() = Some(super::RLS_OK.to_vec());
    filter
        .borrow_mut()
        .on_grpc_call_response(&host, call.token, 0, super::RLS_OK.len());
    assert_eq!(host.replies.borrow().first().map(|r| r.status), Some(413));
    assert_eq!(host.resumed.get(), 0, "never forwarded");
    assert_eq!(
        host.request_header("x-consumer-id").as_deref(),
        Some("spoofed"),
        "and never edited for the upstream"
    );
}

#[test]
fn trailers_that_arrive_while_the_request_waits_hold_it_until_the_decision() {
    let config = super::global_config("local");
    let (host, plugin) = configured(&config);
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    host.effective.set(2);
    // Waiting for the rate-limit service: body and trailers arrive.
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    let call = host.grpc_calls.borrow().first().cloned().unwrap();
    assert_eq!(
        filter.borrow_mut().on_request_body(&host, 5, false),
        Next::Stop
    );
    assert_eq!(
        crate::filter::on_request_trailers(&filter, &host),
        Next::Stop,
        "trailers let through would send the request upstream undecided"
    );
    assert_eq!(host.resumed.get(), 0);
    *host.grpc_answer.borrow_mut() = Some(super::RLS_OK.to_vec());
    filter
        .borrow_mut()
        .on_grpc_call_response(&host, call.token, 0, super::RLS_OK.len());
    assert_eq!(host.resumed.get(), 1, "forwarded once decided");
    assert!(host.replies.borrow().is_empty());
}
