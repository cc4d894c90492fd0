use super::*;
use crate::deny::Outcome;
use crate::subscription::KeyHash;
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

fn denied(verdict: Verdict) -> Denial {
    match verdict {
        Verdict::Deny(denial) => denial,
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn forwarded(verdict: Verdict) -> Forward {
    match verdict {
        Verdict::Forward(forward) => forward,
        other => panic!("expected a forward, got {other:?}"),
    }
}

const KEY: &str = "ocp-apim-subscription-key";

#[test]
fn missing_key_is_401_with_apim_challenge() {
    let d = denied(decide(&plan("reject"), &request("POST", "/validate", &[])));
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
    let d = denied(decide(
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
    let d = denied(decide(
        &plan("reject"),
        &request("POST", "/validate", &[(KEY, b"primary"), (KEY, b"portal")]),
    ));
    assert_eq!(d.outcome, Outcome::InvalidCredential);
}

#[test]
fn both_keys_of_a_consumer_work() {
    for key in ["primary", "secondary"] {
        let f = forwarded(decide(
            &plan("reject"),
            &request("POST", "/validate", &[(KEY, key.as_bytes())]),
        ));
        assert_eq!(f.consumer, Some(0));
        assert_eq!(f.operation, 0);
    }
}

#[test]
fn admitted_request_gets_identity_stripped_key_and_rewrite() {
    let f = forwarded(decide(
        &plan("reject"),
        &request("POST", "/validate?a=1", &[(KEY, b"primary")]),
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
    let f = forwarded(decide(
        &plan("reject"),
        &request("POST", "/validate?x=1&subscription-key=secondary&y=2", &[]),
    ));
    assert_eq!(f.consumer, Some(0));
    assert_eq!(f.path.as_deref(), Some("/api/v1/validate?x=1&y=2"));
}

#[test]
fn header_beats_query_and_both_are_stripped() {
    let f = forwarded(decide(
        &plan("reject"),
        &request(
            "POST",
            "/validate?subscription-key=nope",
            &[(KEY, b"portal")],
        ),
    ));
    assert_eq!(f.consumer, Some(1));
    assert_eq!(f.path.as_deref(), Some("/api/v1/validate"));
    assert_eq!(
        f.request_edits.first(),
        Some(&HeaderEdit::Remove(KEY.into()))
    );
}

#[test]
fn product_not_allowed_is_403() {
    let d = denied(decide(
        &plan("reject"),
        &request("GET", "/admin/users", &[(KEY, b"primary")]),
    ));
    assert_eq!(d.status, 403);
    assert_eq!(d.outcome, Outcome::Forbidden);
    assert_eq!(
        d.message,
        "Product 'starter' is not allowed on operation 'admin'. Access denied."
    );
    let f = forwarded(decide(
        &plan("reject"),
        &request("GET", "/admin/users?x", &[(KEY, b"portal")]),
    ));
    assert_eq!(f.path.as_deref(), Some("/internal/users?x"));
}

#[test]
fn auth_none_needs_no_key_and_removes_spoofable_identity() {
    let f = forwarded(decide(
        &plan("reject"),
        &request("GET", "/healthz", &[("x-consumer-id", b"admin")]),
    ));
    assert_eq!(f.consumer, None);
    assert_eq!(
        f.request_edits,
        vec![
            HeaderEdit::Remove(KEY.into()),
            HeaderEdit::Remove("x-consumer-id".into())
        ]
    );
    assert_eq!(f.path, None);
}

#[test]
fn unmatched_reject_is_404_and_pass_forwards_untouched() {
    let d = denied(decide(&plan("reject"), &request("GET", "/nowhere", &[])));
    assert_eq!(d.status, 404);
    assert_eq!(d.outcome, Outcome::NoOperation);
    // The method is part of the match: GET /validate is no operation.
    let d = denied(decide(
        &plan("reject"),
        &request("GET", "/validate", &[(KEY, b"primary")]),
    ));
    assert_eq!(d.status, 404);
    assert_eq!(
        decide(
            &plan("pass"),
            &request("GET", "/nowhere?subscription-key=x", &[])
        ),
        Verdict::PassThrough
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
        let d = denied(decide(&p, &request("POST", "/validate", &extra)));
        assert!(d.status == 401, "{extra:?}: {}", d.status);
    }
    let no_path = vec![(":method".to_string(), b"GET".to_vec())];
    assert_eq!(denied(decide(&p, &no_path)).status, 400);
    let bad_path = vec![
        (":method".to_string(), b"GET".to_vec()),
        (":path".to_string(), b"/\xff".to_vec()),
    ];
    assert_eq!(denied(decide(&p, &bad_path)).status, 400);
}
