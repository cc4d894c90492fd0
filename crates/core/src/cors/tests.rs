use super::*;
use crate::plan::Plan;
use serde_json::{json, Value};

fn policy(section: Value) -> CorsPolicy {
    let config: CorsConfig = serde_json::from_value(section).unwrap();
    CorsPolicy::compile("cors", config).unwrap()
}

/// The refusal of a configuration whose top-level `cors` is `section`, as `path: message`.
fn refusal(section: Value) -> String {
    let config = json!({ "operations": [{ "name": "op", "path": "/", "auth": "none" }],
                         "cors": section });
    Plan::from_json(config.to_string().as_bytes())
        .unwrap_err()
        .to_string()
}

fn headers(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect()
}

// --- load refusals ---------------------------------------------------------------------------

#[test]
fn every_refusal_names_its_path() {
    let origin = |o: &str| json!({ "allowed_origins": [o] });
    let cases = [
        (
            json!({ "allowed_origins": ["*"], "allow_credentials": true }),
            "cors.allowed_origins[0]: '*' cannot go with allow_credentials true",
        ),
        (
            json!({ "allowed_origins": ["https://a.example", "*"] }),
            "cors.allowed_origins[1]: '*' stands for everything",
        ),
        (
            json!({ "allowed_origins": [] }),
            "cors.allowed_origins: must not be empty",
        ),
        (
            json!({ "allowed_origins": ["https://a.example", "HTTPS://A.example:443"] }),
            "cors.allowed_origins[1]: the same as entry [0]",
        ),
        (
            json!({ "allowed_origins": ["https://*.a.example", "https://*.A.example"] }),
            "cors.allowed_origins[1]: the same as entry [0]",
        ),
        (
            origin("https://a.example/"),
            "cors.allowed_origins[0]: an origin ends after host and port",
        ),
        (
            origin("https://a.*.example"),
            "cors.allowed_origins[0]: a wildcard may only be the whole first label",
        ),
        (
            origin("https://*."),
            "cors.allowed_origins[0]: a wildcard needs a domain name",
        ),
        (
            origin("null"),
            "cors.allowed_origins[0]: 'null' can never be allowed",
        ),
        (
            json!({ "allowed_origins": ["*"], "allowed_methods": [] }),
            "cors.allowed_methods: must not be empty",
        ),
        (
            json!({ "allowed_origins": ["*"], "allowed_methods": ["GET", "get"] }),
            "cors.allowed_methods[1]: the same as entry [0]",
        ),
        (
            json!({ "allowed_origins": ["*"], "allowed_methods": ["GET", "PO ST"] }),
            "cors.allowed_methods[1]: \"PO ST\" is not an HTTP method",
        ),
        (
            json!({ "allowed_origins": ["*"], "allowed_methods": ["*", "GET"] }),
            "cors.allowed_methods[0]: '*' stands for everything",
        ),
        (
            json!({ "allowed_origins": ["*"], "allowed_headers": ["content type"] }),
            "cors.allowed_headers[0]: \"content type\" is not a header name",
        ),
        (
            json!({ "allowed_origins": ["*"],
                    "allowed_headers": ["Content-Type", "content-type"] }),
            "cors.allowed_headers[1]: the same as entry [0]",
        ),
        (
            json!({ "allowed_origins": ["*"], "allowed_headers": ["x-a", "*"] }),
            "cors.allowed_headers[1]: '*' stands for everything",
        ),
        (
            json!({ "allowed_origins": ["*"], "expose_headers": [] }),
            "cors.expose_headers: must not be empty",
        ),
        (
            json!({ "allowed_origins": ["*"], "expose_headers": ["x:y"] }),
            "cors.expose_headers[0]: \"x:y\" is not a header name",
        ),
        (
            json!({ "allowed_origins": ["https://a.example"], "allow_credentials": true,
                    "expose_headers": ["*"] }),
            "cors.expose_headers: '*' cannot go with allow_credentials true",
        ),
        (
            json!({ "allowed_origins": ["*"], "max_age_s": 86401 }),
            "cors.max_age_s: must be at most 86400 seconds",
        ),
    ];
    for (section, expected) in cases {
        let text = refusal(section.clone());
        assert!(text.starts_with(expected), "{section}\n  got: {text}");
    }
}

#[test]
fn the_section_has_a_fixed_shape() {
    for (section, path) in [
        (json!({}), "cors"),
        (
            json!({ "allowed_origins": "https://a.example" }),
            "cors.allowed_origins",
        ),
        (
            json!({ "allowed_origins": ["*"], "max_age": 5 }),
            "cors.max_age",
        ),
        (
            json!({ "allowed_origins": ["*"], "max_age_s": 1.5 }),
            "cors.max_age_s",
        ),
        (
            json!({ "allowed_origins": ["*"], "allow_credentials": "yes" }),
            "cors.allow_credentials",
        ),
    ] {
        let text = refusal(section.clone());
        assert!(
            text.starts_with(&format!("{path}: ")),
            "{section}\n  got: {text}"
        );
    }
}

#[test]
fn an_operation_section_is_refused_at_its_own_path() {
    let config = json!({
        "cors": { "allowed_origins": ["https://a.example"] },
        "operations": [
            { "name": "one", "path": "/1", "auth": "none" },
            { "name": "two", "path": "/2", "auth": "none",
              "cors": { "allowed_origins": ["https://b.example/"] } }
        ]
    });
    let err = Plan::from_json(config.to_string().as_bytes()).unwrap_err();
    assert_eq!(err.path(), "operations[1].cors.allowed_origins[0]");
}

#[test]
fn sections_inherit_switch_off_and_replace() {
    let top: CorsConfig =
        serde_json::from_value(json!({ "allowed_origins": ["https://a.example"] })).unwrap();
    let own: CorsConfig =
        serde_json::from_value(json!({ "allowed_origins": ["https://b.example"] })).unwrap();
    let (top_level, operations) = compile_sections(
        Some(top),
        vec![Override::Inherit, Override::Off, Override::Set(own)],
    )
    .unwrap();
    let top_level = top_level.unwrap();
    let [inherited, off, replaced] = operations.as_slice() else {
        panic!("three operations")
    };
    assert!(Arc::ptr_eq(inherited.as_ref().unwrap(), &top_level));
    assert!(off.is_none());
    let replaced = replaced.as_ref().unwrap();
    assert!(replaced.origins.allows("https://b.example"));
    assert!(
        !replaced.origins.allows("https://a.example"),
        "replaced whole"
    );
    // Without a top-level section, an operation without its own has none.
    let (top_level, operations) = compile_sections(None, vec![Override::Inherit]).unwrap();
    assert!(top_level.is_none());
    assert_eq!(operations, vec![None]);
}

#[test]
fn defaults() {
    let p = policy(json!({ "allowed_origins": ["https://a.example"] }));
    assert_eq!(p.methods, Listed::Only(vec!["GET".into(), "POST".into()]));
    assert_eq!(p.headers, Listed::Only(Vec::new()));
    assert_eq!(p.allow_headers, None);
    assert_eq!(p.expose_headers, None);
    assert!(!p.allow_credentials);
    assert_eq!(p.max_age_s, None);
    assert!(p.terminate_unmatched);
}

// --- preflights ------------------------------------------------------------------------------

fn preflight_headers(
    origin: &str,
    method: &str,
    requested: Option<&str>,
) -> Vec<(String, Vec<u8>)> {
    let mut list = vec![
        ("origin", origin),
        ("access-control-request-method", method),
    ];
    if let Some(requested) = requested {
        list.push(("access-control-request-headers", requested));
    }
    headers(&list)
}

fn answer(p: &CorsPolicy, list: &[(String, Vec<u8>)]) -> Option<Vec<(String, String)>> {
    let preflight = Preflight::read("OPTIONS", list).unwrap();
    p.answer_preflight(&preflight).map(|reply| {
        reply
            .headers()
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    })
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn full_policy() -> CorsPolicy {
    policy(json!({
        "allowed_origins": ["https://make.powerautomate.com", "https://*.powerapps.com"],
        "allowed_methods": ["GET", "post"],
        "allowed_headers": ["Content-Type", "Ocp-Apim-Subscription-Key"],
        "expose_headers": ["x-ratelimit-remaining", "x-request-id"],
        "allow_credentials": true,
        "max_age_s": 600
    }))
}

#[test]
fn a_matching_preflight_gets_every_configured_header() {
    let p = full_policy();
    let got = answer(
        &p,
        &preflight_headers(
            "https://x.powerapps.com",
            "POST",
            Some("content-type, Ocp-Apim-Subscription-Key"),
        ),
    );
    assert_eq!(
        got,
        Some(pairs(&[
            ("access-control-allow-origin", "https://x.powerapps.com"),
            ("access-control-allow-methods", "GET, POST"),
            (
                "access-control-allow-headers",
                "content-type, ocp-apim-subscription-key"
            ),
            ("access-control-max-age", "600"),
            ("access-control-allow-credentials", "true"),
            ("vary", "Origin"),
        ]))
    );
}

#[test]
fn a_minimal_preflight_answer_leaves_out_what_is_not_configured() {
    let p = policy(json!({ "allowed_origins": ["https://a.example"] }));
    assert_eq!(
        answer(&p, &preflight_headers("https://a.example", "GET", None)),
        Some(pairs(&[
            ("access-control-allow-origin", "https://a.example"),
            ("access-control-allow-methods", "GET, POST"),
            ("vary", "Origin"),
        ]))
    );
    // No header is allowed beyond the safelisted ones, which browsers never ask about.
    assert_eq!(
        answer(
            &p,
            &preflight_headers("https://a.example", "GET", Some("x-custom"))
        ),
        None
    );
}

#[test]
fn a_preflight_must_match_origin_method_and_every_header() {
    let p = full_policy();
    let allowed_origin = "https://make.powerautomate.com";
    assert!(answer(&p, &preflight_headers(allowed_origin, "GET", None)).is_some());
    assert!(
        answer(&p, &preflight_headers(allowed_origin, "HEAD", None)).is_some(),
        "GET allows HEAD"
    );
    for (origin, method, requested) in [
        ("https://evil.example", "GET", None),
        ("null", "GET", None),
        (allowed_origin, "DELETE", None),
        (allowed_origin, "get", None),
        (allowed_origin, "GET", Some("content-type, x-debug")),
        (allowed_origin, "GET", Some("content type")),
        (allowed_origin, "GET", Some("*")),
    ] {
        assert_eq!(
            answer(&p, &preflight_headers(origin, method, requested)),
            None,
            "{origin} {method} {requested:?}"
        );
    }
}

#[test]
fn requested_headers_are_a_case_insensitive_comma_list_in_any_number_of_values() {
    let p = full_policy();
    let mut list = preflight_headers(
        "https://make.powerautomate.com",
        "POST",
        Some(" CONTENT-TYPE ,,\tcontent-type"),
    );
    list.push((
        "access-control-request-headers".into(),
        b"Ocp-Apim-Subscription-Key".to_vec(),
    ));
    assert!(answer(&p, &list).is_some());
    list.push(("access-control-request-headers".into(), b"x-other".to_vec()));
    assert_eq!(answer(&p, &list), None, "a later value is read too");
    assert_eq!(
        requested_header_names(&[b"A, b", b"", b" c "]),
        Some(vec!["a".to_string(), "b".to_string(), "c".to_string()])
    );
    assert_eq!(requested_header_names(&[b"a, \xff"]), None);
}

#[test]
fn wildcard_methods_and_headers_echo_what_was_asked() {
    let p = policy(json!({ "allowed_origins": ["*"], "allowed_methods": ["*"],
                          "allowed_headers": ["*"] }));
    assert_eq!(
        answer(
            &p,
            &preflight_headers("https://any.example", "PATCH", Some("X-One, authorization"))
        ),
        Some(pairs(&[
            ("access-control-allow-origin", "https://any.example"),
            ("access-control-allow-methods", "PATCH"),
            ("access-control-allow-headers", "x-one, authorization"),
            ("vary", "Origin"),
        ]))
    );
    assert_eq!(
        answer(&p, &preflight_headers("https://any.example", "GET", None)),
        Some(pairs(&[
            ("access-control-allow-origin", "https://any.example"),
            ("access-control-allow-methods", "GET"),
            ("vary", "Origin"),
        ]))
    );
    assert_eq!(
        answer(&p, &preflight_headers("null", "GET", None)),
        None,
        "null is no origin, even for '*'"
    );
}

#[test]
fn a_preflight_is_an_options_with_origin_and_requested_method() {
    let both = preflight_headers("https://a.example", "GET", None);
    assert!(Preflight::read("OPTIONS", &both).is_some());
    assert!(Preflight::read("GET", &both).is_none());
    assert!(Preflight::read("options", &both).is_none());
    let no_method = headers(&[("origin", "https://a.example")]);
    assert!(Preflight::read("OPTIONS", &no_method).is_none());
    let no_origin = headers(&[("access-control-request-method", "GET")]);
    assert!(Preflight::read("OPTIONS", &no_origin).is_none());
    // Sent twice, a header is a preflight all the same, but one that matches nothing.
    let mut twice = both.clone();
    twice.push(("origin".into(), b"https://a.example".to_vec()));
    let preflight = Preflight::read("OPTIONS", &twice).unwrap();
    assert_eq!(preflight.origin, OriginHeader::Unusable);
    assert_eq!(full_policy().answer_preflight(&preflight), None);
    let mut two_methods = both;
    two_methods.push(("access-control-request-method".into(), b"POST".to_vec()));
    assert_eq!(
        Preflight::read("OPTIONS", &two_methods).unwrap().method,
        None
    );
}

// --- actual requests -------------------------------------------------------------------------

fn edits(p: &CorsPolicy, origin: OriginHeader) -> Vec<HeaderEdit> {
    p.response_headers(origin).response_edits().to_vec()
}

fn set(name: &str, value: &str) -> HeaderEdit {
    HeaderEdit::Set(name.into(), value.into())
}

fn remove(name: &str) -> HeaderEdit {
    HeaderEdit::Remove(name.into())
}

fn vary() -> HeaderEdit {
    HeaderEdit::Append("vary".into(), "Origin".into())
}

#[test]
fn an_allowed_origin_gets_its_origin_expose_headers_and_credentials() {
    let got = edits(
        &full_policy(),
        OriginHeader::Text("https://x.powerapps.com"),
    );
    assert_eq!(
        got,
        vec![
            set("access-control-allow-origin", "https://x.powerapps.com"),
            set("access-control-allow-credentials", "true"),
            set(
                "access-control-expose-headers",
                "x-ratelimit-remaining, x-request-id"
            ),
            vary(),
        ]
    );
    // Without them configured, an upstream's own are removed: the section decides.
    let plain = policy(json!({ "allowed_origins": ["*"] }));
    assert_eq!(
        edits(&plain, OriginHeader::Text("https://any.example")),
        vec![
            set("access-control-allow-origin", "https://any.example"),
            remove("access-control-allow-credentials"),
            remove("access-control-expose-headers"),
            vary(),
        ]
    );
}

#[test]
fn another_origin_gets_no_cors_headers() {
    let p = full_policy();
    for origin in [
        OriginHeader::Text("https://evil.example"),
        OriginHeader::Text("null"),
        OriginHeader::Unusable,
    ] {
        let headers = p.response_headers(origin);
        assert_eq!(
            headers.response_edits(),
            &[
                remove("access-control-allow-origin"),
                remove("access-control-allow-credentials"),
                remove("access-control-expose-headers"),
                vary(),
            ],
            "{origin:?}"
        );
        assert_eq!(
            headers.reply_headers().collect::<Vec<_>>(),
            vec![("vary", "Origin")],
            "a local reply only says it varies"
        );
    }
    assert_eq!(edits(&p, OriginHeader::Absent), vec![vary()]);
}

#[test]
fn a_local_reply_carries_the_sets_and_appends() {
    let headers = full_policy().response_headers(OriginHeader::Text("https://x.powerapps.com"));
    assert_eq!(
        headers.reply_headers().collect::<Vec<_>>(),
        vec![
            ("access-control-allow-origin", "https://x.powerapps.com"),
            ("access-control-allow-credentials", "true"),
            (
                "access-control-expose-headers",
                "x-ratelimit-remaining, x-request-id"
            ),
            ("vary", "Origin"),
        ]
    );
    assert!(CorsHeaders::default().is_empty());
    assert!(!headers.is_empty());
}

#[test]
fn wildcard_exposure_without_credentials() {
    let p = policy(json!({ "allowed_origins": ["*"], "expose_headers": ["*"] }));
    assert!(edits(&p, OriginHeader::Text("https://a.example"))
        .contains(&set("access-control-expose-headers", "*")));
}
