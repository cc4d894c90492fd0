use crate::cors::CorsHeaders;
use crate::metrics::{configured_series, request_counter, PREFLIGHT};
use crate::pipeline::{decide, RequestEnv};
use crate::plan::Plan;
use crate::rewrite::HeaderEdit;
use crate::subscription::KeyHash;
use crate::testing::{FixedClock, MemoryStore};
use crate::verdict::{Decision, Verdict};
use crate::TokenCache;
use serde_json::{json, Value};

const KEY: &str = "key-of-invoice-flow";
const PORTAL: &str = "https://make.powerautomate.com";
const OTHER_APP: &str = "https://apps.contoso.example";

/// `/validate` (POST, keyed), `/items` (GET, keyed, its own section), `/open` (any method,
/// no auth, CORS off), under a top-level section for the portal.
fn config(top_level: Value) -> Value {
    json!({
        "products": { "p": {} },
        "consumers": [{ "id": "invoice-flow", "product": "p",
                        "keys": [KeyHash::of(KEY.as_bytes()).to_config_string()] }],
        "operations": [
            { "name": "validate", "methods": ["POST"], "path": "/validate" },
            { "name": "items", "methods": ["GET"], "path": "/items",
              "cors": { "allowed_origins": [OTHER_APP], "terminate_unmatched": false } },
            { "name": "open", "path": "/open", "auth": "none", "cors": null }
        ],
        "cors": top_level
    })
}

fn portal_section() -> Value {
    json!({ "allowed_origins": [PORTAL],
            "allowed_headers": ["content-type", "ocp-apim-subscription-key"],
            "expose_headers": ["x-ratelimit-remaining"] })
}

fn plan_of(config: &Value) -> Plan {
    Plan::from_json(config.to_string().as_bytes()).unwrap()
}

fn request(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    let mut headers = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"api.contoso.com".to_vec()),
    ];
    headers.extend(
        extra
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
    );
    headers
}

fn preflight(path: &str, origin: &str, method: &str) -> Vec<(String, Vec<u8>)> {
    request(
        "OPTIONS",
        path,
        &[
            ("origin", origin),
            ("access-control-request-method", method),
            (
                "access-control-request-headers",
                "content-type,ocp-apim-subscription-key",
            ),
        ],
    )
}

fn decision(plan: &Plan, headers: &[(String, Vec<u8>)]) -> Decision {
    let mut tokens = TokenCache::new(16, [7; 16]);
    let counters = MemoryStore::default();
    decide(
        plan,
        headers,
        &mut RequestEnv::new(&FixedClock(1_800_000_000_000), &mut tokens, &counters),
    )
}

/// The preflight reply's headers, or `None` when the request went on through the pipeline.
fn preflight_reply(decision: &Decision) -> Option<Vec<(String, String)>> {
    match &decision.verdict {
        Verdict::Preflight(reply) => Some(
            reply
                .headers()
                .into_iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        ),
        _ => None,
    }
}

fn status(decision: &Decision) -> u32 {
    match &decision.verdict {
        Verdict::Deny(denial) => denial.status,
        Verdict::Forward(_) | Verdict::PassThrough(_) | Verdict::Preflight(_) => 200,
        Verdict::AskGlobal(_) => 0,
    }
}

fn allow_origin(cors: &CorsHeaders) -> Option<String> {
    cors.reply_headers()
        .find(|(name, _)| *name == "access-control-allow-origin")
        .map(|(_, value)| value.to_string())
}

#[test]
fn a_preflight_is_answered_before_credentials_for_the_requested_methods_operation() {
    let plan = plan_of(&config(portal_section()));
    let answered = decision(&plan, &preflight("/validate", PORTAL, "POST"));
    let headers = preflight_reply(&answered).expect("answered by tollgate");
    assert!(headers.contains(&("access-control-allow-origin".into(), PORTAL.into())));
    assert!(headers.contains(&("vary".into(), "Origin".into())));
    assert_eq!(answered.trace.operation, Some(0), "counted under validate");
    assert_eq!(answered.trace.consumer, None);
    assert!(
        answered.cors.is_empty(),
        "the reply carries its own headers"
    );
}

#[test]
fn a_preflight_that_does_not_match_gets_an_empty_200() {
    let plan = plan_of(&config(portal_section()));
    // Another origin; a method no operation at the path takes; a header not allowed.
    for (headers, operation) in [
        (
            preflight("/validate", "https://evil.example", "POST"),
            Some(0),
        ),
        (preflight("/validate", PORTAL, "DELETE"), None),
        (preflight("/nowhere", PORTAL, "GET"), None),
        (
            request(
                "OPTIONS",
                "/validate",
                &[
                    ("origin", PORTAL),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "x-debug"),
                ],
            ),
            Some(0),
        ),
    ] {
        let answered = decision(&plan, &headers);
        assert_eq!(preflight_reply(&answered), Some(Vec::new()), "{headers:?}");
        assert_eq!(answered.trace.operation, operation);
    }
}

#[test]
fn terminate_unmatched_false_sends_the_preflight_through_the_pipeline() {
    let plan = plan_of(&config(portal_section()));
    // `items` keeps its unmatched preflights: the portal is not its origin, and OPTIONS
    // itself matches no operation.
    let went_on = decision(&plan, &preflight("/items", PORTAL, "GET"));
    assert_eq!(status(&went_on), 404);
    assert_eq!(went_on.trace.operation, None);
    // At the top level, for a keyed operation of any method: 401, with the CORS headers since
    // the origin is allowed (PUT, the method asked about, is not).
    let mut section = portal_section();
    section["terminate_unmatched"] = json!(false);
    let mut with_options = config(section);
    with_options["operations"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "any_method", "path": "/validate/any" }));
    let plan = plan_of(&with_options);
    let went_on = decision(&plan, &preflight("/validate/any", PORTAL, "PUT"));
    assert_eq!(status(&went_on), 401);
    assert_eq!(went_on.trace.operation, Some(3));
    assert_eq!(allow_origin(&went_on.cors).as_deref(), Some(PORTAL));
}

#[test]
fn an_operation_with_cors_null_answers_no_preflight_but_follows_the_top_levels_termination() {
    let plan = plan_of(&config(portal_section()));
    let answered = decision(&plan, &preflight("/open", PORTAL, "GET"));
    assert_eq!(preflight_reply(&answered), Some(Vec::new()));
    assert_eq!(answered.trace.operation, Some(2));

    let mut section = portal_section();
    section["terminate_unmatched"] = json!(false);
    let plan = plan_of(&config(section));
    let went_on = decision(&plan, &preflight("/open", PORTAL, "GET"));
    assert!(
        matches!(went_on.verdict, Verdict::Forward(_)),
        "an open operation"
    );
    assert!(went_on.cors.is_empty(), "no section applies to it");
}

#[test]
fn an_operations_own_section_replaces_the_top_level() {
    let plan = plan_of(&config(portal_section()));
    let own = decision(&plan, &preflight_items(OTHER_APP));
    let headers = preflight_reply(&own).expect("answered");
    assert!(headers.contains(&("access-control-allow-origin".into(), OTHER_APP.into())));
    assert!(
        !headers
            .iter()
            .any(|(name, _)| name == "access-control-allow-headers"),
        "none configured on items"
    );
    let actual = decision(&plan, &request("GET", "/items", &[("origin", PORTAL)]));
    assert_eq!(
        allow_origin(&actual.cors),
        None,
        "the top level's origin is not items'"
    );
    let actual = decision(&plan, &request("GET", "/items", &[("origin", OTHER_APP)]));
    assert_eq!(allow_origin(&actual.cors).as_deref(), Some(OTHER_APP));
}

fn preflight_items(origin: &str) -> Vec<(String, Vec<u8>)> {
    request(
        "OPTIONS",
        "/items",
        &[("origin", origin), ("access-control-request-method", "GET")],
    )
}

#[test]
fn without_any_section_a_preflight_is_an_ordinary_request() {
    let mut plain = config(Value::Null);
    for operation in plain["operations"].as_array_mut().unwrap() {
        operation.as_object_mut().unwrap().remove("cors");
    }
    let plan = plan_of(&plain);
    let went_on = decision(&plan, &preflight("/validate", PORTAL, "POST"));
    assert_eq!(status(&went_on), 404);
    assert!(went_on.cors.is_empty());
    let series = configured_series(&plan);
    assert!(!series
        .iter()
        .any(|s| s.name.ends_with(".outcome=preflight")));
}

#[test]
fn a_cross_origin_denial_carries_the_cors_headers_of_its_operation() {
    let plan = plan_of(&config(portal_section()));
    let missing_key = decision(&plan, &request("POST", "/validate", &[("origin", PORTAL)]));
    assert_eq!(status(&missing_key), 401);
    assert_eq!(
        missing_key.cors.reply_headers().collect::<Vec<_>>(),
        vec![
            ("access-control-allow-origin", PORTAL),
            ("access-control-expose-headers", "x-ratelimit-remaining"),
            ("vary", "Origin"),
        ]
    );
    let other = decision(
        &plan,
        &request("POST", "/validate", &[("origin", "https://evil.example")]),
    );
    assert_eq!(status(&other), 401);
    assert_eq!(allow_origin(&other.cors), None);
    // No operation: the top level's section.
    let unmatched = decision(&plan, &request("GET", "/nowhere", &[("origin", PORTAL)]));
    assert_eq!(status(&unmatched), 404);
    assert_eq!(allow_origin(&unmatched.cors).as_deref(), Some(PORTAL));
}

#[test]
fn an_admitted_cross_origin_request_gets_them_on_its_response() {
    let plan = plan_of(&config(portal_section()));
    let admitted = decision(
        &plan,
        &request(
            "POST",
            "/validate",
            &[("origin", PORTAL), ("ocp-apim-subscription-key", KEY)],
        ),
    );
    assert!(matches!(admitted.verdict, Verdict::Forward(_)));
    assert_eq!(
        admitted.cors.response_edits(),
        &[
            HeaderEdit::Set("access-control-allow-origin".into(), PORTAL.into()),
            HeaderEdit::Remove("access-control-allow-credentials".into()),
            HeaderEdit::Set(
                "access-control-expose-headers".into(),
                "x-ratelimit-remaining".into()
            ),
            HeaderEdit::Append("vary".into(), "Origin".into()),
        ]
    );
}

#[test]
fn a_request_passed_through_unmatched_is_left_to_the_backend() {
    let mut pass = config(portal_section());
    pass["unmatched"] = json!("pass");
    let plan = plan_of(&pass);
    let passed = decision(&plan, &request("GET", "/elsewhere", &[("origin", PORTAL)]));
    assert!(matches!(passed.verdict, Verdict::PassThrough(_)));
    assert!(passed.cors.is_empty());
}

#[test]
fn preflight_series_exist_wherever_preflights_are_answered() {
    let plan = plan_of(&config(portal_section()));
    let names: Vec<String> = configured_series(&plan)
        .into_iter()
        .map(|s| s.name)
        .collect();
    for operation in ["-", "validate", "items", "open"] {
        assert!(
            names.contains(&request_counter(operation, "-", PREFLIGHT)),
            "{operation}"
        );
    }
    // Only operations carry sections: no top level, no series for unmatched preflights, nor
    // for operations without one.
    let mut no_top = config(Value::Null);
    no_top.as_object_mut().unwrap().remove("cors");
    let plan = plan_of(&no_top);
    let names: Vec<String> = configured_series(&plan)
        .into_iter()
        .map(|s| s.name)
        .collect();
    for (operation, present) in [
        ("-", false),
        ("validate", false),
        ("items", true),
        ("open", false),
    ] {
        assert_eq!(
            names.contains(&request_counter(operation, "-", PREFLIGHT)),
            present,
            "{operation}"
        );
    }
    let unanswered = decision(&plan, &preflight("/validate", PORTAL, "POST"));
    assert_eq!(
        status(&unanswered),
        404,
        "no section: not a preflight tollgate answers"
    );
}
