use super::*;
use crate::deny::Outcome;
use crate::jwt::token_cache::TokenCache;
use crate::subscription::KeyHash;
use crate::testing::{FixedClock, MemoryStore};
use serde_json::json;

fn hash(key: &str) -> String {
    KeyHash::of(key.as_bytes()).to_config_string()
}

fn plan(unmatched: &str) -> Plan {
    let config = json!({
        "products": { "starter": {}, "unlimited": {} },
        "consumers": [
            { "id": "invoice-flow", "product": "starter", "keys": [hash("primary"), hash("secondary")] },
            { "id": "contoso-portal", "product": "unlimited", "keys": [hash("portal")] }
        ],
        "operations": [
            { "name": "validate", "methods": ["POST"], "path": "/validate",
              "rewrite": "/api/v1/validate",
              "request_headers": { "set": { "x-consumer-id": "{consumer}", "x-product": "{product}" },
                                   "remove": ["x-debug"] },
              "response_headers": { "set": { "x-served-for": "{consumer}" }, "remove": ["server"] } },
            { "name": "admin", "path_prefix": "/admin", "products": ["unlimited"], "rewrite": "/internal" },
            { "name": "health", "path": "/healthz", "auth": "none",
              "request_headers": { "set": { "x-consumer-id": "{consumer}" } } }
        ],
        "unmatched": unmatched
    });
    Plan::from_json(config.to_string().as_bytes()).unwrap()
}

fn request(method: &str, path: &str, extra: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    let mut headers = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"api.contoso.com".to_vec()),
    ];
    headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_vec())));
    headers
}

const NOW: u64 = 1_800_000_000;

fn run(plan: &Plan, headers: &Headers) -> Verdict {
    let mut tokens = TokenCache::new(16, [7; 16]);
    let counters = MemoryStore::default();
    decide(
        plan,
        headers,
        &mut RequestEnv::new(&FixedClock(NOW * 1000), &mut tokens, &counters),
    )
    .verdict
}

/// The whole decision, for what it reports besides the verdict.
fn decision(plan: &Plan, headers: &Headers) -> Decision {
    let mut tokens = TokenCache::new(16, [7; 16]);
    let counters = MemoryStore::default();
    decide(
        plan,
        headers,
        &mut RequestEnv::new(&FixedClock(NOW * 1000), &mut tokens, &counters),
    )
}

#[test]
fn the_trace_says_how_far_a_request_got() {
    let p = plan("reject");
    let admitted = decision(
        &p,
        &request(
            "POST",
            "/validate",
            &[("ocp-apim-subscription-key", b"portal")],
        ),
    );
    assert_eq!(
        admitted.trace,
        Trace {
            operation: Some(0),
            consumer: Some("contoso-portal".into()),
            configured_consumer: Some(1),
            dynamic_consumer: false,
        }
    );
    assert!(!admitted.unknown_kid);
    // Denied at authorization: the consumer is known all the same.
    let forbidden = decision(
        &p,
        &request(
            "GET",
            "/admin/x",
            &[("ocp-apim-subscription-key", b"primary")],
        ),
    );
    assert!(matches!(forbidden.verdict, Verdict::Deny(_)));
    assert_eq!(forbidden.trace.operation, Some(1));
    assert_eq!(forbidden.trace.configured_consumer, Some(0));
    // Denied at authentication: an operation, no consumer.
    let missing = decision(&p, &request("POST", "/validate", &[]));
    assert_eq!(
        missing.trace,
        Trace {
            operation: Some(0),
            ..Trace::default()
        }
    );
    // No operation at all.
    assert_eq!(
        decision(&p, &request("GET", "/nowhere", &[])).trace,
        Trace::default()
    );
}

#[test]
fn head_is_held_to_the_get_operation() {
    let config = json!({
        "products": { "p": {} },
        "consumers": [{ "id": "c", "product": "p", "keys": [hash("k")] }],
        "operations": [{ "name": "data", "methods": ["GET"], "path": "/data" }],
        "unmatched": "pass"
    });
    let plan = Plan::from_json(config.to_string().as_bytes()).unwrap();
    assert_eq!(
        denied(run(&plan, &request("HEAD", "/data", &[]))).status,
        401
    );
    let with_key = request("HEAD", "/data", &[("ocp-apim-subscription-key", b"k")]);
    assert!(matches!(run(&plan, &with_key), Verdict::Forward(_)));
}

fn denied(verdict: Verdict) -> Denial {
    match verdict {
        Verdict::Deny(denial) => denial,
        other => panic!("expected a denial, got {other:?}"),
    }
}

/// A forward with the consumer by name, so it outlives the plan it came from.
#[derive(Debug)]
struct Forwarded {
    operation: OperationId,
    consumer: Option<String>,
    request_edits: Vec<HeaderEdit>,
    path: Option<String>,
    response_edits: Vec<HeaderEdit>,
}

fn forwarded(verdict: Verdict) -> Forwarded {
    match verdict {
        Verdict::Forward(f) => Forwarded {
            operation: f.operation,
            consumer: f.consumer,
            request_edits: f.request_edits,
            path: f.path,
            response_edits: f.response_edits,
        },
        other => panic!("expected a forward, got {other:?}"),
    }
}

const KEY: &str = "ocp-apim-subscription-key";

#[test]
fn missing_key_is_401_with_apim_challenge() {
    let d = denied(run(&plan("reject"), &request("POST", "/validate", &[])));
    assert_eq!(d.status, 401);
    assert_eq!(d.outcome, Outcome::MissingCredential);
    assert!(d
        .message
        .starts_with("Access denied due to missing subscription key."));
    assert_eq!(
        d.headers,
        vec![(
            "www-authenticate",
            r#"AzureApiManagementKey realm="api.contoso.com",name="Ocp-Apim-Subscription-Key",type="header""#
                .to_string()
        )]
    );
}

#[test]
fn unknown_key_is_401_invalid() {
    let d = denied(run(
        &plan("reject"),
        &request("POST", "/validate", &[(KEY, b"nope")]),
    ));
    assert_eq!(d.status, 401);
    assert_eq!(d.outcome, Outcome::InvalidCredential);
    assert!(d.headers.is_empty());
    assert!(!d.body().contains("nope"));
}

#[test]
fn conflicting_keys_are_invalid() {
    let d = denied(run(
        &plan("reject"),
        &request("POST", "/validate", &[(KEY, b"primary"), (KEY, b"portal")]),
    ));
    assert_eq!(d.outcome, Outcome::InvalidCredential);
}

#[test]
fn both_keys_of_a_consumer_work() {
    for key in ["primary", "secondary"] {
        let f = forwarded(run(
            &plan("reject"),
            &request("POST", "/validate", &[(KEY, key.as_bytes())]),
        ));
        assert_eq!(f.consumer.as_deref(), Some("invoice-flow"));
        assert_eq!(f.operation, 0);
    }
}

#[test]
fn admitted_request_gets_identity_stripped_key_and_rewrite() {
    let f = forwarded(run(
        &plan("reject"),
        &request(
            "POST",
            "/validate?a=1",
            &[(KEY, b"primary"), ("x-debug", b"1")],
        ),
    ));
    assert_eq!(
        f.request_edits,
        vec![
            HeaderEdit::Remove(KEY.into()),
            HeaderEdit::Remove("x-debug".into()),
            HeaderEdit::Set("x-consumer-id".into(), "invoice-flow".into()),
            HeaderEdit::Set("x-product".into(), "starter".into()),
        ]
    );
    assert_eq!(f.path.as_deref(), Some("/api/v1/validate?a=1"));
    assert_eq!(
        f.response_edits,
        vec![
            HeaderEdit::Remove("server".into()),
            HeaderEdit::Set("x-served-for".into(), "invoice-flow".into()),
        ]
    );
}

#[test]
fn key_in_query_is_used_and_stripped() {
    let f = forwarded(run(
        &plan("reject"),
        &request("POST", "/validate?x=1&subscription-key=secondary&y=2", &[]),
    ));
    assert_eq!(f.consumer.as_deref(), Some("invoice-flow"));
    assert_eq!(f.path.as_deref(), Some("/api/v1/validate?x=1&y=2"));
}

#[test]
fn header_beats_query_and_both_are_stripped() {
    let f = forwarded(run(
        &plan("reject"),
        &request(
            "POST",
            "/validate?subscription-key=nope",
            &[(KEY, b"portal")],
        ),
    ));
    assert_eq!(f.consumer.as_deref(), Some("contoso-portal"));
    assert_eq!(f.path.as_deref(), Some("/api/v1/validate"));
    assert_eq!(
        f.request_edits.first(),
        Some(&HeaderEdit::Remove(KEY.into()))
    );
}

#[test]
fn product_not_allowed_is_403() {
    let d = denied(run(
        &plan("reject"),
        &request("GET", "/admin/users", &[(KEY, b"primary")]),
    ));
    assert_eq!(d.status, 403);
    assert_eq!(d.outcome, Outcome::Forbidden);
    assert_eq!(
        d.message,
        "Product 'starter' is not allowed on operation 'admin'. Access denied."
    );
    let f = forwarded(run(
        &plan("reject"),
        &request("GET", "/admin/users?x", &[(KEY, b"portal")]),
    ));
    assert_eq!(f.path.as_deref(), Some("/internal/users?x"));
}

#[test]
fn identity_headers_are_removed_on_operations_that_set_none_and_on_pass_through() {
    // "admin" sets no header, yet "validate" sets x-consumer-id and x-product from identity:
    // a backend may read them on any route, so the client's copies never pass.
    let spoofed: &[(&str, &[u8])] = &[
        (KEY, b"portal"),
        ("x-consumer-id", b"contoso-portal"),
        ("x-product", b"unlimited"),
        ("x-other", b"kept"),
    ];
    let f = forwarded(run(&plan("reject"), &request("GET", "/admin/x", spoofed)));
    assert_eq!(
        f.request_edits,
        vec![
            HeaderEdit::Remove(KEY.into()),
            HeaderEdit::Remove("x-consumer-id".into()),
            HeaderEdit::Remove("x-product".into()),
        ]
    );
    assert_eq!(
        run(&plan("pass"), &request("GET", "/nowhere", &spoofed[1..])),
        Verdict::PassThrough(vec![
            HeaderEdit::Remove("x-consumer-id".into()),
            HeaderEdit::Remove("x-product".into()),
        ])
    );
    // Claim headers and appended identity are tollgate's too.
    let config = json!({
        "products": { "p": {} },
        "consumers": [{ "id": "c", "product": "p", "keys": [hash("k")] }],
        "jwt": crate::testing::tokens::jwt_section(),
        "operations": [
            { "name": "open", "path": "/open", "auth": "none" },
            { "name": "key", "path": "/key",
              "request_headers": { "append": { "x-via": "gw/{product}" },
                                   "set": { "x-static": "fixed" } } }
        ],
        "unmatched": "pass"
    });
    let jwt_plan = Plan::from_json(config.to_string().as_bytes()).unwrap();
    assert_eq!(jwt_plan.identity_headers, ["x-user-oid", "x-via"]);
    let f = forwarded(run(
        &jwt_plan,
        &request("GET", "/open", &[("x-via", b"evil"), ("x-static", b"kept")]),
    ));
    assert_eq!(f.request_edits, vec![HeaderEdit::Remove("x-via".into())]);
    let f = forwarded(run(
        &jwt_plan,
        &request("GET", "/key", &[(KEY, b"k"), ("x-via", b"evil")]),
    ));
    assert_eq!(
        f.request_edits,
        vec![
            HeaderEdit::Remove(KEY.into()),
            HeaderEdit::Remove("x-via".into()),
            HeaderEdit::Set("x-static".into(), "fixed".into()),
            HeaderEdit::Append("x-via".into(), "gw/p".into()),
        ]
    );
}

#[test]
fn auth_none_needs_no_key_and_removes_spoofable_identity() {
    let f = forwarded(run(
        &plan("reject"),
        &request("GET", "/healthz", &[("x-consumer-id", b"admin")]),
    ));
    assert_eq!(f.consumer, None);
    // No key header came, so there is nothing to strip; the spoofed identity goes.
    assert_eq!(
        f.request_edits,
        vec![HeaderEdit::Remove("x-consumer-id".into())]
    );
    assert_eq!(f.path, None);
}

#[test]
fn unmatched_reject_is_404_and_pass_forwards_untouched() {
    let d = denied(run(&plan("reject"), &request("GET", "/nowhere", &[])));
    assert_eq!(d.status, 404);
    assert_eq!(d.outcome, Outcome::NoOperation);
    // The method is part of the match: GET /validate is no operation.
    let d = denied(run(
        &plan("reject"),
        &request("GET", "/validate", &[(KEY, b"primary")]),
    ));
    assert_eq!(d.status, 404);
    assert_eq!(
        run(
            &plan("pass"),
            &request("GET", "/nowhere?subscription-key=x", &[])
        ),
        Verdict::PassThrough(vec![])
    );
}

#[test]
fn unmatched_pass_never_forwards_a_path_the_backend_would_read_as_another() {
    // An encoded slash or a dot segment fits no template parameter; passed on untouched, the
    // backend would decode it into a route an operation guards.
    for path in ["/validate%2Fx", "/v/%2e%2e/validate", "/a%5Cb", "/x/./y"] {
        let d = denied(run(&plan("pass"), &request("GET", path, &[])));
        assert_eq!((d.status, d.outcome), (404, Outcome::NoOperation), "{path}");
    }
    assert_eq!(
        run(&plan("pass"), &request("GET", "/nowhere/a%20b", &[])),
        Verdict::PassThrough(vec![])
    );
}

#[test]
fn malformed_requests_get_4xx() {
    let p = plan("reject");
    let huge = vec![b'k'; 16 * 1024];
    for extra in [
        vec![(KEY, b"".as_slice())],
        vec![(KEY, huge.as_slice())],
        vec![(KEY, b"\xff\xfe\x00key".as_slice())],
        vec![(KEY, "ключ".as_bytes())],
    ] {
        let d = denied(run(&p, &request("POST", "/validate", &extra)));
        assert!(d.status == 401, "{extra:?}: {}", d.status);
    }
    let no_path = vec![(":method".to_string(), b"GET".to_vec())];
    assert_eq!(denied(run(&p, &no_path)).status, 400);
    let bad_path = vec![
        (":method".to_string(), b"GET".to_vec()),
        (":path".to_string(), b"/\xff".to_vec()),
    ];
    assert_eq!(denied(run(&p, &bad_path)).status, 400);
}

mod jwt {
    use super::*;
    use crate::jwt::verify::VerifiedToken;
    use crate::testing::tokens::{claims, jwt_section, keys, rs256};
    use jwt_simple::prelude::RSAKeyPairLike;
    use jwt_simple::prelude::UnixTimeStamp;
    use std::rc::Rc;

    fn jwt_plan(edit: impl FnOnce(&mut serde_json::Value)) -> Plan {
        let mut config = json!({
            "products": { "starter": {}, "partner": {} },
            "consumers": [
                { "id": "invoice-flow", "product": "starter", "keys": [hash("primary")] },
                { "id": "contoso-portal", "product": "partner", "jwt_client_ids": ["client-1"] }
            ],
            "jwt": jwt_section(),
            "operations": [
                { "name": "jwt-op", "path": "/jwt", "auth": "jwt",
                  "request_headers": { "set": { "x-consumer-id": "{consumer}", "x-user": "{claim:oid}" } } },
                { "name": "either-op", "path": "/either", "auth": "either" },
                { "name": "both-op", "path": "/both", "auth": "both" },
                { "name": "key-op", "path": "/key" }
            ]
        });
        edit(&mut config);
        Plan::from_json(config.to_string().as_bytes()).unwrap()
    }

    fn bearer(token: &str) -> Vec<u8> {
        format!("Bearer {token}").into_bytes()
    }

    #[test]
    fn a_valid_token_names_its_consumer_and_fills_claim_headers() {
        let plan = jwt_plan(|_| {});
        let auth = bearer(&rs256(claims()));
        let f = forwarded(run(
            &plan,
            &request("GET", "/jwt", &[("authorization", &auth)]),
        ));
        assert_eq!(f.consumer.as_deref(), Some("contoso-portal"));
        assert!(f
            .request_edits
            .contains(&HeaderEdit::Set("x-user-oid".into(), "user-7".into())));
        assert!(f
            .request_edits
            .contains(&HeaderEdit::Set("x-user".into(), "user-7".into())));
        assert!(f.request_edits.contains(&HeaderEdit::Set(
            "x-consumer-id".into(),
            "contoso-portal".into()
        )));
        assert!(!f
            .request_edits
            .contains(&HeaderEdit::Remove("authorization".into())));
    }

    #[test]
    fn missing_and_invalid_tokens_are_401() {
        let plan = jwt_plan(|_| {});
        let d = denied(run(&plan, &request("GET", "/jwt", &[])));
        assert_eq!((d.status, d.message.as_str()), (401, "JWT not present."));
        let d = denied(run(
            &plan,
            &request("GET", "/jwt", &[("authorization", b"Bearer a.b")]),
        ));
        assert_eq!(
            d.message,
            "JWT validation failed: token is malformed. Access denied."
        );
        assert_eq!(d.outcome, Outcome::InvalidCredential);
    }

    #[test]
    fn unknown_client_is_403_unless_default_product() {
        let plan = jwt_plan(|_| {});
        let mut stranger = claims();
        stranger.custom["azp"] = json!("client-9");
        let auth = bearer(&rs256(stranger.clone()));
        let d = denied(run(
            &plan,
            &request("GET", "/jwt", &[("authorization", &auth)]),
        ));
        assert_eq!(d.status, 403);
        assert_eq!(
            d.message,
            "The token's 'azp' claim names no registered consumer. Access denied."
        );

        let plan = jwt_plan(|c| c["jwt"]["default_product"] = json!("starter"));
        let f = forwarded(run(
            &plan,
            &request("GET", "/jwt", &[("authorization", &auth)]),
        ));
        assert_eq!(f.consumer.as_deref(), Some("jwt:client-9"));
    }

    #[test]
    fn required_claims_are_403() {
        let plan = jwt_plan(|_| {});
        let mut reader = claims();
        reader.custom["roles"] = json!(["Invoices.Read"]);
        let auth = bearer(&rs256(reader));
        let d = denied(run(
            &plan,
            &request("GET", "/jwt", &[("authorization", &auth)]),
        ));
        assert_eq!(d.status, 403);
        assert_eq!(d.outcome, Outcome::Forbidden);
        assert!(d.message.starts_with("Required claim 'roles'"));
    }

    #[test]
    fn either_takes_a_key_or_a_token() {
        let plan = jwt_plan(|_| {});
        let f = forwarded(run(&plan, &request("GET", "/either", &[(KEY, b"primary")])));
        assert_eq!(f.consumer.as_deref(), Some("invoice-flow"));
        let auth = bearer(&rs256(claims()));
        let f = forwarded(run(
            &plan,
            &request("GET", "/either", &[("authorization", &auth)]),
        ));
        assert_eq!(f.consumer.as_deref(), Some("contoso-portal"));
        let d = denied(run(&plan, &request("GET", "/either", &[])));
        assert_eq!(d.status, 401);
        assert_eq!(d.headers.len(), 2, "both challenges");
        let d = denied(run(
            &plan,
            &request(
                "GET",
                "/either",
                &[(KEY, b"wrong"), ("authorization", &auth)],
            ),
        ));
        assert_eq!(
            d.outcome,
            Outcome::InvalidCredential,
            "a wrong key is not rescued by a token"
        );
    }

    #[test]
    fn an_unverified_token_beside_a_key_never_reaches_the_upstream() {
        let plan = jwt_plan(|_| {});
        // alg: none, unsigned: the key authenticates the request, the token is never checked.
        let unsigned = b"Bearer eyJhbGciOiJub25lIn0.eyJhenAiOiJjbGllbnQtMSJ9.";
        for path in ["/either", "/key"] {
            let f = forwarded(run(
                &plan,
                &request(
                    "GET",
                    path,
                    &[(KEY, b"primary"), ("authorization", unsigned)],
                ),
            ));
            assert!(
                f.request_edits
                    .contains(&HeaderEdit::Remove("authorization".into())),
                "{path}"
            );
        }
        // A verified token is forwarded (forward_token defaults to true).
        let auth = bearer(&rs256(claims()));
        let f = forwarded(run(
            &plan,
            &request("GET", "/jwt", &[("authorization", &auth)]),
        ));
        assert!(!f
            .request_edits
            .contains(&HeaderEdit::Remove("authorization".into())));
    }

    #[test]
    fn both_needs_a_key_and_a_valid_token() {
        let plan = jwt_plan(|_| {});
        let auth = bearer(&rs256(claims()));
        let f = forwarded(run(
            &plan,
            &request(
                "GET",
                "/both",
                &[(KEY, b"primary"), ("authorization", &auth)],
            ),
        ));
        assert_eq!(
            f.consumer.as_deref(),
            Some("invoice-flow"),
            "the key names the consumer"
        );
        let d = denied(run(&plan, &request("GET", "/both", &[(KEY, b"primary")])));
        assert_eq!(d.message, "JWT not present.");
        let d = denied(run(
            &plan,
            &request("GET", "/both", &[("authorization", &auth)]),
        ));
        assert!(d.message.contains("missing subscription key"));
        let mut expired = claims();
        expired.expires_at = Some(UnixTimeStamp::from_secs(NOW - 5));
        let stale = bearer(&rs256(expired));
        let d = denied(run(
            &plan,
            &request(
                "GET",
                "/both",
                &[(KEY, b"primary"), ("authorization", &stale)],
            ),
        ));
        assert_eq!(
            d.message,
            "JWT validation failed: token has expired. Access denied."
        );
    }

    #[test]
    fn claim_headers_are_removed_without_a_token_and_forward_token_false_strips_it() {
        let plan = jwt_plan(|c| c["jwt"]["forward_token"] = json!(false));
        let f = forwarded(run(
            &plan,
            &request(
                "GET",
                "/key",
                &[
                    (KEY, b"primary"),
                    ("x-user-oid", b"spoof"),
                    ("authorization", b"Basic dXNlcjpwdw=="),
                ],
            ),
        ));
        assert!(f
            .request_edits
            .contains(&HeaderEdit::Remove("x-user-oid".into())));
        assert!(f
            .request_edits
            .contains(&HeaderEdit::Remove("authorization".into())));
    }

    #[test]
    fn a_cache_hit_skips_verification_and_an_expired_entry_is_never_served() {
        let plan = jwt_plan(|_| {});
        // Not a validly signed token: only the cache can admit it.
        let token = "not.a.token";
        let mut tokens = TokenCache::new(4, [7; 16]);
        let counters = MemoryStore::default();
        let mut kept = crate::jwt::claims::ClaimMap::new();
        kept.insert("azp".into(), json!("client-1"));
        kept.insert("roles".into(), json!(["Invoices.Validate"]));
        tokens.insert(
            tokens.hash(token),
            Rc::new(VerifiedToken {
                exp: NOW + 10,
                claims: kept,
            }),
            NOW,
        );
        let auth = bearer(token);
        let headers = request("GET", "/jwt", &[("authorization", &auth)]);
        let mut env = RequestEnv::new(&FixedClock((NOW + 9) * 1000), &mut tokens, &counters);
        assert!(matches!(
            decide(&plan, &headers, &mut env).verdict,
            Verdict::Forward(_)
        ));
        let mut env = RequestEnv::new(&FixedClock((NOW + 10) * 1000), &mut tokens, &counters);
        let d = denied(decide(&plan, &headers, &mut env).verdict);
        assert_eq!(
            d.message,
            "JWT validation failed: token is malformed. Access denied."
        );
    }

    #[test]
    fn only_a_missing_signing_key_reports_an_unknown_kid() {
        let plan = jwt_plan(|c| c["jwt"]["default_product"] = json!("starter"));
        let token = rs256(claims());
        let tampered = format!("{}x", &token[..token.len() - 1]);
        let unknown_kid = keys()
            .rs256
            .clone()
            .with_key_id("rotated")
            .sign(claims())
            .unwrap();
        for (token, expected) in [(token, false), (tampered, false), (unknown_kid, true)] {
            let auth = bearer(&token);
            let found = decision(&plan, &request("GET", "/jwt", &[("authorization", &auth)]));
            assert_eq!(found.unknown_kid, expected, "{token}");
        }
    }

    #[test]
    fn a_dynamic_consumer_is_traced_as_such() {
        let plan = jwt_plan(|c| c["jwt"]["default_product"] = json!("starter"));
        let mut other = claims();
        other.custom["azp"] = json!("client-9");
        let auth = bearer(&rs256(other));
        let found = decision(&plan, &request("GET", "/jwt", &[("authorization", &auth)]));
        assert!(matches!(found.verdict, Verdict::Forward(_)));
        assert_eq!(
            found.trace,
            Trace {
                operation: Some(0),
                consumer: Some("jwt:client-9".into()),
                configured_consumer: None,
                dynamic_consumer: true,
            }
        );
    }

    #[test]
    fn a_lasting_failure_is_remembered_a_missing_key_is_not() {
        let plan = jwt_plan(|_| {});
        let token = rs256(claims());
        let tampered = format!("{}x", &token[..token.len() - 1]);
        let unknown_kid = keys()
            .rs256
            .clone()
            .with_key_id("gone")
            .sign(claims())
            .unwrap();
        let mut tokens = TokenCache::new(4, [7; 16]);
        for (bad, remembered) in [(tampered, true), (unknown_kid, false)] {
            let auth = bearer(&bad);
            let headers = request("GET", "/jwt", &[("authorization", &auth)]);
            let counters = MemoryStore::default();
            let mut env = RequestEnv::new(&FixedClock(NOW * 1000), &mut tokens, &counters);
            assert!(matches!(
                decide(&plan, &headers, &mut env).verdict,
                Verdict::Deny(_)
            ));
            let hash = tokens.hash(&bad);
            assert_eq!(tokens.failure(&hash, NOW).is_some(), remembered, "{bad}");
        }
    }

    #[test]
    fn a_verified_token_is_cached() {
        let plan = jwt_plan(|_| {});
        let token = rs256(claims());
        let auth = bearer(&token);
        let headers = request("GET", "/jwt", &[("authorization", &auth)]);
        let mut tokens = TokenCache::new(4, [7; 16]);
        let counters = MemoryStore::default();
        let mut env = RequestEnv::new(&FixedClock(NOW * 1000), &mut tokens, &counters);
        assert!(matches!(
            decide(&plan, &headers, &mut env).verdict,
            Verdict::Forward(_)
        ));
        assert_eq!(tokens.len(), 1);
    }
}

mod limits {
    use super::*;

    fn limited(headers_config: serde_json::Value) -> Plan {
        let mut config = json!({
            "products": {
                "starter": { "rate_limit": { "calls": 2, "renewal_period_s": 10 },
                             "quota": { "calls": 3, "renewal_period_s": 86400 } },
                "free": {}
            },
            "consumers": [
                { "id": "a", "product": "starter", "keys": [hash("ka")] },
                { "id": "b", "product": "starter", "keys": [hash("kb")] },
                { "id": "f", "product": "free", "keys": [hash("kf")] }
            ],
            "operations": [{ "name": "op", "path": "/op" }]
        });
        if !headers_config.is_null() {
            config["rate_limit_headers"] = headers_config;
        }
        Plan::from_json(config.to_string().as_bytes()).unwrap()
    }

    fn call(plan: &Plan, store: &MemoryStore, key: &[u8], now_ms: u64) -> Verdict {
        let mut tokens = TokenCache::new(0, [0; 16]);
        let headers = request("GET", "/op", &[(KEY, key)]);
        decide(
            plan,
            &headers,
            &mut RequestEnv {
                now_ms,
                tokens: &mut tokens,
                counters: store,
                fetched_keys: None,
                known_keys: None,
                body_follows: false,
                source_address: None,
            },
        )
        .verdict
    }

    #[test]
    fn rate_limit_then_quota_per_consumer_with_headers() {
        let plan = limited(serde_json::Value::Null);
        let store = MemoryStore::default();
        let t = NOW * 1000;
        let first = forwarded(call(&plan, &store, b"ka", t));
        assert_eq!(
            first.response_edits,
            vec![
                HeaderEdit::Set("x-ratelimit-limit".into(), "2".into()),
                HeaderEdit::Set("x-ratelimit-remaining".into(), "1".into()),
                HeaderEdit::Set("x-ratelimit-reset".into(), "10".into()),
            ]
        );
        forwarded(call(&plan, &store, b"ka", t + 1_000));
        let d = denied(call(&plan, &store, b"ka", t + 2_000));
        assert_eq!((d.status, d.outcome), (429, Outcome::RateLimited));
        assert_eq!(d.headers, vec![("retry-after", "8".to_string())]);
        // Another consumer of the same product has its own counter.
        forwarded(call(&plan, &store, b"kb", t + 2_000));
        // After the window, the third call of the quota is admitted, the fourth is not.
        forwarded(call(&plan, &store, b"ka", t + 10_000));
        let d = denied(call(&plan, &store, b"ka", t + 10_001));
        assert_eq!((d.status, d.outcome), (403, Outcome::QuotaExceeded));
        assert!(d.message.starts_with("Out of call volume quota."));
        // A product without limits never touches the store.
        let writes = store.writes.get();
        forwarded(call(&plan, &store, b"kf", t));
        assert_eq!(store.writes.get(), writes);
    }

    #[test]
    fn header_names_are_configurable_or_off() {
        let store = MemoryStore::default();
        let plan = limited(json!({ "limit": "RateLimit-Limit", "reset": "RateLimit-Reset" }));
        let f = forwarded(call(&plan, &store, b"ka", NOW * 1000));
        let names: Vec<&str> = f
            .response_edits
            .iter()
            .map(|e| match e {
                HeaderEdit::Set(n, _) => n.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(
            names,
            vec![
                "ratelimit-limit",
                "x-ratelimit-remaining",
                "ratelimit-reset"
            ]
        );
        let plan = limited(json!("none"));
        let f = forwarded(call(&plan, &store, b"kb", NOW * 1000));
        assert!(f.response_edits.is_empty());
    }
}

#[test]
fn known_keys_hold_valid_keys_only_and_decide_as_the_plan_does() {
    let p = plan("reject");
    let counters = MemoryStore::default();
    let mut tokens = TokenCache::new(16, [7; 16]);
    let mut known = KnownKeys::new([9; 16]);
    let keys: [&[u8]; 6] = [
        b"primary",
        b"portal",
        b"primary",
        b"nope",
        b"secondary",
        b"portal",
    ];
    for key in keys {
        let headers = request("POST", "/validate", &[("ocp-apim-subscription-key", key)]);
        let mut env = RequestEnv::new(&FixedClock(NOW * 1000), &mut tokens, &counters);
        env.known_keys = Some(&mut known);
        let cached = decide(&p, &headers, &mut env);
        assert_eq!(cached, decision(&p, &headers), "key {key:?}");
    }
    // Two keys of invoice-flow and one of the portal; never the unknown one.
    assert_eq!(known.consumers.len(), 3);
    assert!(!known.consumers.contains_key(&known.hash(b"nope")));
    // Another secret, another hash: no one can aim a key at a cached entry.
    assert_ne!(
        known.hash(b"primary"),
        KnownKeys::new([8; 16]).hash(b"primary")
    );
}
