//! The response cache in the glue: a miss goes upstream and its answer is copied as it passes
//! and stored at its end; the next identical request is answered by tollgate with the entry,
//! its own rate-limit headers, `Age` and `x-cache: HIT`.

use super::fake_host::FakeHost;
use super::{configured, KEY};
use crate::filter::Next;
use serde_json::json;
use tollgate_core::metrics::{cache_counter, CacheEvent, CACHE_BYTES};
use tollgate_core::KeyHash;

fn config() -> serde_json::Value {
    json!({
        "products": { "starter": { "rate_limit": { "calls": 3, "renewal_period_s": 60 } } },
        "consumers": [
            { "id": "invoice-flow", "product": "starter",
              "keys": [KeyHash::of(KEY.as_bytes()).to_config_string()] },
            { "id": "portal", "product": "starter",
              "keys": [KeyHash::of(b"portal-key").to_config_string()] }
        ],
        "operations": [
            { "name": "invoice", "methods": ["GET"], "path_template": "/invoices/{id}",
              "response_headers": { "remove": ["server"] },
              "cache": { "ttl_s": 30, "max_entry_bytes": 4096 } }
        ]
    })
}

fn get(host: &FakeHost, key: &str, extra: &[(&str, &str)]) {
    let mut headers = vec![
        (":method", "GET"),
        (":path", "/invoices/7"),
        (":authority", "api.example"),
        ("ocp-apim-subscription-key", key),
    ];
    headers.extend_from_slice(extra);
    host.request(&headers);
}

/// A miss answered by the upstream with `body` in two chunks.
fn miss(
    host: &FakeHost,
    plugin: &crate::plugin::Plugin,
    id: u32,
    response: &[(&str, &str)],
    body: &[u8],
) {
    let filter = plugin.new_filter(id).unwrap();
    assert_eq!(filter.borrow_mut().on_request_headers(host), Next::Continue);
    host.respond(response);
    filter.borrow_mut().on_response_headers(host, false);
    assert_eq!(
        host.response_header_text("x-cache").as_deref(),
        Some("MISS")
    );
    let (first, second) = body.split_at(body.len() / 2);
    for (chunk, end) in [(first, false), (second, true)] {
        *host.response_body.borrow_mut() = chunk.to_vec();
        crate::filter::on_response_body(&filter, host, chunk.len(), end);
    }
}

#[test]
fn a_miss_is_stored_and_the_next_identical_get_is_answered_from_the_cache() {
    let (host, plugin) = configured(&config());
    get(&host, KEY, &[]);
    let ok = [
        (":status", "200"),
        ("content-type", "application/json"),
        ("server", "uvicorn"),
    ];
    miss(&host, &plugin, 2, &ok, br#"{"invoice_id": "7"}"#);
    assert_eq!(
        host.metric(&cache_counter("invoice", CacheEvent::Miss)),
        Some(1)
    );
    assert_eq!(
        host.metric(&cache_counter("invoice", CacheEvent::Store)),
        Some(1)
    );
    assert!(host.metric(CACHE_BYTES).unwrap() > 19);

    host.now_ms.set(host.now_ms.get() + 2_500);
    get(&host, KEY, &[]);
    let filter = plugin.new_filter(3).unwrap();
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    let replies = host.replies.borrow();
    let reply = replies.first().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, r#"{"invoice_id": "7"}"#);
    assert_eq!(reply.header("x-cache"), Some("HIT"));
    assert_eq!(reply.header("age"), Some("2"));
    assert_eq!(
        reply.header("server"),
        None,
        "the operation's edits apply to a hit"
    );
    assert_eq!(
        reply.header("x-ratelimit-remaining"),
        Some("1"),
        "a hit is counted"
    );
    assert_eq!(
        host.metric(&cache_counter("invoice", CacheEvent::Hit)),
        Some(1)
    );
}

#[test]
fn another_consumer_misses_and_no_store_or_no_cache_skip_the_entry() {
    let (host, plugin) = configured(&config());
    get(&host, KEY, &[]);
    miss(
        &host,
        &plugin,
        2,
        &[(":status", "200")],
        b"for invoice-flow",
    );
    get(&host, "portal-key", &[]);
    miss(
        &host,
        &plugin,
        3,
        &[(":status", "200"), ("cache-control", "no-store")],
        b"for portal",
    );
    assert_eq!(
        host.metric(&cache_counter("invoice", CacheEvent::Store)),
        Some(1)
    );
    // Cache-Control: no-cache goes upstream even with an entry there.
    get(&host, KEY, &[("cache-control", "no-cache")]);
    miss(&host, &plugin, 4, &[(":status", "200")], b"fresh");
    get(&host, KEY, &[]);
    let filter = plugin.new_filter(5).unwrap();
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    assert_eq!(host.replies.borrow().first().unwrap().body, "fresh");
}

#[test]
fn an_answer_past_max_entry_bytes_passes_on_uncopied() {
    let (host, plugin) = configured(&config());
    get(&host, KEY, &[]);
    miss(&host, &plugin, 2, &[(":status", "200")], &[b'x'; 6000]);
    assert_eq!(
        host.metric(&cache_counter("invoice", CacheEvent::Store)),
        Some(0)
    );
    assert_eq!(
        host.calls
            .borrow()
            .iter()
            .filter(|c| **c == "get_response_body")
            .count(),
        1,
        "the first half is copied; the half that cannot fit is not even read"
    );
}
