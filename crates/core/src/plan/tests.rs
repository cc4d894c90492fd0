use super::*;
use crate::route_table::Matched;
use crate::subscription::KeyHash;
use serde_json::{json, Value};

fn hash(key: &str) -> String {
    KeyHash::of(key.as_bytes()).to_config_string()
}

/// A valid configuration exercising every section; tests break one thing at a time.
fn valid() -> Value {
    json!({
        "subscription_key": { "header": "Ocp-Apim-Subscription-Key", "query": "subscription-key" },
        "products": {
            "starter": { "rate_limit": { "calls": 5, "renewal_period_s": 60 },
                         "quota": { "calls": 1000, "renewal_period_s": 86400 } },
            "unlimited": {}
        },
        "consumers": [
            { "id": "invoice-flow", "product": "starter", "keys": [hash("p"), hash("s")] },
            { "id": "contoso-portal", "product": "unlimited", "keys": [hash("c")],
              "jwt_client_ids": ["app-1"] }
        ],
        "operations": [
            { "name": "validate", "methods": ["POST"], "path": "/validate",
              "auth": "subscription_key", "products": ["starter", "unlimited"],
              "rewrite": "/api/v1/validate",
              "request_headers": { "set": { "x-consumer-id": "{consumer}" }, "remove": ["x-debug"] },
              "response_headers": { "remove": ["server"] } },
            { "name": "open", "path_prefix": "/public", "auth": "none" }
        ],
        "unmatched": "reject"
    })
}

fn compile(config: &Value) -> Result<Plan, ConfigError> {
    Plan::from_json(config.to_string().as_bytes())
}

/// Applies `edit` to a valid configuration and returns the refusal as "path: message".
fn refusal(edit: impl FnOnce(&mut Value)) -> String {
    let mut config = valid();
    edit(&mut config);
    match compile(&config) {
        Ok(_) => panic!("configuration was accepted: {config}"),
        Err(err) => err.to_string(),
    }
}

fn assert_refused(edit: impl FnOnce(&mut Value), path: &str, words: &str) {
    let message = refusal(edit);
    assert!(
        message.starts_with(&format!("{path}: ")),
        "expected path {path}, got: {message}"
    );
    assert!(message.contains(words), "expected {words:?} in: {message}");
}

#[test]
fn the_full_example_compiles() {
    let plan = compile(&valid()).unwrap();
    assert_eq!(plan.key_header, "ocp-apim-subscription-key");
    assert_eq!(plan.key_header_display, "Ocp-Apim-Subscription-Key");
    assert_eq!(plan.key_query, "subscription-key");
    assert_eq!(plan.products.len(), 2);
    assert_eq!(plan.consumers.len(), 2);
    assert_eq!(plan.operations.len(), 2);
    assert_eq!(plan.keys.consumer_for(b"p"), Some(0));
    assert_eq!(plan.keys.consumer_for(b"s"), Some(0));
    assert_eq!(plan.keys.consumer_for(b"c"), Some(1));
    let starter = &plan.products[plan.consumers[0].product];
    assert_eq!(starter.name, "starter");
    assert_eq!(
        starter.limits.rate,
        Some(Limit {
            calls: 5,
            renewal_period_s: 60
        })
    );
    assert_eq!(plan.consumers[1].jwt_client_ids, vec!["app-1".to_string()]);
}

#[test]
fn defaults_apply() {
    let plan = compile(&json!({
        "consumers": [{ "id": "a", "product": "p", "keys": [hash("k")] }],
        "products": { "p": {} },
        "operations": [{ "name": "all", "path_prefix": "/" }]
    }))
    .unwrap();
    assert_eq!(plan.key_header, "ocp-apim-subscription-key");
    assert_eq!(plan.key_query, "subscription-key");
    assert_eq!(plan.unmatched, Unmatched::Reject);
    assert_eq!(plan.operations[0].auth, AuthMode::SubscriptionKey);
    assert!(plan.operations[0].route.methods.contains("DELETE"));
}

#[test]
fn struct_numbers_from_istio_are_accepted() {
    let mut config = valid();
    config["products"]["starter"]["rate_limit"] = json!({ "calls": 5.0, "renewal_period_s": 60.0 });
    let plan = compile(&config).unwrap();
    assert_eq!(
        plan.products[0].limits.rate,
        Some(Limit {
            calls: 5,
            renewal_period_s: 60
        })
    );
}

#[test]
fn not_json_is_refused() {
    let err = Plan::from_json(b"{not json").unwrap_err();
    assert_eq!(err.path(), "configuration");
    let err = Plan::from_json(b"").unwrap_err();
    assert_eq!(err.path(), "configuration");
    let err = Plan::from_json(b"{\"operations\": []} trailing").unwrap_err();
    assert_eq!(err.path(), "configuration");
}

#[test]
fn unknown_keys_are_refused_with_their_path() {
    assert_refused(
        |c| c["rate_limits"] = json!({}),
        "rate_limits",
        "unknown field `rate_limits`",
    );
    assert_refused(
        |c| c["operations"][1]["rewite"] = json!("/x"),
        "operations[1].rewite",
        "unknown field `rewite`",
    );
    assert_refused(
        |c| c["products"]["starter"]["rate_limit"]["burst"] = json!(1),
        "products.starter.rate_limit.burst",
        "unknown field `burst`",
    );
    assert_refused(
        |c| c["consumers"][0]["key"] = json!("x"),
        "consumers[0].key",
        "unknown field `key`",
    );
    assert_refused(
        |c| c["operations"][0]["request_headers"]["add"] = json!({}),
        "operations[0].request_headers.add",
        "unknown field `add`",
    );
}

#[test]
fn wrong_types_are_refused_with_their_path() {
    assert_refused(
        |c| c["operations"] = json!({}),
        "operations",
        "invalid type",
    );
    assert_refused(
        |c| c["operations"][0]["methods"] = json!("POST"),
        "operations[0].methods",
        "invalid type",
    );
    assert_refused(
        |c| c["products"]["starter"]["quota"]["calls"] = json!("many"),
        "products.starter.quota.calls",
        "invalid type",
    );
    assert_refused(
        |c| c["products"]["starter"]["quota"]["calls"] = json!(2.5),
        "products.starter.quota.calls",
        "whole number",
    );
    assert_refused(
        |c| c["products"]["starter"]["quota"]["calls"] = json!(-1),
        "products.starter.quota.calls",
        "whole number",
    );
    assert_refused(
        |c| c["operations"][0]["auth"] = json!("apikey"),
        "operations[0].auth",
        "unknown variant `apikey`",
    );
    assert_refused(
        |c| c["unmatched"] = json!("allow"),
        "unmatched",
        "unknown variant `allow`",
    );
    assert_refused(
        |c| c["consumers"][0]["keys"] = json!([1]),
        "consumers[0].keys[0]",
        "invalid type",
    );
}

#[test]
fn missing_operations_is_refused() {
    assert_refused(
        |c| {
            c.as_object_mut().unwrap().remove("operations");
        },
        "configuration",
        "missing field `operations`",
    );
}

#[test]
fn empty_lists_are_refused() {
    assert_refused(
        |c| c["operations"] = json!([]),
        "operations",
        "must not be empty",
    );
    assert_refused(
        |c| c["consumers"] = json!([]),
        "consumers",
        "must not be empty",
    );
    assert_refused(
        |c| c["products"] = json!({}),
        "products",
        "must not be empty",
    );
    assert_refused(
        |c| c["consumers"][0]["keys"] = json!([]),
        "consumers[0].keys",
        "must not be empty",
    );
    assert_refused(
        |c| c["consumers"][1]["jwt_client_ids"] = json!([]),
        "consumers[1].jwt_client_ids",
        "must not be empty",
    );
    assert_refused(
        |c| c["operations"][0]["methods"] = json!([]),
        "operations[0].methods",
        "must not be empty",
    );
    assert_refused(
        |c| c["operations"][0]["products"] = json!([]),
        "operations[0].products",
        "must not be empty",
    );
    assert_refused(
        |c| c["operations"][0]["request_headers"]["remove"] = json!([]),
        "operations[0].request_headers.remove",
        "must not be empty",
    );
}

#[test]
fn subscription_key_location_is_checked() {
    assert_refused(
        |c| c["subscription_key"]["header"] = json!("Bad Header"),
        "subscription_key.header",
        "not a valid header name",
    );
    assert_refused(
        |c| c["subscription_key"]["header"] = json!(""),
        "subscription_key.header",
        "not a valid header name",
    );
    assert_refused(
        |c| c["subscription_key"]["query"] = json!("a&b"),
        "subscription_key.query",
        "not a usable query parameter name",
    );
}

#[test]
fn limits_must_be_positive() {
    assert_refused(
        |c| c["products"]["starter"]["rate_limit"]["calls"] = json!(0),
        "products.starter.rate_limit.calls",
        "at least 1",
    );
    assert_refused(
        |c| c["products"]["starter"]["quota"]["renewal_period_s"] = json!(0),
        "products.starter.quota.renewal_period_s",
        "at least 1",
    );
}

#[test]
fn consumers_are_checked() {
    assert_refused(
        |c| c["consumers"][0]["product"] = json!("gold"),
        "consumers[0].product",
        "unknown product 'gold' (known: starter, unlimited)",
    );
    assert_refused(
        |c| c["consumers"][1]["id"] = json!("invoice-flow"),
        "consumers[1].id",
        "duplicate consumer id 'invoice-flow'",
    );
    assert_refused(
        |c| c["consumers"][1]["id"] = json!(""),
        "consumers[1].id",
        "must not be empty",
    );
    assert_refused(
        |c| c["consumers"][1]["id"] = json!("has space"),
        "consumers[1].id",
        "printable ASCII",
    );
    assert_refused(
        |c| {
            c["consumers"][1].as_object_mut().unwrap().remove("keys");
            c["consumers"][1]
                .as_object_mut()
                .unwrap()
                .remove("jwt_client_ids");
        },
        "consumers[1]",
        "needs at least one of 'keys' or 'jwt_client_ids'",
    );
    assert_refused(
        |c| c["consumers"][1]["jwt_client_ids"] = json!(["app-1", "app-1"]),
        "consumers[1].jwt_client_ids[1]",
        "duplicate client id 'app-1'",
    );
}

#[test]
fn keys_must_be_hashes_and_unique() {
    assert_refused(
        |c| c["consumers"][0]["keys"][1] = json!("plaintext-key"),
        "consumers[0].keys[1]",
        "must be 'sha256:' followed by 64 lowercase hex digits",
    );
    assert_refused(
        |c| {
            c["consumers"][0]["keys"][1] =
                json!(hash("p").to_uppercase().replace("SHA256", "sha256"))
        },
        "consumers[0].keys[1]",
        "lowercase hex",
    );
    assert_refused(
        |c| c["consumers"][1]["keys"][0] = json!(hash("p")),
        "consumers[1].keys[0]",
        "duplicate key, already held by consumer 'invoice-flow'",
    );
    assert_refused(
        |c| c["consumers"][0]["keys"][1] = json!(hash("p")),
        "consumers[0].keys[1]",
        "duplicate key, already held by consumer 'invoice-flow'",
    );
}

#[test]
fn operations_are_checked() {
    assert_refused(
        |c| c["operations"][1]["name"] = json!("validate"),
        "operations[1].name",
        "duplicate operation name 'validate'",
    );
    assert_refused(
        |c| c["operations"][0]["name"] = json!(""),
        "operations[0].name",
        "must not be empty",
    );
    assert_refused(
        |c| c["operations"][0]["methods"] = json!(["PO ST"]),
        "operations[0].methods[0]",
        "not an HTTP method",
    );
    assert_refused(
        |c| c["operations"][0]["path_prefix"] = json!("/v"),
        "operations[0]",
        "give one of 'path', 'path_prefix' or 'path_template', not several",
    );
    assert_refused(
        |c| {
            c["operations"][1]
                .as_object_mut()
                .unwrap()
                .remove("path_prefix");
        },
        "operations[1]",
        "needs one of 'path', 'path_prefix' or 'path_template'",
    );
    assert_refused(
        |c| c["operations"][0]["path"] = json!("validate"),
        "operations[0].path",
        "must start with '/'",
    );
    assert_refused(
        |c| c["operations"][1]["path_prefix"] = json!("/a?b"),
        "operations[1].path_prefix",
        "must not contain '?'",
    );
    assert_refused(
        |c| c["operations"][0]["rewrite"] = json!("api"),
        "operations[0].rewrite",
        "must start with '/'",
    );
    assert_refused(
        |c| c["operations"][0]["rewrite"] = json!("/a b"),
        "operations[0].rewrite",
        "must not contain spaces",
    );
    assert_refused(
        |c| c["operations"][0]["products"] = json!(["starter", "gold"]),
        "operations[0].products[1]",
        "unknown product 'gold'",
    );
    assert_refused(
        |c| c["operations"][1]["products"] = json!(["starter"]),
        "operations[1].products",
        "auth 'none'",
    );
}

#[test]
fn remote_keys_compile_with_defaults_and_need_no_inline_jwks() {
    let mut config = valid();
    with_jwt(|j| {
        j.as_object_mut().unwrap().remove("jwks");
        j["openid_config"] = json!({
            "url": "https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration",
            "cluster": "entra_id"
        });
    })(&mut config);
    let plan = compile(&config).unwrap();
    let remote = plan.jwt.as_ref().unwrap().remote.as_ref().unwrap();
    assert_eq!(remote.target.authority, "login.microsoftonline.com");
    assert_eq!(remote.cluster, "entra_id");
    assert_eq!(
        (
            remote.refresh_interval_s,
            remote.timeout_ms,
            remote.unknown_kid_refetch_s
        ),
        (3600, 5000, 300)
    );
}

#[test]
fn jwt_modes_need_the_jwt_section() {
    for mode in ["jwt", "either", "both"] {
        assert_refused(
            |c| c["operations"][0]["auth"] = json!(mode),
            "operations[0].auth",
            "needs the 'jwt' section",
        );
    }
}

fn with_jwt(edit: impl FnOnce(&mut Value)) -> impl FnOnce(&mut Value) {
    move |c: &mut Value| {
        c["jwt"] = crate::testing::tokens::jwt_section();
        edit(&mut c["jwt"]);
    }
}

#[test]
fn the_jwt_section_compiles() {
    let mut config = valid();
    with_jwt(|_| {})(&mut config);
    config["operations"][0]["auth"] = json!("both");
    config["operations"][0]["request_headers"]["set"]["x-tenant"] = json!("{claim:tid}");
    let plan = compile(&config).unwrap();
    let jwt = plan.jwt.as_ref().unwrap();
    assert_eq!(jwt.consumer_claim, "azp");
    assert!(jwt.forward_token);
    assert_eq!(jwt.token_cache_size, 1024);
    assert_eq!(jwt.verifier.keys.len(), 6, "the 'use: enc' key is left out");
    assert_eq!(
        jwt.verifier.kept_claims,
        vec!["azp", "oid", "roles", "tid"],
        "consumer claim, required claims, claim headers and template claims"
    );
    assert_eq!(plan.jwt_clients.get("app-1"), Some(&1));
}

#[test]
fn jwt_section_is_checked() {
    assert_refused(
        with_jwt(|j| j["algorithms"] = json!(["RS256", "none"])),
        "jwt.algorithms[1]",
        "'none' is never allowed",
    );
    assert_refused(
        with_jwt(|j| j["algorithms"] = json!(["RS999"])),
        "jwt.algorithms[0]",
        "unknown algorithm 'RS999'",
    );
    assert_refused(
        with_jwt(|j| j["algorithms"] = json!([])),
        "jwt.algorithms",
        "must not be empty",
    );
    assert_refused(
        with_jwt(|j| j["issuers"] = json!([])),
        "jwt.issuers",
        "must not be empty",
    );
    assert_refused(
        with_jwt(|j| j["audiences"] = json!([""])),
        "jwt.audiences[0]",
        "must not be empty",
    );
    assert_refused(
        with_jwt(|j| j["jwks"] = json!({ "keys": [] })),
        "jwt.jwks.keys",
        "at least one signing key",
    );
    assert_refused(
        with_jwt(|j| {
            j.as_object_mut().unwrap().remove("jwks");
        }),
        "jwt",
        "needs signing keys",
    );
    assert_refused(
        with_jwt(|j| j["jwks"]["keys"][0]["n"] = json!("!!!")),
        "jwt.jwks.keys[0]",
        "n: not base64url",
    );
    assert_refused(
        with_jwt(|j| j["jwks"]["keys"][0]["n"] = json!("AQAB")),
        "jwt.jwks.keys[0]",
        "not a usable RSA public key",
    );
    assert_refused(
        with_jwt(|j| {
            j["jwks"]["keys"][0].as_object_mut().unwrap().remove("e");
        }),
        "jwt.jwks.keys[0]",
        "missing 'e'",
    );
    assert_refused(
        with_jwt(|j| j["jwks"]["keys"][0]["kty"] = json!("DSA")),
        "jwt.jwks.keys[0]",
        "kty 'DSA' is not supported",
    );
    assert_refused(
        with_jwt(|j| j["jwks"]["keys"][0]["alg"] = json!("ES256")),
        "jwt.jwks.keys[0]",
        "alg 'ES256' does not fit",
    );
    assert_refused(
        with_jwt(|j| j["jwks"]["keys"][2]["crv"] = json!("P-521")),
        "jwt.jwks.keys[2]",
        "crv",
    );
    assert_refused(
        with_jwt(|j| j["jwks"]["keys"][5]["k"] = json!("c2hvcnQ")),
        "jwt.jwks.keys[5]",
        "at least 32 bytes",
    );
    assert_refused(
        with_jwt(|j| {
            j["algorithms"] = json!(["ES384"]);
            j["jwks"] = json!({ "keys": [j["jwks"]["keys"][0].clone()] });
        }),
        "jwt.jwks",
        "no key fits any of the allowed algorithms",
    );
    assert_refused(
        with_jwt(|j| j["required_claims"] = json!([])),
        "jwt.required_claims",
        "must not be empty",
    );
    assert_refused(
        with_jwt(|j| j["required_claims"] = json!([{ "name": "roles" }])),
        "jwt.required_claims[0]",
        "needs 'any_of' or 'all_of'",
    );
    assert_refused(
        with_jwt(|j| {
            j["required_claims"] = json!([{ "name": "roles", "any_of": ["a"], "all_of": ["b"] }])
        }),
        "jwt.required_claims[0]",
        "not both",
    );
    assert_refused(
        with_jwt(|j| j["required_claims"] = json!([{ "name": "roles", "any_of": [] }])),
        "jwt.required_claims[0].any_of",
        "must not be empty",
    );
    assert_refused(
        with_jwt(|j| j["claims_to_headers"] = json!({ "oid": "bad header" })),
        "jwt.claims_to_headers.oid",
        "not a valid header name",
    );
    assert_refused(
        with_jwt(|j| j["default_product"] = json!("gold")),
        "jwt.default_product",
        "unknown product 'gold'",
    );
    assert_refused(
        with_jwt(|j| j["consumer_claim"] = json!("")),
        "jwt.consumer_claim",
        "must not be empty",
    );
    assert_refused(
        with_jwt(|j| j["clock_skew_s"] = json!(-5)),
        "jwt.clock_skew_s",
        "whole number",
    );
    assert_refused(
        with_jwt(|j| j["issuer"] = json!("x")),
        "jwt.issuer",
        "unknown field `issuer`",
    );
    assert_refused(
        with_jwt(|j| j["openid_config"] = json!({ "url": "ftp://x", "cluster": "c" })),
        "jwt.openid_config.url",
        "https:// or http://",
    );
    assert_refused(
        with_jwt(|j| j["jwks_uri"] = json!({ "url": "https://x/keys", "cluster": "" })),
        "jwt.jwks_uri.cluster",
        "must name an Envoy cluster",
    );
    assert_refused(
        with_jwt(|j| {
            j["jwks_uri"] =
                json!({ "url": "https://x/keys", "cluster": "c", "refresh_interval_s": 0 })
        }),
        "jwt.jwks_uri.refresh_interval_s",
        "at least 1",
    );
    assert_refused(
        with_jwt(|j| j["jwks_uri"] = json!({ "url": "https://x/keys", "cluster": "c", "ttl": 5 })),
        "jwt.jwks_uri.ttl",
        "unknown field",
    );
    assert_refused(
        with_jwt(|j| {
            j["jwks_uri"] = json!({ "url": "https://x/keys", "cluster": "c" });
            j["openid_config"] =
                json!({ "url": "https://x/.well-known/openid-configuration", "cluster": "c" });
        }),
        "jwt",
        "not both",
    );
    assert_refused(
        with_jwt(|j| j["token_cache_size"] = json!(1_000_000)),
        "jwt.token_cache_size",
        "at most",
    );
}

#[test]
fn header_rules_are_checked() {
    assert_refused(
        |c| c["operations"][0]["request_headers"]["set"]["x-id"] = json!("{user}"),
        "operations[0].request_headers.set.x-id",
        "unknown placeholder {user}",
    );
    assert_refused(
        |c| c["operations"][0]["response_headers"]["append"] = json!({ "x-a": "{consumer" }),
        "operations[0].response_headers.append.x-a",
        "unclosed",
    );
    assert_refused(
        |c| c["operations"][0]["request_headers"]["set"]["x-id"] = json!("a\nb"),
        "operations[0].request_headers.set.x-id",
        "control character",
    );
    assert_refused(
        |c| c["operations"][0]["request_headers"]["set"][":path"] = json!("/x"),
        "operations[0].request_headers.set.:path",
        "not a valid header name",
    );
    assert_refused(
        |c| c["operations"][0]["request_headers"]["remove"] = json!(["X-Consumer-Id"]),
        "operations[0].request_headers.remove[0]",
        "already named at operations[0].request_headers.set.x-consumer-id",
    );
}

#[test]
fn header_rules_compile_lower_cased_with_templates() {
    let mut config = valid();
    config["operations"][0]["request_headers"] = json!({
        "set": { "X-Consumer-Id": "{consumer}" },
        "append": { "X-Trace": "tollgate {operation}" },
        "remove": ["X-Debug"]
    });
    let plan = compile(&config).unwrap();
    let rules = &plan.operations[0].request_headers;
    assert_eq!(rules.set[0].0, "x-consumer-id");
    assert_eq!(rules.append[0].0, "x-trace");
    assert_eq!(rules.remove, vec!["x-debug".to_string()]);
    assert_eq!(
        plan.operations[1].request_headers,
        crate::rewrite::HeaderRules::default()
    );
}

#[test]
fn operations_match_in_order() {
    let plan = compile(&valid()).unwrap();
    let found = |method, path| {
        plan.match_operation(method, path)
            .map(|found| (found.operation, found.matched))
    };
    assert_eq!(found("POST", "/validate"), Some((0, Matched::Whole)));
    assert_eq!(found("GET", "/validate"), None);
    assert_eq!(found("GET", "/public/a"), Some((1, Matched::Prefix(7))));
    assert_eq!(found("GET", "/publicity"), None);
}

fn with_operations(operations: Value) -> Value {
    let mut config = valid();
    config["operations"] = operations;
    config
}

#[test]
#[allow(clippy::single_range_in_vec_init)]
fn template_operations_load_and_match() {
    let plan = compile(&with_operations(json!([
        { "name": "get_invoice", "methods": ["GET"], "path_template": "/invoices/{invoice_id}",
          "rewrite": "/api/v1/invoices/{invoice_id}" },
        { "name": "export", "methods": ["GET"], "path_template": "/invoices/export" },
        { "name": "attach", "methods": ["POST"], "path_template": "/invoices/{id}/attachments" }
    ])))
    .unwrap();
    let found = plan.match_operation("GET", "/invoices/INV-1").unwrap();
    assert_eq!(found.operation, 0);
    assert_eq!(found.matched, Matched::Template(vec![10..15]));
    assert_eq!(
        plan.match_operation("GET", "/invoices/export")
            .unwrap()
            .operation,
        1
    );
    assert_eq!(
        plan.match_operation("POST", "/invoices/7/attachments")
            .unwrap()
            .operation,
        2
    );
    assert!(plan.match_operation("POST", "/invoices/INV-1").is_none());
    assert!(plan.match_operation("GET", "/invoices/a/b").is_none());
}

#[test]
fn template_refusals_name_the_path() {
    let template = |text: &'static str| {
        move |c: &mut Value| {
            c["operations"][1] = json!({ "name": "t", "path_template": text });
        }
    };
    assert_refused(
        template("invoices/{id}"),
        "operations[1].path_template",
        "must start with '/'",
    );
    assert_refused(
        template("/a/{id}.json"),
        "operations[1].path_template",
        "a parameter must be a whole segment",
    );
    assert_refused(
        template("/a/{id}/b/{id}"),
        "operations[1].path_template",
        "appears twice",
    );
    assert_refused(
        template("/a//b"),
        "operations[1].path_template",
        "empty segment",
    );
    assert_refused(
        template("/a/../b"),
        "operations[1].path_template",
        "normalisation",
    );
    assert_refused(
        template("/a/{}"),
        "operations[1].path_template",
        "parameter name",
    );
    assert_refused(
        template("/a%2Fb"),
        "operations[1].path_template",
        "without '%'",
    );
    assert_refused(
        |c| c["operations"][1] = json!({ "name": "t", "path": "/x", "path_template": "/x" }),
        "operations[1]",
        "not several",
    );
    assert_refused(
        |c| {
            c["operations"][1] = json!({ "name": "t", "path_template": "/x/{id}",
                                         "rewrite": "/api/{x_id}" })
        },
        "operations[1].rewrite",
        "unknown parameter '{x_id}' (the template has: id)",
    );
    assert_refused(
        |c| {
            c["operations"][1] = json!({ "name": "t", "path_template": "/x/{id}",
                                         "rewrite": "api/{id}" })
        },
        "operations[1].rewrite",
        "must start with '/'",
    );
}

#[test]
fn unreachable_templates_and_shadowed_paths_are_refused() {
    let message = compile(&with_operations(json!([
        { "name": "by_x", "methods": ["GET"], "path_template": "/invoices/{x}" },
        { "name": "by_id", "methods": ["GET"], "path_template": "/invoices/{id}" }
    ])))
    .unwrap_err()
    .to_string();
    assert_eq!(
        message,
        "operations[1].path_template: can never be reached: operations[0] ('by_x', \
         /invoices/{x}) takes every request it matches"
    );
    let message = compile(&with_operations(json!([
        { "name": "any", "path_template": "/invoices/{id}" },
        { "name": "export", "methods": ["GET"], "path": "/invoices/export" }
    ])))
    .unwrap_err()
    .to_string();
    assert!(message.starts_with("operations[1].path: can never be reached: operations[0]"));
    // Other methods, or a literal template, stay reachable.
    compile(&with_operations(json!([
        { "name": "get", "methods": ["GET"], "path_template": "/invoices/{x}" },
        { "name": "delete", "methods": ["DELETE"], "path_template": "/invoices/{id}" },
        { "name": "export", "methods": ["GET"], "path_template": "/invoices/export" }
    ])))
    .unwrap();
}

#[test]
fn path_errors_carry_no_line_and_column() {
    let message = refusal(|c| c["operations"][0]["methods"] = json!("POST"));
    assert!(!message.contains(" at line "), "{message}");
    let syntax = Plan::from_json(b"{\n  \"operations\": [,]\n}").unwrap_err();
    assert!(syntax.message().contains("line 2"), "{syntax}");
}

#[test]
fn rate_limit_headers_default_configurable_or_off() {
    let plan = compile(&valid()).unwrap();
    let names = plan.rate_headers.unwrap();
    assert_eq!(
        (
            names.limit.as_str(),
            names.remaining.as_str(),
            names.reset.as_str()
        ),
        (
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset"
        )
    );
    let mut off = valid();
    off["rate_limit_headers"] = json!("none");
    assert!(compile(&off).unwrap().rate_headers.is_none());
    assert_refused(
        |c| c["rate_limit_headers"] = json!({ "limt": "x" }),
        "rate_limit_headers",
        "unknown field `limt`",
    );
    assert_refused(
        |c| c["rate_limit_headers"] = json!({ "limit": "bad name" }),
        "rate_limit_headers.limit",
        "not a valid header name",
    );
    assert_refused(
        |c| c["rate_limit_headers"] = json!({ "limit": "x-a", "remaining": "X-A" }),
        "rate_limit_headers",
        "must differ",
    );
    assert_refused(
        |c| c["rate_limit_headers"] = json!("off"),
        "rate_limit_headers",
        "must be \"none\" or an object",
    );
    assert_refused(
        with_jwt(|j| j["max_dynamic_consumers"] = json!(0)),
        "jwt.max_dynamic_consumers",
        "between 1 and",
    );
}

#[test]
fn global_limits_are_compiled_apart_from_local_ones() {
    let mut config = valid();
    config["global_limits"] = json!({ "cluster": "tollgate_rls", "failure_mode": "deny" });
    config["products"]["starter"]["quota"]["scope"] = json!("global");
    config["products"]["starter"]["rate_limit"]["scope"] = json!("local");
    let plan = compile(&config).unwrap();
    let starter = &plan.products[plan.consumers[0].product];
    assert_eq!(starter.limits.rate.map(|l| l.calls), Some(5));
    assert_eq!(starter.limits.quota, None);
    assert_eq!(starter.global.quota.map(|l| l.calls), Some(1000));
    assert_eq!(starter.global.rate, None);
    let global = plan.global_limits().unwrap();
    assert_eq!(
        (
            global.cluster.as_str(),
            global.domain.as_str(),
            global.timeout_ms
        ),
        ("tollgate_rls", "tollgate", 50)
    );
    assert_eq!(global.failure_mode, crate::config::FailureMode::Deny);
    // deny: no fallback entries, only the local rate limit's.
    assert_eq!(plan.counter_entries(), vec!["tollgate/c/invoice-flow"]);
    config["global_limits"]["failure_mode"] = json!("local");
    assert_eq!(
        compile(&config).unwrap().counter_entries(),
        vec!["tollgate/c/invoice-flow", "tollgate/g/invoice-flow"]
    );
}

#[test]
fn global_limit_refusals() {
    assert_refused(
        |c| c["products"]["starter"]["quota"]["scope"] = json!("global"),
        "products.starter.quota.scope",
        "needs the 'global_limits' section",
    );
    let with_section = |edit: fn(&mut Value)| {
        move |c: &mut Value| {
            c["global_limits"] = json!({ "cluster": "tollgate_rls" });
            edit(c);
        }
    };
    assert_refused(
        with_section(|c| {
            c["products"]["starter"]["rate_limit"] =
                json!({ "calls": 5, "renewal_period_s": 30, "scope": "global" })
        }),
        "products.starter.rate_limit.renewal_period_s",
        "unit of the rate-limit service",
    );
    assert_refused(
        with_section(|c| {
            c["products"]["starter"]["quota"] =
                json!({ "calls": 5_000_000_000u64, "renewal_period_s": 86400, "scope": "global" })
        }),
        "products.starter.quota.calls",
        "at most 4294967295",
    );
    assert_refused(
        with_section(|c| c["products"]["starter"]["quota"]["scope"] = json!("cluster")),
        "products.starter.quota.scope",
        "unknown variant",
    );
    assert_refused(
        with_section(|c| c["global_limits"]["cluster"] = json!("")),
        "global_limits.cluster",
        "must name an Envoy cluster",
    );
    assert_refused(
        |c| c["global_limits"] = json!({ "domain": "x" }),
        "global_limits",
        "missing field `cluster`",
    );
    assert_refused(
        with_section(|c| c["global_limits"]["failure_mode"] = json!("open")),
        "global_limits.failure_mode",
        "unknown variant",
    );
    assert_refused(
        with_section(|c| c["global_limits"]["timeout_ms"] = json!(0)),
        "global_limits.timeout_ms",
        "between 1 and",
    );
    assert_refused(
        with_section(|c| c["global_limits"]["retries"] = json!(2)),
        "global_limits.retries",
        "unknown field `retries`",
    );
}

#[test]
fn no_window_is_longer_than_a_year() {
    assert_refused(
        |c| c["products"]["starter"]["quota"]["renewal_period_s"] = json!(31_536_001),
        "products.starter.quota.renewal_period_s",
        "at most 31536000",
    );
    let mut config = valid();
    config["products"]["starter"]["quota"]["renewal_period_s"] = json!(31_536_000);
    assert!(compile(&config).is_ok());
}

#[test]
fn a_jwt_section_with_several_faults_is_refused_at_the_token_rule_first() {
    let jwt = |extra: Value| {
        let mut section = json!({
            "jwks": { "keys": [{ "kty": "oct", "kid": "h", "k": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE" }] },
            "algorithms": ["HS256"]
        });
        for (key, value) in extra.as_object().unwrap() {
            section[key] = value.clone();
        }
        move |c: &mut Value| c["jwt"] = section
    };
    assert_refused(
        jwt(json!({ "algorithms": [], "default_product": "nope" })),
        "jwt.algorithms",
        "must not be empty",
    );
    assert_refused(
        jwt(json!({ "issuers": [], "max_dynamic_consumers": 0 })),
        "jwt.issuers",
        "must not be empty",
    );
    assert_refused(
        jwt(json!({ "default_product": "nope", "max_dynamic_consumers": 0 })),
        "jwt.default_product",
        "unknown product",
    );
}

#[test]
fn a_key_given_twice_in_any_object_is_refused() {
    let text = valid()
        .to_string()
        .replacen("\"products\":{", "\"products\":{\"starter\":{},", 1);
    let err = Plan::from_json(text.as_bytes()).unwrap_err().to_string();
    assert!(
        err.starts_with("products.starter: duplicate key 'starter'"),
        "{err}"
    );
    // A repeated struct field is refused by the typed parse already.
    let text = valid()
        .to_string()
        .replacen("{", "{\"unmatched\":\"pass\",", 1);
    assert!(Plan::from_json(text.as_bytes()).is_err());
}

#[test]
fn names_that_would_share_a_metric_label_are_refused() {
    assert_refused(
        |c| {
            c["consumers"][1]["id"] = json!("invoice.flow");
            c["consumers"][0]["id"] = json!("invoice_flow");
        },
        "consumers[1].id",
        "would share the metric label 'invoice_flow'",
    );
    assert_refused(
        |c| c["consumers"][0]["id"] = json!("jwt:client"),
        "consumers[0].id",
        "may not start with 'jwt:'",
    );
    assert_refused(
        |c| c["consumers"][0]["id"] = json!("-"),
        "consumers[0].id",
        "is reserved",
    );
    assert_refused(
        |c| c["operations"][1]["name"] = json!("-"),
        "operations[1].name",
        "is reserved",
    );
    assert_refused(
        |c| {
            c["operations"][0]["name"] = json!("v_1");
            c["operations"][1]["name"] = json!("v.1");
        },
        "operations[1].name",
        "would share the metric label 'v_1'",
    );
}
