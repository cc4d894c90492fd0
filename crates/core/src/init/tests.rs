#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use serde_json::json;

fn key() -> KeyHash {
    KeyHash::of(b"the-first-consumer-key")
}

/// The shape FastAPI writes: default operationIds, a root_path in servers[0].
fn fastapi() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "/svc"}],
        "paths": {
            "/api/v1/invoices/{invoice_id}": {
                "get": {"operationId": "get_invoice_api_v1_invoices__invoice_id__get"},
                "delete": {"operationId": "delete_invoice_api_v1_invoices__invoice_id__delete"}
            },
            "/api/v1/invoices": {
                "get": {"operationId": "list_invoices_api_v1_invoices_get"},
                "post": {"operationId": "createInvoice"}
            },
            "/healthz": {"get": {"operationId": "healthz_healthz_get"}},
            "/items/{id}.json": {"get": {"operationId": "item_json_items__id__json_get"}},
            "/both": {
                "get": {"operationId": "both_both_get"},
                "post": {"operationId": "both_both_post"},
                "head": {"operationId": "both_both_head"}
            }
        }
    })
}

fn init(options: &InitOptions) -> (Value, Initialized) {
    let made = starting_config(fastapi().to_string().as_bytes(), &key(), options).unwrap();
    (serde_json::from_str(&made.config).unwrap(), made)
}

fn prefixed() -> InitOptions {
    InitOptions {
        backend_prefix: "/svc/api/v1".into(),
        ..InitOptions::default()
    }
}

#[test]
fn one_template_operation_per_fastapi_operation() {
    let (config, made) = init(&prefixed());
    let operations: Vec<(String, String, String, Option<String>)> = config["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            (
                op["name"].as_str().unwrap().to_string(),
                op["methods"][0].as_str().unwrap().to_string(),
                op["path_template"].as_str().unwrap().to_string(),
                op["rewrite"].as_str().map(String::from),
            )
        })
        .collect();
    let row = |name: &str, method: &str, public: &str, backend: &str| {
        (
            name.to_string(),
            method.to_string(),
            public.to_string(),
            Some(backend.to_string()),
        )
    };
    assert_eq!(
        operations,
        vec![
            row("list_invoices", "GET", "/invoices", "/svc/api/v1/invoices"),
            row(
                "create_invoice",
                "POST",
                "/invoices",
                "/svc/api/v1/invoices"
            ),
            row(
                "get_invoice",
                "GET",
                "/invoices/{invoice_id}",
                "/svc/api/v1/invoices/{invoice_id}"
            ),
            row(
                "delete_invoice",
                "DELETE",
                "/invoices/{invoice_id}",
                "/svc/api/v1/invoices/{invoice_id}"
            ),
            row("both", "HEAD", "/svc/both", "/svc/both"),
            row("both_get", "GET", "/svc/both", "/svc/both"),
            row("both_post", "POST", "/svc/both", "/svc/both"),
            row("healthz", "GET", "/svc/healthz", "/svc/healthz"),
        ]
        .into_iter()
        // Paths outside the backend prefix keep their path: no rewrite.
        .map(|(n, m, p, r)| {
            let r = r.filter(|r| *r != p);
            (n, m, p, r)
        })
        .collect::<Vec<_>>()
    );
    assert_eq!(made.operations, 8);
    assert_eq!(made.skipped.len(), 1);
    assert!(
        made.skipped[0].starts_with("GET /svc/items/{id}.json: "),
        "{:?}",
        made.skipped
    );
}

#[test]
fn the_rest_of_the_starting_configuration() {
    let (config, _) = init(&InitOptions::default());
    assert_eq!(config["unmatched"], "reject");
    assert_eq!(
        config["consumers"],
        json!([{"id": "first-consumer", "product": "default",
                "keys": [key().to_config_string()]}])
    );
    assert_eq!(
        config["products"],
        json!({"default": {"rate_limit": {"calls": 60, "renewal_period_s": 60}}})
    );
    assert!(config.get("jwt").is_none());
    assert!(config["operations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|op| op["auth"] == "subscription_key"));
    // Without a backend prefix every path is public as FastAPI serves it.
    assert_eq!(
        config["operations"][0]["path_template"],
        "/svc/api/v1/invoices"
    );
    assert!(config["operations"][0].get("rewrite").is_none());
}

#[test]
fn a_public_prefix_moves_the_backend_prefix() {
    let (config, _) = init(&InitOptions {
        backend_prefix: "/svc/api/v1/".into(),
        public_prefix: "/billing/".into(),
        auth: InitAuth::Either,
    });
    assert_eq!(
        config["operations"][2]["path_template"],
        "/billing/invoices/{invoice_id}"
    );
    assert_eq!(
        config["operations"][7]["path_template"],
        "/billing/svc/healthz"
    );
    assert_eq!(config["operations"][0]["auth"], "either");
    assert_eq!(config["jwt"]["default_product"], "default");
    // Loads as it is (placeholders included), so `tollgate check` passes.
    Plan::from_json(config.to_string().as_bytes()).unwrap();
}

#[test]
fn names_are_snake_case_and_unique() {
    assert_eq!(snake_case("createInvoice"), "create_invoice");
    assert_eq!(snake_case("Get Invoice"), "get_invoice");
    assert_eq!(snake_case("HTTPStatus2x"), "httpstatus2x");
    assert_eq!(snake_case("__a--b__"), "a_b");
    assert_eq!(snake_case("ünïcode"), "n_code");
    assert_eq!(snake_case(&"x".repeat(300)).len(), 100);
    let id = |id: &str| json!({"operationId": id});
    assert_eq!(
        function_name(&id("read_a__id__get"), "/a/{id}", "get"),
        "read"
    );
    assert_eq!(function_name(&id("custom"), "/a/{id}", "get"), "custom");
    // One function for GET and POST: FastAPI gives both the same id, with either suffix.
    for listed in ["search_a_post", "search_a_get"] {
        assert_eq!(function_name(&id(listed), "/a", "get"), "search");
        assert_eq!(function_name(&id(listed), "/a", "post"), "search");
    }
    assert_eq!(function_name(&json!({}), "/a/{id}", "get"), "get_a_id");
    assert_eq!(function_name(&id("___"), "/a", "post"), "post_a");
    let mut taken = BTreeSet::new();
    assert_eq!(unique_name(&mut taken, "f", "get"), "f");
    assert_eq!(unique_name(&mut taken, "f", "get"), "f_get");
    assert_eq!(unique_name(&mut taken, "f", "get"), "f_get_2");
}

#[test]
fn public_paths() {
    let with = |backend: &str, public: &str| InitOptions {
        backend_prefix: backend.into(),
        public_prefix: public.into(),
        auth: InitAuth::SubscriptionKey,
    };
    let public = |path: &str, options: &InitOptions| public_path(path, "", options);
    assert_eq!(public("/api/v1", &with("/api/v1", "/")), ("/".into(), true));
    assert_eq!(
        public("/api/v1/x", &with("/api/v1", "/")),
        ("/x".into(), true)
    );
    assert_eq!(
        public("/api/v10/x", &with("/api/v1", "/")),
        ("/api/v10/x".into(), false)
    );
    assert_eq!(
        public("/api/v1/x", &with("/api/v1", "/p")),
        ("/p/x".into(), true)
    );
    assert_eq!(
        public("/api/v1", &with("/api/v1", "/p/")),
        ("/p".into(), true)
    );
    assert_eq!(public("/x", &with("", "/")), ("/x".into(), false));
    assert_eq!(public("/", &with("", "/")), ("/".into(), false));
    // The prefix may leave out FastAPI's root_path (servers[0].url).
    assert_eq!(
        public_path("/svc/api/v1/x", "/svc", &with("/api/v1", "/")),
        ("/x".into(), true)
    );
    assert_eq!(
        public_path("/svc/api/v1/x", "/svc", &with("/svc/api/v1", "/")),
        ("/x".into(), true)
    );
}

#[test]
fn a_prefix_that_matches_nothing_is_said() {
    let made = starting_config(
        fastapi().to_string().as_bytes(),
        &key(),
        &InitOptions {
            backend_prefix: "/v2".into(),
            ..InitOptions::default()
        },
    )
    .unwrap();
    assert_eq!(made.warnings.len(), 1);
    assert!(made.warnings[0].starts_with("--backend-prefix /v2 matches no path"));
    // Given without the root path, it still moves the paths under it.
    let made = starting_config(
        fastapi().to_string().as_bytes(),
        &key(),
        &InitOptions {
            backend_prefix: "/api/v1".into(),
            ..InitOptions::default()
        },
    )
    .unwrap();
    assert!(made.warnings.is_empty());
    assert!(made
        .config
        .contains("\"path_template\": \"/invoices/{invoice_id}\""));
}

#[test]
fn operations_no_request_could_reach_are_left_out_and_named() {
    // "/api/v1/health" and "/health" both become "/health"; "/a/{x}" and "/a/{y}" are one
    // shape: FastAPI could not tell them apart either.
    let doc = json!({"openapi": "3.0.3", "paths": {
        "/a/{x}": {"get": {"operationId": "one"}},
        "/a/{y}": {"get": {"operationId": "two"}},
        "/api/v1/health": {"get": {"operationId": "health_api_v1_health_get"}},
        "/health": {"get": {"operationId": "health_health_get"}}
    }});
    let made = starting_config(
        doc.to_string().as_bytes(),
        &key(),
        &InitOptions {
            backend_prefix: "/api/v1".into(),
            ..InitOptions::default()
        },
    )
    .unwrap();
    assert_eq!(made.operations, 2);
    assert_eq!(
        made.skipped,
        [
            "GET /a/{y}: public path /a/{y} is another operation's already",
            "GET /health: public path /health is another operation's already"
        ]
    );
}

#[test]
fn refusals() {
    let doc = fastapi().to_string();
    let refused = |doc: &str, options: &InitOptions| {
        starting_config(doc.as_bytes(), &key(), options)
            .unwrap_err()
            .to_string()
    };
    assert!(refused(
        &doc,
        &InitOptions {
            public_prefix: "x".into(),
            ..prefixed()
        }
    )
    .starts_with("--public-prefix x: "));
    assert!(refused(
        &doc,
        &InitOptions {
            backend_prefix: "api".into(),
            ..prefixed()
        }
    )
    .starts_with("--backend-prefix api: "));
    assert!(refused(r#"{"swagger": "2.0"}"#, &prefixed()).contains("not an OpenAPI 3.x"));
    assert!(refused(r#"{"openapi": "3.0.3", "paths": {}}"#, &prefixed()).contains("no operation"));
}
