use super::store::{slot_key, CacheEntry, Lookup};
use super::*;
use crate::limits::CounterStore;
use crate::plan::Plan;
use crate::rewrite::HeaderEdit;
use crate::testing::MemoryStore;
use serde_json::json;

fn policy(query: &[&str], headers: &[&str], per_consumer: bool) -> CachePolicy {
    CachePolicy {
        ttl_ms: 30_000,
        vary_by_query: query.iter().map(|q| q.to_string()).collect(),
        vary_by_headers: headers.iter().map(|h| h.to_string()).collect(),
        per_consumer,
        max_entry_bytes: 4096,
    }
}

fn headers(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn material(
    policy: &CachePolicy,
    query: Option<&str>,
    hdrs: &Headers,
    consumer: Option<&str>,
) -> Vec<u8> {
    key_material(
        policy,
        &KeyParts {
            operation: 0,
            path: "/invoices/1",
            query,
            headers: hdrs,
            consumer,
        },
    )
}

#[test]
fn query_order_does_not_matter_and_unlisted_parameters_are_ignored() {
    let policy = policy(&["status", "limit"], &[], true);
    let none = headers(&[]);
    let a = material(
        &policy,
        Some("status=open&limit=5&trace=1"),
        &none,
        Some("c"),
    );
    let b = material(&policy, Some("limit=5&status=open"), &none, Some("c"));
    let c = material(&policy, Some("limit=6&status=open"), &none, Some("c"));
    let d = material(&policy, None, &none, Some("c"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, d);
    // A value that spells another parameter cannot pass for it.
    let e = material(&policy, Some("status=open%26limit%3D5"), &none, Some("c"));
    assert_ne!(a, e);
}

#[test]
fn listed_headers_count_by_value_and_others_not_at_all() {
    let policy = policy(&[], &["accept"], true);
    let json = material(
        &policy,
        None,
        &headers(&[("accept", "application/json")]),
        None,
    );
    let same = material(
        &policy,
        None,
        &headers(&[("accept", "application/json"), ("user-agent", "x")]),
        None,
    );
    let xml = material(&policy, None, &headers(&[("accept", "text/xml")]), None);
    assert_eq!(json, same);
    assert_ne!(json, xml);
}

#[test]
fn header_names_are_configured_in_any_case_and_compared_lower_case() {
    let config = CacheConfig {
        ttl_s: 5,
        vary_by_query: None,
        vary_by_headers: Some(vec!["Accept-Language".into(), "accept-language".into()]),
        per_consumer: None,
        max_entry_bytes: None,
    };
    let compiled = compile_policy("op", config, &MethodSet::any(), 1 << 20, "k", "key").unwrap();
    assert_eq!(compiled.vary_by_headers, vec!["accept-language"]);
    assert!(compiled.per_consumer, "per_consumer defaults to true");
}

#[test]
fn per_consumer_keys_part_consumers_and_shared_keys_do_not() {
    let none = headers(&[]);
    let own = policy(&[], &[], true);
    assert_ne!(
        material(&own, None, &none, Some("a")),
        material(&own, None, &none, Some("b"))
    );
    let shared = policy(&[], &[], false);
    assert_eq!(
        material(&shared, None, &none, Some("a")),
        material(&shared, None, &none, Some("b"))
    );
}

fn request(tag: u128, slot: usize) -> CacheRequest {
    CacheRequest {
        operation: 0,
        slot,
        tag,
        refresh: false,
        head: false,
        ttl_ms: 30_000,
        max_entry_bytes: 4096,
        per_consumer: true,
    }
}

fn answer(list: &[(&str, &str)]) -> Result<Vec<(String, String)>, NotStored> {
    storable_headers(&request(1, 0), &headers(list))
}

#[test]
fn storage_rules() {
    let ok = answer(&[
        (":status", "200"),
        ("content-type", "application/json"),
        ("content-length", "9"),
    ])
    .unwrap();
    assert_eq!(
        ok,
        vec![("content-type".to_string(), "application/json".to_string())]
    );
    assert_eq!(answer(&[(":status", "404")]), Err(NotStored::Status));
    assert_eq!(answer(&[(":status", "201")]), Err(NotStored::Status));
    assert_eq!(
        answer(&[(":status", "200"), ("cache-control", "max-age=5, No-Store")]),
        Err(NotStored::NoStore)
    );
    assert_eq!(
        answer(&[(":status", "200"), ("set-cookie", "s=1")]),
        Err(NotStored::SetCookie)
    );
    // `private` is one consumer's: stored only where each consumer has its own entries.
    assert!(answer(&[(":status", "200"), ("cache-control", "private")]).is_ok());
    let mut shared = request(1, 0);
    shared.per_consumer = false;
    assert_eq!(
        storable_headers(
            &shared,
            &headers(&[(":status", "200"), ("cache-control", "private")])
        ),
        Err(NotStored::Private)
    );
}

#[test]
fn a_capture_gives_up_past_max_entry_bytes() {
    let mut capture = Capture::start(request(1, 0), Vec::new()).unwrap();
    assert!(capture.add(&[b'x'; 3000]).is_ok());
    assert!(!capture.fits(2000));
    assert_eq!(capture.add(&[b'x'; 2000]), Err(NotStored::TooLarge));
}

fn stored(store: &MemoryStore, request: &CacheRequest, at: u64, body: &[u8]) -> Stored {
    let mut capture = Capture::start(
        request.clone(),
        vec![("content-type".into(), "text/plain".into())],
    )
    .unwrap();
    capture.add(body).unwrap();
    let (request, entry) = capture.finish(at);
    super::store(store, &request, &entry).unwrap().unwrap()
}

fn empty_slots(store: &MemoryStore, slots: usize) {
    for slot in 0..slots {
        store.store(&slot_key(slot), &[], None).unwrap();
    }
}

#[test]
fn an_entry_is_served_until_it_expires() {
    let store = MemoryStore::default();
    empty_slots(&store, 1);
    let request = request(7, 0);
    assert_eq!(lookup(&store, &request, 0), Lookup::Miss);
    stored(&store, &request, 1_000, b"body");
    let Lookup::Hit(entry) = lookup(&store, &request, 30_999) else {
        panic!("a fresh entry is a hit");
    };
    assert_eq!(entry.body, b"body");
    assert_eq!(lookup(&store, &request, 31_000), Lookup::Miss);
}

#[test]
fn another_key_in_the_same_slot_is_a_miss_and_evicts_it() {
    let store = MemoryStore::default();
    empty_slots(&store, 1);
    let first = request(1, 0);
    let second = request(2, 0);
    let initial = stored(&store, &first, 0, b"first");
    assert!(!initial.evicted);
    assert_eq!(
        lookup(&store, &second, 10),
        Lookup::Miss,
        "never the other key's answer"
    );
    // The newest answer takes the slot; a live entry it replaces is an eviction...
    let replaced = stored(&store, &second, 10, b"second");
    assert!(replaced.evicted);
    assert_eq!(lookup(&store, &first, 20), Lookup::Miss);
    assert!(matches!(lookup(&store, &second, 20), Lookup::Hit(_)));
    // ...an expired one is not.
    let after_expiry = stored(&store, &first, 60_000, b"first again");
    assert!(!after_expiry.evicted);
}

#[test]
fn an_older_answer_never_replaces_a_newer_one_of_the_same_key() {
    let store = MemoryStore::default();
    empty_slots(&store, 1);
    let request = request(3, 0);
    stored(&store, &request, 5_000, b"new");
    let mut late = Capture::start(request.clone(), Vec::new()).unwrap();
    late.add(b"old").unwrap();
    let (late_request, entry) = late.finish(4_000);
    assert_eq!(super::store(&store, &late_request, &entry).unwrap(), None);
}

#[test]
fn the_bytes_in_use_follow_every_write() {
    let store = MemoryStore::default();
    empty_slots(&store, 1);
    let request = request(3, 0);
    let first = stored(&store, &request, 0, &[b'a'; 100]);
    let second = stored(&store, &request, 1, &[b'a'; 40]);
    let (value, _) = store.load(&slot_key(0)).unwrap();
    assert_eq!(
        first.bytes_delta + second.bytes_delta,
        value.unwrap().len() as i64
    );
    assert_eq!(second.bytes_delta, -60);
}

#[test]
fn the_store_stays_within_max_bytes_whatever_the_keys() {
    let plan = Plan::from_json(
        json!({
            "operations": [{ "name": "invoice", "methods": ["GET"], "path_prefix": "/i",
                             "auth": "none",
                             "cache": { "ttl_s": 60, "vary_by_query": ["q"], "max_entry_bytes": 2048 } }],
            "cache_limits": { "max_bytes": 65536 }
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let layout = plan.cache_layout().unwrap();
    assert_eq!(layout.slots, 32);
    assert!(layout.max_bytes() <= 65536);
    let store = MemoryStore::default();
    assert!(plan.prepare_counters(&store).is_empty());
    let hash_key = super::hash_key(&store, &layout).unwrap();
    let policy = plan
        .operations
        .first()
        .and_then(|op| op.cache.clone())
        .unwrap();
    let none = headers(&[]);
    for n in 0..5_000u64 {
        let query = format!("q={n}");
        let parts = KeyParts {
            operation: 0,
            path: "/i",
            query: Some(&query),
            headers: &none,
            consumer: None,
        };
        let request = cache_request(&policy, &layout, &hash_key, &parts, "GET").unwrap();
        stored(&store, &request, n, &[b'x'; 1500]);
    }
    let total: usize = (0..layout.slots)
        .map(|slot| store.load(&slot_key(slot)).unwrap().0.unwrap().len())
        .sum();
    assert!(total <= 65536, "{total}");
    // The slots, the hash key's record, nothing per URL.
    assert_eq!(store.len(), layout.slots + 1);
}

#[test]
fn a_new_configuration_starts_with_an_empty_cache() {
    let config = |ttl: u64| {
        json!({
            "operations": [{ "name": "invoice", "methods": ["GET"], "path": "/i", "auth": "none",
                             "cache": { "ttl_s": ttl } }]
        })
        .to_string()
    };
    let first = Plan::from_json(config(60).as_bytes()).unwrap();
    let store = MemoryStore::default();
    first.prepare_counters(&store);
    let layout = first.cache_layout().unwrap();
    let key = super::hash_key(&store, &layout).unwrap();
    // Another worker with the same configuration finds the same key.
    first.prepare_counters(&store);
    assert_eq!(super::hash_key(&store, &layout), Some(key));
    let second = Plan::from_json(config(61).as_bytes()).unwrap();
    second.prepare_counters(&store);
    let renewed = super::hash_key(&store, &second.cache_layout().unwrap()).unwrap();
    assert_ne!(
        renewed, key,
        "entries keyed under the old key no longer match"
    );
    assert_eq!(
        super::hash_key(&store, &layout),
        None,
        "the old configuration bypasses the cache"
    );
}

#[test]
fn refused_at_load() {
    let refusal = |operation: serde_json::Value, limits: serde_json::Value| {
        let mut config = json!({ "operations": [operation] });
        if !limits.is_null() {
            config["cache_limits"] = limits;
        }
        Plan::from_json(config.to_string().as_bytes())
            .unwrap_err()
            .to_string()
    };
    let op = |methods: serde_json::Value, cache: serde_json::Value| json!({ "name": "o", "methods": methods, "path": "/o", "auth": "none", "cache": cache });
    let post = refusal(
        op(json!(["POST"]), json!({"ttl_s": 5})),
        serde_json::Value::Null,
    );
    assert!(post.contains("operations[0].cache"), "{post}");
    let ttl = refusal(
        op(json!(["GET"]), json!({"ttl_s": 0})),
        serde_json::Value::Null,
    );
    assert!(ttl.contains("operations[0].cache.ttl_s"), "{ttl}");
    let big = refusal(
        op(json!(["GET"]), json!({"ttl_s": 5, "max_entry_bytes": 8192})),
        json!({"max_bytes": 4096}),
    );
    assert!(big.contains("operations[0].cache.max_entry_bytes"), "{big}");
    let header = refusal(
        op(
            json!(["GET"]),
            json!({"ttl_s": 5, "vary_by_headers": ["bad header"]}),
        ),
        serde_json::Value::Null,
    );
    assert!(
        header.contains("operations[0].cache.vary_by_headers[0]"),
        "{header}"
    );
    let unknown = refusal(
        op(json!(["GET"]), json!({"ttl_s": 5, "ttl": 1})),
        serde_json::Value::Null,
    );
    assert!(unknown.contains("operations[0].cache"), "{unknown}");
    // Absent methods hold GET.
    let any = json!({ "operations": [{ "name": "o", "path": "/o", "auth": "none", "cache": {"ttl_s": 5} }] });
    assert!(Plan::from_json(any.to_string().as_bytes()).is_ok());
}

#[test]
fn a_hit_replays_the_entry_with_the_requests_own_edits() {
    let entry = CacheEntry {
        tag: 1,
        stored_ms: 1_000,
        expires_ms: 60_000,
        status: 200,
        headers: vec![
            ("server".into(), "uvicorn".into()),
            ("content-type".into(), "application/json".into()),
        ],
        body: b"{}".to_vec(),
    };
    assert_eq!(CacheEntry::decode(&entry.encode()), Some(entry.clone()));
    let edits = [
        HeaderEdit::Remove("server".into()),
        HeaderEdit::Set("x-ratelimit-remaining".into(), "3".into()),
    ];
    let reply = entry.reply(&edits, 13_500);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"{}");
    let names: Vec<&str> = reply.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["content-type", "x-ratelimit-remaining", "age", "x-cache"]
    );
    assert!(reply.headers.contains(&("age".into(), "12".into())));
    assert!(reply.headers.contains(&("x-cache".into(), "HIT".into())));
}

#[test]
fn no_cache_refreshes_and_only_get_or_head_are_looked_up() {
    let layout = CacheLayout {
        slots: 8,
        slot_bytes: 4096,
        config_hash: 0,
    };
    let policy = policy(&[], &[], true);
    let plain = headers(&[]);
    let refresh = headers(&[("cache-control", "no-cache")]);
    let parts = |h| KeyParts {
        operation: 0,
        path: "/i",
        query: None,
        headers: h,
        consumer: None,
    };
    let get = cache_request(&policy, &layout, &[1; 16], &parts(&plain), "GET").unwrap();
    assert!(!get.refresh && !get.head);
    assert!(
        cache_request(&policy, &layout, &[1; 16], &parts(&refresh), "GET")
            .unwrap()
            .refresh
    );
    let head = cache_request(&policy, &layout, &[1; 16], &parts(&plain), "HEAD").unwrap();
    assert!(head.head);
    assert_eq!(head.tag, get.tag, "a HEAD finds the GET's entry");
    assert!(cache_request(&policy, &layout, &[1; 16], &parts(&plain), "POST").is_none());
    let other_key = cache_request(&policy, &layout, &[2; 16], &parts(&plain), "GET").unwrap();
    assert_ne!(
        other_key.tag, get.tag,
        "keyed: another process key, another hash"
    );
}

#[test]
fn a_cache_beside_a_response_transform_is_refused_at_load() {
    let config = json!({
        "operations": [{
            "name": "get_invoice", "methods": ["GET"], "path_template": "/invoices/{id}",
            "auth": "none",
            "cache": { "ttl_s": 30 },
            "response_body": { "transform": "body" }
        }]
    });
    let err = Plan::from_json(config.to_string().as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains(
            "operations[0].cache: an operation with a response_body transform cannot be cached"
        ),
        "{err}"
    );
}
