//! Signing keys fetched from the identity provider, driven through the glue: discovery, refresh,
//! failures, the request that waits for a rotated key, configuration pushes, backoff.

use super::fake_host::FakeHost;
use super::RLS_OK;
use crate::filter::QUICK_TICK_MS;
use crate::filter::{self, Filter, Next};
use crate::plugin::{Plugin, TICK_PERIOD_MS};
use jwt_simple::prelude::{
    Claims, Duration, ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair, UnixTimeStamp,
};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;
use tollgate_core::metrics::request_counter;

const ROOT: u32 = 1;

fn jwt_config(jwt: Value) -> Value {
    json!({
        "products": { "p": {} },
        "consumers": [{ "id": "portal", "product": "p", "jwt_client_ids": ["client-1"] }],
        "jwt": jwt,
        "operations": [{ "name": "op", "path": "/", "auth": "jwt" }]
    })
}

/// A `jwks_uri` source (timeout 3 s) with these extra `jwt` members.
fn remote_config(extra: Value) -> Value {
    let mut jwt = json!({
        "algorithms": ["ES256"],
        "jwks_uri": { "url": "https://idp.example/keys", "cluster": "idp", "timeout_ms": 3000 }
    });
    if let (Some(jwt), Some(extra)) = (jwt.as_object_mut(), extra.as_object()) {
        jwt.extend(extra.clone());
    }
    jwt_config(jwt)
}

fn configured(config: &Value, root: u32) -> (FakeHost, Plugin) {
    let host = FakeHost::with_configuration(config);
    host.effective.set(root);
    let mut plugin = Plugin::new(root);
    assert!(plugin.configure(&host), "configuration refused");
    (host, plugin)
}

/// The provider's signing keys: `h1` (current), `h2` (the next one, after a rotation).
pub(super) fn signer(kid: &str) -> ES256KeyPair {
    static KEYS: OnceLock<[ES256KeyPair; 2]> = OnceLock::new();
    let keys = KEYS.get_or_init(|| [ES256KeyPair::generate(), ES256KeyPair::generate()]);
    let key = if kid == "h2" { &keys[1] } else { &keys[0] };
    ES256KeyPair::from_bytes(&key.to_bytes()).unwrap()
}

pub(super) fn b64(bytes: &[u8]) -> String {
    use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Encoder};
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

pub(super) fn jwk(kid: &str) -> Value {
    let point = signer(kid)
        .public_key()
        .public_key()
        .to_bytes_uncompressed();
    json!({ "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
            "x": b64(&point[1..33]), "y": b64(&point[33..]) })
}

/// The provider's published set: the public keys `kids`.
pub(super) fn jwks(kids: &[&str]) -> Value {
    json!({ "keys": kids.iter().map(|kid| jwk(kid)).collect::<Vec<_>>() })
}

fn claims(now_ms: u64) -> jwt_simple::prelude::JWTClaims<Value> {
    let mut claims =
        Claims::with_custom_claims(json!({ "azp": "client-1" }), Duration::from_secs(600));
    claims.issued_at = Some(UnixTimeStamp::from_secs(now_ms / 1000));
    claims.expires_at = Some(UnixTimeStamp::from_secs(now_ms / 1000 + 600));
    claims
}

/// A token signed by `key`, naming `kid` in its header.
fn token_by(key: &str, kid: &str, now_ms: u64) -> String {
    signer(key).with_key_id(kid).sign(claims(now_ms)).unwrap()
}

fn token(kid: &str, now_ms: u64) -> String {
    token_by(kid, kid, now_ms)
}

fn get_with(host: &FakeHost, token: &str) {
    let bearer = format!("Bearer {token}");
    host.request(&[
        (":method", "GET"),
        (":path", "/"),
        (":authority", "api.example"),
        ("authorization", bearer.as_str()),
    ]);
}

/// The provider answers call `token` with `status` and, for 200, the set `body`.
fn answer(host: &FakeHost, plugin: &mut Plugin, token: u32, status: &str, body: Option<Value>) {
    let body = body.map(|body| body.to_string().into_bytes());
    let size = body.as_ref().map_or(0, Vec::len);
    *host.call_answer.borrow_mut() = (Some(status.as_bytes().to_vec()), body);
    plugin.on_http_call_response(host, token, size);
}

fn later(host: &FakeHost, ms: u64) {
    host.now_ms.set(host.now_ms.get() + ms);
}

/// A new request in context `id` with this token: what `on_request_headers` says.
fn send(host: &FakeHost, plugin: &Plugin, id: u32, token: &str) -> (Rc<RefCell<Filter>>, Next) {
    let filter = plugin.new_filter(id).unwrap();
    get_with(host, token);
    host.effective.set(id);
    let next = filter::on_request_headers(&filter, host, false);
    host.effective.set(ROOT);
    (filter, next)
}

fn statuses(host: &FakeHost) -> Vec<(u32, u32)> {
    host.replies
        .borrow()
        .iter()
        .map(|reply| (reply.context, reply.status))
        .collect()
}

fn dispatched(host: &FakeHost) -> usize {
    host.dispatched.borrow().len()
}

#[test]
fn remote_keys_are_discovered_fetched_and_used() {
    let config = jwt_config(json!({
        "algorithms": ["ES256"],
        "openid_config": { "url": "https://idp.example/t/.well-known/openid-configuration",
                           "cluster": "idp", "timeout_ms": 3000 }
    }));
    let (host, mut plugin) = configured(&config, ROOT);
    assert_eq!(host.tick_period_ms.get(), Some(TICK_PERIOD_MS));
    let discovery = host.dispatched.borrow().first().cloned().unwrap();
    assert_eq!(
        (
            discovery.cluster.as_str(),
            discovery.authority.as_str(),
            discovery.path.as_str(),
            discovery.timeout_ms
        ),
        (
            "idp",
            "idp.example",
            "/t/.well-known/openid-configuration",
            3000
        )
    );

    // A token that arrives before the first keys waits for them (it used to get a 401).
    let (_early, next) = send(&host, &plugin, 2, &token("h1", host.now_ms.get()));
    assert_eq!(next, Next::Stop);
    assert!(host.replies.borrow().is_empty(), "held, not answered");

    *host.call_answer.borrow_mut() = (
        Some(b"200".to_vec()),
        Some(br#"{"jwks_uri":"https://idp.example/t/keys"}"#.to_vec()),
    );
    plugin.on_http_call_response(&host, discovery.token, 41);
    let jwks_call = host.dispatched.borrow().get(1).cloned().unwrap();
    assert_eq!(
        (jwks_call.cluster.as_str(), jwks_call.path.as_str()),
        ("idp", "/t/keys")
    );
    assert!(
        host.resumed_contexts.borrow().is_empty(),
        "discovery is not the keys"
    );

    answer(
        &host,
        &mut plugin,
        jwks_call.token,
        "200",
        Some(jwks(&["h1"])),
    );
    assert_eq!(*host.resumed_contexts.borrow(), vec![2]);
    assert_eq!(host.effective.get(), ROOT, "back in the root context");

    let (_, next) = send(&host, &plugin, 3, &token("h1", host.now_ms.get()));
    assert_eq!(next, Next::Continue);
    assert!(host.replies.borrow().is_empty());
    assert_eq!(
        host.metric(&request_counter("op", "portal", "allowed")),
        Some(2)
    );

    // Nothing more is due until the refresh interval (3600 s).
    later(&host, 60_000);
    plugin.tick(&host);
    assert_eq!(dispatched(&host), 2);
    later(&host, 3_600_000);
    plugin.tick(&host);
    assert_eq!(dispatched(&host), 3);
}

#[test]
fn an_unknown_kid_brings_a_refetch_and_failures_keep_the_keys() {
    let (host, mut plugin) =
        configured(&remote_config(json!({ "unknown_kid_refetch_s": 60 })), ROOT);
    answer(&host, &mut plugin, 1, "200", Some(jwks(&["h1"])));

    // A provider outage: the last good set stays in use.
    later(&host, 3_600_000);
    plugin.tick(&host);
    assert_eq!(dispatched(&host), 2);
    answer(&host, &mut plugin, 2, "503", None);
    let (_, next) = send(&host, &plugin, 2, &token("h1", host.now_ms.get()));
    assert_eq!(next, Next::Continue);

    // A token with a kid the set lacks: refused at once within the bound, and a refetch once
    // the bound allows.
    later(&host, 10_000);
    plugin.tick(&host);
    assert_eq!(dispatched(&host), 3, "a failure retries after 10 s");
    answer(&host, &mut plugin, 3, "200", Some(jwks(&["h1"])));
    let (_, next) = send(&host, &plugin, 3, &token("rotated", host.now_ms.get()));
    assert_eq!(next, Next::Stop);
    assert_eq!(statuses(&host), vec![(3, 401)]);
    later(&host, 59_000);
    plugin.tick(&host);
    assert_eq!(dispatched(&host), 3);
    later(&host, 1_000);
    plugin.tick(&host);
    assert_eq!(
        dispatched(&host),
        4,
        "refetched after unknown_kid_refetch_s"
    );
}

#[test]
fn a_refused_timer_or_call_is_survived_and_retried() {
    let host = FakeHost::with_configuration(&remote_config(json!({})));
    host.fail("set_tick_period");
    host.fail("dispatch_http_call");
    let mut plugin = Plugin::default();
    assert!(
        plugin.configure(&host),
        "a timer failure is logged, not fatal"
    );
    assert!(host.dispatched.borrow().is_empty());
    host.failing.borrow_mut().clear();
    later(&host, 1_000);
    plugin.tick(&host);
    assert_eq!(dispatched(&host), 1, "retried at the next tick");
    // An answer to a call that is not ours is ignored.
    plugin.on_http_call_response(&host, 99, 0);
}

#[test]
fn a_token_signed_by_a_rotated_key_is_accepted_on_the_first_request() {
    let (host, mut plugin) = configured(&remote_config(json!({})), ROOT);
    answer(&host, &mut plugin, 1, "200", Some(jwks(&["h1"])));
    // The provider rotates to h2, past the refetch bound (300 s by default).
    later(&host, 301_000);
    let rotated = token("h2", host.now_ms.get());
    let (_first, next) = send(&host, &plugin, 2, &rotated);
    assert_eq!(next, Next::Stop);
    assert_eq!(
        host.tick_period_ms.get(),
        Some(QUICK_TICK_MS),
        "the fetch is brought forward"
    );
    let (_second, next) = send(&host, &plugin, 3, &rotated);
    assert_eq!(
        next,
        Next::Stop,
        "a second request waits for the same fetch"
    );
    assert!(host.replies.borrow().is_empty());
    assert_eq!(
        dispatched(&host),
        1,
        "fetched by the root, not by the request"
    );

    plugin.tick(&host);
    assert_eq!(host.tick_period_ms.get(), Some(TICK_PERIOD_MS));
    assert_eq!(dispatched(&host), 2, "one fetch for both");
    answer(&host, &mut plugin, 2, "200", Some(jwks(&["h1", "h2"])));

    assert_eq!(*host.resumed_contexts.borrow(), vec![2, 3]);
    assert!(host.replies.borrow().is_empty(), "no 401 on the way");
    assert_eq!(host.effective.get(), ROOT);
    assert_eq!(
        host.metric(&request_counter("op", "portal", "allowed")),
        Some(2)
    );
    assert_eq!(
        host.metric(&request_counter("op", "-", "invalid_credential")),
        Some(0),
        "a request that waited is counted once, by its outcome"
    );
    let (_, next) = send(&host, &plugin, 4, &rotated);
    assert_eq!(next, Next::Continue);
}

#[test]
fn a_token_without_kid_from_a_new_key_also_waits_for_the_refetch() {
    let (host, mut plugin) = configured(&remote_config(json!({})), ROOT);
    answer(&host, &mut plugin, 1, "200", Some(jwks(&["h1"])));
    later(&host, 301_000);
    let no_kid = signer("h2").sign(claims(host.now_ms.get())).unwrap();
    let (_waiting, next) = send(&host, &plugin, 2, &no_kid);
    assert_eq!(next, Next::Stop);
    assert!(
        host.replies.borrow().is_empty(),
        "not refused as a bad signature"
    );
    plugin.tick(&host);
    answer(&host, &mut plugin, 2, "200", Some(jwks(&["h1", "h2"])));
    assert_eq!(*host.resumed_contexts.borrow(), vec![2]);
}

#[test]
fn a_failed_or_silent_refetch_ends_the_wait_with_the_keys_at_hand() {
    let (host, mut plugin) = configured(&remote_config(json!({})), ROOT);
    answer(&host, &mut plugin, 1, "200", Some(jwks(&["h1"])));

    // The provider fails: the request is answered as soon as the fetch ends.
    later(&host, 301_000);
    let (_failed, next) = send(&host, &plugin, 2, &token("h2", host.now_ms.get()));
    assert_eq!(next, Next::Stop);
    plugin.tick(&host);
    answer(&host, &mut plugin, 2, "503", None);
    assert_eq!(statuses(&host), vec![(2, 401)]);
    assert!(host.replies.borrow()[0]
        .body
        .contains("signing key not found"));

    // The provider never answers: the wait ends after timeout_ms (3 s), at a tick.
    later(&host, 301_000);
    let (_silent, next) = send(&host, &plugin, 3, &token("h2", host.now_ms.get()));
    assert_eq!(next, Next::Stop);
    plugin.tick(&host);
    assert_eq!(dispatched(&host), 3);
    later(&host, 2_000);
    plugin.tick(&host);
    assert!(host.replies.borrow().is_empty(), "still waiting");
    later(&host, 1_000);
    plugin.tick(&host);
    assert_eq!(statuses(&host), vec![(3, 401)]);
    assert!(host.resumed_contexts.borrow().is_empty());
}

#[test]
fn a_request_that_ended_while_waiting_is_left_alone() {
    let (host, mut plugin) = configured(&remote_config(json!({})), ROOT);
    answer(&host, &mut plugin, 1, "200", Some(jwks(&["h1"])));
    later(&host, 301_000);
    let rotated = token("h2", host.now_ms.get());
    let (dropped, _) = send(&host, &plugin, 2, &rotated);
    let (_gone, _) = send(&host, &plugin, 3, &rotated);
    let (_alive, _) = send(&host, &plugin, 4, &rotated);
    drop(dropped);
    host.gone.borrow_mut().push(3);
    plugin.tick(&host);
    answer(&host, &mut plugin, 2, "200", Some(jwks(&["h1", "h2"])));
    assert_eq!(*host.resumed_contexts.borrow(), vec![4]);
    assert!(host.replies.borrow().is_empty());
}

#[test]
fn a_woken_request_gets_its_rate_limit_answer_through_the_root() {
    let mut config = remote_config(json!({}));
    config["global_limits"] = json!({ "cluster": "tollgate_rls", "timeout_ms": 80 });
    config["products"]["p"] =
        json!({ "rate_limit": { "calls": 2, "renewal_period_s": 60, "scope": "global" } });
    let (host, mut plugin) = configured(&config, ROOT);
    answer(&host, &mut plugin, 1, "200", Some(jwks(&["h1"])));
    later(&host, 301_000);
    let (_waiting, _) = send(&host, &plugin, 2, &token("h2", host.now_ms.get()));
    plugin.tick(&host);
    answer(&host, &mut plugin, 2, "200", Some(jwks(&["h1", "h2"])));
    let call = host.grpc_calls.borrow().first().cloned().unwrap();
    assert!(
        host.resumed_contexts.borrow().is_empty(),
        "the service decides"
    );
    // Made in the root's name, as every rate-limit call: a client that leaves meanwhile
    // leaves no call behind for Envoy to cancel without a callback.
    assert_eq!(
        call.context, ROOT,
        "grpc call made while context {} was effective",
        call.context
    );

    // The SDK hands the answer to the root, whose callback made the call.
    plugin.on_grpc_call_response(&host, call.token + 1, 0, 0);
    assert!(host.resumed_contexts.borrow().is_empty(), "not this call");
    *host.grpc_answer.borrow_mut() = Some(RLS_OK.to_vec());
    plugin.on_grpc_call_response(&host, call.token, 0, RLS_OK.len());
    assert_eq!(*host.resumed_contexts.borrow(), vec![2]);
    assert_eq!(host.effective.get(), ROOT);
}

#[test]
fn a_configuration_push_starts_from_the_keys_fetched_before() {
    let config = remote_config(json!({}));
    let (host, mut old) = configured(&config, ROOT);
    answer(&host, &mut old, 1, "200", Some(jwks(&["h1"])));

    // The push: a new plugin in the same VM, and the provider down.
    let mut new = Plugin::new(ROOT + 10);
    assert!(new.configure(&host));
    assert_eq!(dispatched(&host), 2, "the new plugin fetches at once");
    let now = host.now_ms.get();
    let (_, next) = send(&host, &new, 2, &token("h1", now));
    assert_eq!(next, Next::Continue, "before the fetch answers");
    answer(&host, &mut new, 2, "503", None);
    let (_, next) = send(&host, &new, 3, &token("h1", now));
    assert_eq!(next, Next::Continue, "and after it failed");

    // Another source starts from nothing.
    let mut other_config = config.clone();
    other_config["jwt"]["jwks_uri"]["cluster"] = json!("idp-2");
    *host.configuration.borrow_mut() = Some(other_config.to_string().into_bytes());
    let mut other = Plugin::new(ROOT + 20);
    assert!(other.configure(&host));
    let (_, next) = send(&host, &other, 4, &token("h1", now));
    assert_eq!(next, Next::Stop, "waits for its own first fetch");
}

#[test]
fn a_missing_cluster_is_retried_with_backoff_not_every_second() {
    let host = FakeHost::with_configuration(&remote_config(json!({})));
    host.fail("dispatch_http_call");
    let mut plugin = Plugin::new(ROOT);
    assert!(plugin.configure(&host));
    for _ in 0..300 {
        later(&host, 1_000);
        plugin.tick(&host);
    }
    let attempts = host
        .calls
        .borrow()
        .iter()
        .filter(|call| **call == "dispatch_http_call")
        .count();
    // At 0, 1, 3, 7, 15, 31, 63 s, then once a minute.
    assert_eq!(attempts, 10);
}

#[test]
fn unusable_keys_of_a_fetched_set_are_skipped_not_fatal() {
    let (host, mut plugin) = configured(&remote_config(json!({})), ROOT);
    let mut set = jwks(&["h1"]);
    if let Some(keys) = set["keys"].as_array_mut() {
        keys.insert(
            0,
            json!({ "kty": "EC", "crv": "P-521", "kid": "p521", "x": "AQ", "y": "AQ" }),
        );
        keys.insert(
            0,
            json!({ "kty": "RSA", "kid": "short", "n": b64(&[0xc5; 128]), "e": "AQAB" }),
        );
        keys.push(json!({ "kty": "oct", "kid": "secret", "k": b64(&[7; 32]) }));
    }
    answer(&host, &mut plugin, 1, "200", Some(set));
    let (_, next) = send(&host, &plugin, 2, &token("h1", host.now_ms.get()));
    assert_eq!(next, Next::Continue);
    // A secret from the endpoint never verifies anything.
    let forged = {
        use jwt_simple::prelude::{HS256Key, MACLike};
        HS256Key::from_bytes(&[7; 32])
            .with_key_id("secret")
            .authenticate(claims(host.now_ms.get()))
            .unwrap()
    };
    let mut config = remote_config(json!({}));
    config["jwt"]["algorithms"] = json!(["ES256", "HS256"]);
    let (host, mut plugin) = configured(&config, ROOT);
    answer(
        &host,
        &mut plugin,
        1,
        "200",
        Some(json!({ "keys": [jwk("h1"), { "kty": "oct", "kid": "secret", "k": b64(&[7; 32]) }] })),
    );
    let (_, next) = send(&host, &plugin, 2, &forged);
    assert_eq!(next, Next::Stop);
    assert_eq!(statuses(&host), vec![(2, 401)]);
}

#[test]
fn a_withdrawn_key_stops_its_cached_tokens_at_the_next_refetch() {
    let config = remote_config(json!({ "jwks_uri": {
        "url": "https://idp.example/keys", "cluster": "idp", "refresh_interval_s": 60 } }));
    let (host, mut plugin) = configured(&config, ROOT);
    answer(&host, &mut plugin, 1, "200", Some(jwks(&["h1", "h2"])));
    let cached = token("h2", host.now_ms.get());
    let (_, next) = send(&host, &plugin, 2, &cached);
    assert_eq!(next, Next::Continue);
    // h2 was compromised: the provider withdraws it.
    later(&host, 60_000);
    plugin.tick(&host);
    answer(&host, &mut plugin, 2, "200", Some(jwks(&["h1"])));
    let (_, next) = send(&host, &plugin, 3, &cached);
    assert_eq!(next, Next::Stop);
    assert_eq!(statuses(&host), vec![(3, 401)], "long before its exp");
    let (_, next) = send(&host, &plugin, 4, &token("h1", host.now_ms.get()));
    assert_eq!(next, Next::Continue);
}

#[test]
fn waiting_for_keys_is_capped_per_worker() {
    let (host, mut plugin) = configured(&remote_config(json!({})), ROOT);
    answer(&host, &mut plugin, 1, "200", Some(jwks(&["h1"])));
    later(&host, 301_000);
    let rotated = token("h2", host.now_ms.get());
    let mut held = Vec::new();
    let cap = u32::try_from(tollgate_core::MAX_KEY_WAITERS).unwrap();
    for id in 2..2 + cap {
        let (filter, next) = send(&host, &plugin, id, &rotated);
        assert_eq!(next, Next::Stop, "request {id} waits");
        held.push(filter);
    }
    assert!(host.replies.borrow().is_empty());
    // One over the cap gets at once the 401 its token gets without the wait, counted.
    let (_over, next) = send(&host, &plugin, 2 + cap, &rotated);
    assert_eq!(next, Next::Stop);
    assert_eq!(statuses(&host), vec![(2 + cap, 401)]);
    assert_eq!(
        host.metric(&request_counter("op", "-", "invalid_credential")),
        Some(1)
    );
}
