//! `generate` from end to end: both inputs in, the files out, every refusal with its reason.

use super::*;
use serde_json::json;

fn config(auth: &str) -> Value {
    json!({
        "subscription_key": {"header": "X-Key", "query": "key"},
        "jwt": {"issuers": ["https://login.microsoftonline.com/tenant-1/v2.0"],
                "audiences": ["api://invoices"], "algorithms": ["RS256"],
                "jwks": {"keys": [{"kty": "RSA", "kid": "k1", "e": "AQAB",
                    "n": "wJ4Ts0Yh1rCflzIvYs6nkxwYCBfVqkwvZPjpxZ3BZ4k6pmIeRaxVGqSbjGv4mEXRwq5T1-PUbyPvSwQ2S6GkaI0-KYflmIJcywIgVqg8yvnxyN3AcZpXTc2TWsDkT1EfyEETGbVO5Iv0o5U4tzbPIXW4P-w2AwyMeWa9X1-KUyn9CzOjm9Ud-ZRpZizvBTwN0A9OmBrUqjGH5ZCYVfjWyPyHmbLsp8Gek7mhFwxVYD12UFDhxWBfu1EWX-oFaEhf7DkfQzkB1NVzVNtgFa15dLzOfnTQFtZKRNEeWOq1qN7WgTUSeJBCh0jNnlX4mjoMlXFR-2uqjkm44jk-MIA1sQ"}]}},
        "products": {"p": {}},
        "consumers": [{"id": "c", "product": "p",
            "keys": ["sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]}],
        "operations": [
            {"name": "validate", "methods": ["POST"], "path": "/validate",
             "rewrite": "/api/v1/validate", "auth": auth},
            {"name": "invoices", "methods": ["GET"], "path_prefix": "/invoices",
             "rewrite": "/api/v1/invoices", "auth": auth},
            {"name": "health", "methods": ["GET"], "path": "/healthz", "auth": "none"}
        ]
    })
}

fn openapi() -> Value {
    let ok = |schema: Value| {
        json!({"200": {"description": "OK",
        "content": {"application/json": {"schema": schema}}}})
    };
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Invoices", "version": "1.0.0"},
        "paths": {
            "/api/v1/validate": {"post": {"operationId": "validate_api_v1_validate_post",
                "summary": "Validate an invoice",
                "requestBody": {"required": true, "content": {"application/json":
                    {"schema": {"$ref": "#/components/schemas/Invoice"}}}},
                "responses": ok(json!({"type": "object"}))}},
            "/api/v1/invoices": {"get": {"operationId": "list_invoices_api_v1_invoices_get",
                "responses": ok(json!({"type": "array", "items": {"$ref": "#/components/schemas/Invoice"}}))}},
            "/api/v1/invoices/{invoice_id}": {"get": {
                "operationId": "get_invoice_api_v1_invoices__invoice_id__get",
                "parameters": [{"name": "invoice_id", "in": "path", "required": true,
                                "schema": {"type": "string", "title": "Invoice Id"}}],
                "responses": ok(json!({"$ref": "#/components/schemas/Invoice"}))}},
            "/healthz": {"get": {"operationId": "healthz_healthz_get", "responses": ok(json!({}))}},
            "/internal/reindex": {"post": {"operationId": "reindex_internal_reindex_post",
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Secret"}}}},
                "responses": ok(json!({}))}}
        },
        "components": {"schemas": {
            "Invoice": {"type": "object", "required": ["amount"], "properties": {
                "amount": {"type": "number"},
                "po_number": {"anyOf": [{"type": "string"}, {"type": "null"}]}}},
            "Secret": {"type": "object"}
        }}
    })
}

fn run(config: &Value, openapi: &Value, options: &Options) -> Result<Generated, ConnectorError> {
    generate(
        config.to_string().as_bytes(),
        openapi.to_string().as_bytes(),
        options,
    )
}

fn file(generated: &Generated, name: &str) -> Value {
    let text = generated
        .files
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| text.as_str())
        .unwrap_or_default();
    serde_json::from_str(text).unwrap_or_default()
}

fn aad() -> Options {
    Options {
        client_id: Some("11111111-2222-3333-4444-555555555555".into()),
        ..Options::for_host("api.contoso.com")
    }
}

#[test]
fn the_connector_is_the_public_api() {
    let generated = run(
        &config("subscription_key"),
        &openapi(),
        &Options::for_host("api.contoso.com"),
    )
    .unwrap();
    let names: Vec<&str> = generated.files.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "apiDefinition.swagger.json",
            "apiProperties.json",
            "settings.json"
        ]
    );
    let swagger = file(&generated, "apiDefinition.swagger.json");
    let ids: Vec<(&str, &str, &str)> = swagger["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().unwrap().iter().map(move |(method, op)| {
                (
                    path.as_str(),
                    method.as_str(),
                    op["operationId"].as_str().unwrap(),
                )
            })
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("/healthz", "get", "Health"),
            ("/invoices", "get", "InvoicesListInvoices"),
            ("/invoices/{invoice_id}", "get", "InvoicesGetInvoice"),
            ("/validate", "post", "Validate"),
        ]
    );
    assert_eq!(generated.left_out, ["POST /internal/reindex"]);
    assert_eq!(swagger["host"], "api.contoso.com");
    assert_eq!(
        swagger["securityDefinitions"]["apiKeyHeader"]["name"],
        "X-Key"
    );
    // Only what the public operations use; the internal model stays out.
    let definitions: Vec<&String> = swagger["definitions"].as_object().unwrap().keys().collect();
    assert_eq!(definitions, ["Invoice"]);
    assert_eq!(
        swagger["definitions"]["Invoice"]["properties"]["po_number"]["x-nullable"],
        true
    );
    let get = &swagger["paths"]["/invoices/{invoice_id}"]["get"];
    assert_eq!(get["parameters"][0]["x-ms-url-encoding"], "single");
    assert_eq!(get["parameters"][0]["required"], true);
    assert_eq!(
        get["responses"]["200"]["schema"]["$ref"],
        "#/definitions/Invoice"
    );
    for status in ["401", "403", "429"] {
        assert!(get["responses"][status]["description"].is_string());
        assert!(swagger["paths"]["/healthz"]["get"]["responses"]
            .get(status)
            .is_none());
    }
    // A path parameter that is no single segment is tollgate's 404.
    assert!(get["responses"]["404"]["description"]
        .as_str()
        .unwrap()
        .starts_with("Unable to match incoming request to an operation"));
    assert!(swagger["paths"]["/healthz"]["get"]["responses"]
        .get("404")
        .is_none());
    // One with an escaped '/' or '\' is the shipped Envoy's 400, before tollgate.
    assert!(get["responses"]["400"]["description"]
        .as_str()
        .unwrap()
        .starts_with("Bad request: an escaped '/'"));
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    let one = run(&config("jwt"), &openapi(), &aad()).unwrap();
    let two = run(&config("jwt"), &openapi(), &aad()).unwrap();
    assert_eq!(one.files, two.files);
    assert!(one.files.iter().all(|(_, text)| text.ends_with("}\n")));
}

#[test]
fn no_key_hash_or_signing_key_is_ever_written() {
    let config = config("both");
    let n = config["jwt"]["jwks"]["keys"][0]["n"]
        .as_str()
        .unwrap()
        .to_string();
    for format in [Format::PowerPlatform, Format::OpenApi] {
        let generated = run(&config, &openapi(), &Options { format, ..aad() }).unwrap();
        for (name, text) in &generated.files {
            assert!(!text.contains("sha256:"), "{name}");
            assert!(!text.contains("9f86d081884c7d65"), "{name}");
            assert!(!text.contains(&n[..40]), "{name}");
            assert!(!text.to_ascii_lowercase().contains("secret"), "{name}");
        }
    }
}

#[test]
fn jwt_operations_sign_in_with_entra() {
    let generated = run(&config("jwt"), &openapi(), &aad()).unwrap();
    let properties = file(&generated, "apiProperties.json");
    let settings = &properties["properties"]["connectionParameters"]["token"]["oAuthSettings"];
    assert_eq!(settings["clientId"], "11111111-2222-3333-4444-555555555555");
    assert_eq!(
        settings["customParameters"]["tenantId"]["value"],
        "tenant-1"
    );
    assert_eq!(
        settings["customParameters"]["resourceUri"]["value"],
        "api://invoices"
    );
    assert!(properties["properties"]["connectionParameters"]
        .get("api_key")
        .is_none());
}

#[test]
fn the_openapi_format_describes_the_same_operations_with_their_credentials() {
    let options = Options {
        format: Format::OpenApi,
        ..aad()
    };
    let generated = run(&config("either"), &openapi(), &options).unwrap();
    let document = file(&generated, "openapi.json");
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["servers"][0]["url"], "https://api.contoso.com");
    let validate = &document["paths"]["/validate"]["post"];
    assert_eq!(validate["operationId"], "Validate");
    assert_eq!(
        validate["security"],
        json!([{"apiKeyHeader": []}, {"apiKeyQuery": []}, {"entraId": []}])
    );
    assert_eq!(document["paths"]["/healthz"]["get"]["security"], json!([]));
    assert!(document["components"]["schemas"].get("Secret").is_none());
    assert!(document["components"]["schemas"]
        .get("TollgateError")
        .is_some());
}

#[test]
fn every_refusal_says_why() {
    let host = Options::for_host("api.contoso.com");
    let refused = |config: &[u8], openapi: &[u8], options: &Options| {
        generate(config, openapi, options)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let good_config = config("subscription_key").to_string();
    let good_openapi = openapi().to_string();
    let bad_config = br#"{"operations": [{"name": "v", "path": "/v", "rewrite": "v"}]}"#;
    assert_eq!(
        refused(bad_config, good_openapi.as_bytes(), &host),
        Plan::from_json(bad_config)
            .err()
            .map(|e| e.to_string())
            .unwrap()
    );
    assert!(refused(good_config.as_bytes(), b"{", &host).contains("not JSON"));
    assert!(refused(
        good_config.as_bytes(),
        br#"{"swagger": "2.0", "paths": {}}"#,
        &host
    )
    .contains("Swagger 2.0"));
    assert!(refused(good_config.as_bytes(), br#"{"openapi": "3.1.0"}"#, &host).contains("paths"));
    assert!(refused(
        good_config.as_bytes(),
        br#"{"openapi": "3.1.0", "paths": {"/x": {"get": {}}}}"#,
        &host
    )
    .contains("no operation exposed"));
    let jwt = config("jwt").to_string();
    assert!(refused(jwt.as_bytes(), good_openapi.as_bytes(), &host).contains("--client-id"));
    let blank = Options {
        client_id: Some(" ".into()),
        ..host.clone()
    };
    assert!(refused(jwt.as_bytes(), good_openapi.as_bytes(), &blank).contains("--client-id"));
    // The OpenAPI description names no app registration, so it needs none.
    let openapi_format = Options {
        format: Format::OpenApi,
        ..host.clone()
    };
    assert!(generate(jwt.as_bytes(), good_openapi.as_bytes(), &openapi_format).is_ok());
    let mut no_jwt = config("subscription_key");
    no_jwt.as_object_mut().unwrap().remove("jwt");
    let aad_forced = Options {
        auth: AuthChoice::Aad,
        ..aad()
    };
    assert!(refused(
        no_jwt.to_string().as_bytes(),
        good_openapi.as_bytes(),
        &aad_forced
    )
    .contains("`jwt` section"));
    for (options, flag) in [
        (
            Options {
                brand_color: "red".into(),
                ..host.clone()
            },
            "--brand-color",
        ),
        (Options::for_host("https://api.contoso.com"), "--host"),
        (
            Options {
                scheme: "ftp".into(),
                ..host.clone()
            },
            "--scheme",
        ),
        (
            Options {
                base_path: "gw".into(),
                ..host.clone()
            },
            "--base-path",
        ),
    ] {
        assert!(
            refused(good_config.as_bytes(), good_openapi.as_bytes(), &options).starts_with(flag)
        );
    }
}

#[test]
fn a_body_method_without_a_body_is_warned_about() {
    let mut document = openapi();
    document["paths"]["/api/v1/validate"]["post"]
        .as_object_mut()
        .unwrap()
        .remove("requestBody");
    let generated = run(
        &config("subscription_key"),
        &document,
        &Options::for_host("h"),
    )
    .unwrap();
    assert!(generated
        .warnings
        .iter()
        .any(|w| w.starts_with("POST /validate (Validate)") && w.contains("no request body")));
}

#[test]
fn an_api_open_to_anyone_keeps_the_key_sign_in_as_spec_reads() {
    // The rule: ignoring `none`, "all of them subscription_key or either" → key; with none left,
    // that holds.
    let config = json!({"operations": [{"name": "health", "methods": ["GET"], "path": "/healthz", "auth": "none"}]});
    let generated = run(&config, &openapi(), &Options::for_host("h")).unwrap();
    let swagger = file(&generated, "apiDefinition.swagger.json");
    assert_eq!(swagger["security"], json!([{"apiKeyHeader": []}]));
    let properties = file(&generated, "apiProperties.json");
    assert_eq!(
        properties["properties"]["connectionParameters"]["api_key"]["type"],
        "securestring"
    );
}

#[test]
fn a_base_path_loses_its_trailing_slash() {
    let options = Options {
        base_path: "/gw/".into(),
        ..Options::for_host("h")
    };
    let generated = run(&config("subscription_key"), &openapi(), &options).unwrap();
    assert_eq!(
        file(&generated, "apiDefinition.swagger.json")["basePath"],
        "/gw"
    );
    assert_eq!(base_path("/"), "/");
    assert_eq!(base_path("//"), "/");
}

#[test]
fn hosts_are_what_power_platform_takes() {
    for good in [
        "api.contoso.com",
        "api.contoso.com:8443",
        "127.0.0.1:10000",
        "h",
    ] {
        assert!(is_host(good), "{good}");
    }
    for bad in [
        "",
        "api:abc",
        "{tenant}.example.com",
        "[::1]:8080",
        "a\\b",
        "h\tx",
        ":99",
        "h:99999999",
        "h:0",
        "a b",
        "https://h",
        "h/p",
    ] {
        assert!(!is_host(bad), "{bad}");
    }
}

#[test]
fn pass_through_and_forced_auth_are_warned_about() {
    let mut config = config("subscription_key");
    config["unmatched"] = json!("pass");
    let generated = run(&config, &openapi(), &Options::for_host("h")).unwrap();
    assert!(generated
        .warnings
        .iter()
        .any(|w| w.contains("unmatched: pass") && w.contains("1 operation")));
    let forced = Options {
        auth: AuthChoice::Aad,
        ..aad()
    };
    let generated = run(&config, &openapi(), &forced).unwrap();
    assert!(
        generated
            .warnings
            .iter()
            .any(|w| w.contains("validate, invoices") || w.contains("invoices, validate")),
        "{:?}",
        generated.warnings
    );
}

// --- work in proportion to the input: adversarial documents, built here ------------------------

/// Everything under one prefix operation, so every path of the document is exposed.
fn catch_all() -> Value {
    json!({"products": {"p": {}},
        "consumers": [{"id": "c", "product": "p", "keys": [format!("sha256:{}", "0".repeat(64))]}],
        "operations": [{"name": "all", "path_prefix": "/"}]})
}

const BOTH: &[Format] = &[Format::PowerPlatform, Format::OpenApi];

fn document(paths: Map<String, Value>, extra: Value) -> Value {
    let mut document = json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}});
    document["paths"] = Value::Object(paths);
    if let Value::Object(extra) = extra {
        document.as_object_mut().unwrap().extend(extra);
    }
    document
}

/// Generates `formats` within `seconds` (a debug build on a slow shared CI machine); returns
/// the bytes written and the warnings.
fn bounded_run(openapi: &Value, formats: &[Format], seconds: u64) -> (usize, Vec<String>) {
    let (config, openapi) = (catch_all().to_string(), openapi.to_string());
    let started = std::time::Instant::now();
    let mut written = 0;
    let mut warnings = Vec::new();
    for &format in formats {
        let options = Options {
            format,
            ..Options::for_host("h")
        };
        let generated = generate(config.as_bytes(), openapi.as_bytes(), &options).unwrap();
        written += generated.files.iter().map(|(_, t)| t.len()).sum::<usize>();
        warnings.extend(generated.warnings);
    }
    let took = started.elapsed();
    assert!(took.as_secs() < seconds, "took {took:?}");
    (written, warnings)
}

/// An enum of 12,000 values (180 KB) reached through `levels` levels of refs two wide:
/// 2^levels paths to it, each of which copied it without a byte budget.
fn refs_to_a_large_enum(prefix: &str, levels: usize) -> Map<String, Value> {
    let values: Vec<String> = (0..12_000).map(|i| format!("value-{i:05}")).collect();
    let mut schemas = Map::new();
    schemas.insert("Big".into(), json!({"type": "string", "enum": values}));
    for level in 0..levels {
        let next = if level + 1 == levels {
            format!("{prefix}Big")
        } else {
            format!("{prefix}X{}", level + 1)
        };
        schemas.insert(
            format!("X{level}"),
            json!({"type": "object", "properties": {"a": {"$ref": next}, "b": {"$ref": next}},
                   "anyOf": [{"$ref": next}, {"$ref": next}]}),
        );
    }
    schemas
}

#[test]
fn a_ref_reached_along_many_branches_is_not_copied_along_each() {
    // A query parameter (inlined) and a body whose refs are no components (expanded in place):
    // before the byte budget, 30 s and 1.1 GB for the parameter, gigabytes of output for the
    // body.
    let components = refs_to_a_large_enum("#/components/schemas/", 10);
    let elsewhere = refs_to_a_large_enum("#/x-defs/", 10);
    let mut paths = Map::new();
    paths.insert(
        "/items".into(),
        json!({"get": {"parameters": [{"name": "q", "in": "query",
            "schema": {"$ref": "#/components/schemas/X0"}}],
            "responses": {"200": {"description": "ok"}}},
        "post": {"requestBody": {"content": {"application/json":
            {"schema": {"$ref": "#/x-defs/X0"}}}},
            "responses": {"200": {"description": "ok"}}}}),
    );
    let openapi = document(
        paths,
        json!({"components": {"schemas": components}, "x-defs": elsewhere}),
    );
    let input = openapi.to_string().len();
    let (written, warnings) = bounded_run(&openapi, BOTH, 10);
    assert!(written < 64 * input, "{written} bytes written from {input}");
    assert!(
        warnings.iter().any(|w| w.contains("too large")),
        "{warnings:?}"
    );
}

#[test]
fn thousands_of_warnings_collapse() {
    // One path of 8,000 undeclared parameters (63 KB): 504 MB of warnings, the path in each.
    let path: String = (0..8_000).map(|i| format!("/{{p{i}}}")).collect();
    let mut paths = Map::new();
    paths.insert(
        path,
        json!({"get": {"responses": {"200": {"description": "ok"}}}}),
    );
    let (_, warnings) = bounded_run(&document(paths, json!({})), BOTH, 10);
    let bytes: usize = warnings.iter().map(String::len).sum();
    assert!(warnings.len() <= 2 * 101, "{} warnings", warnings.len());
    assert!(bytes < 100_000, "{bytes} bytes of warnings");
    assert!(
        warnings.iter().any(|w| w.contains("7995 more")),
        "{warnings:?}"
    );
}

#[test]
fn sixteen_thousand_query_parameters_take_no_minute() {
    let parameters: Vec<Value> = (0..16_000)
        .map(|i| json!({"name": format!("q{i}"), "in": "query", "schema": {"type": "string"}}))
        .collect();
    let mut paths = Map::new();
    paths.insert(
        "/q".into(),
        json!({"get": {"parameters": parameters, "responses": {"200": {"description": "ok"}}}}),
    );
    let openapi = document(paths, json!({}));
    let input = openapi.to_string().len();
    let (written, warnings) = bounded_run(&openapi, BOTH, 10);
    assert!(written < 8 * input, "{written} bytes written from {input}");
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn sixteen_thousand_paths_sharing_an_operation_id_take_no_minute() {
    let mut paths = Map::new();
    for i in 0..16_000 {
        paths.insert(
            format!("/p{i}"),
            json!({"get": {"operationId": "same", "responses": {"200": {"description": "ok"}}}}),
        );
    }
    let openapi = document(paths, json!({}));
    let input = openapi.to_string().len();
    // The ids are the same in both formats; the Swagger alone keeps the test quick. Each
    // operation carries tollgate's answers inline there: a kilobyte for an 80-byte input.
    let (written, _) = bounded_run(&openapi, &[Format::PowerPlatform], 10);
    assert!(written < 32 * input, "{written} bytes written from {input}");
}

// --- what tollgate adds: credentials per operation, its headers, path values it can carry ------

/// `config("subscription_key")` with a product that has limits, and `extra` merged in.
fn limited_config(extra: Value) -> Value {
    let mut config = config("subscription_key");
    config["products"] = json!({"p": {"rate_limit": {"calls": 5, "renewal_period_s": 60}}});
    if let (Value::Object(config), Value::Object(extra)) = (&mut config, extra) {
        config.extend(extra);
    }
    config
}

fn both_formats(config: &Value, openapi: &Value) -> (Value, Value) {
    let swagger = run(config, openapi, &Options::for_host("h")).unwrap();
    let options = Options {
        format: Format::OpenApi,
        ..Options::for_host("h")
    };
    let public = run(config, openapi, &options).unwrap();
    (
        file(&swagger, "apiDefinition.swagger.json"),
        file(&public, "openapi.json"),
    )
}

#[test]
fn the_caller_ip_filter_403_is_documented_where_a_filter_applies() {
    let mut filtered = config("subscription_key");
    filtered["ip_filter"] = json!({"allow": ["13.69.227.208/28"]});
    filtered["operations"][0]["ip_filter"] = Value::Null;
    let (swagger, public) = both_formats(&filtered, &openapi());
    let forbidden = |path: &str, method: &str| {
        swagger["paths"][path][method]["responses"]["403"]["description"]
            .as_str()
            .map(str::to_string)
    };
    // Open to anyone, yet behind the filter: its 403 is the filter's alone.
    assert!(forbidden("/healthz", "get")
        .unwrap()
        .starts_with("Forbidden: the caller's address"));
    assert!(forbidden("/invoices/{invoice_id}", "get")
        .unwrap()
        .starts_with("Access denied: the caller's address may not call this API"));
    // `null`: no filter, the 403 says what it said before.
    assert!(forbidden("/validate", "post")
        .unwrap()
        .starts_with("Access denied: the product may not call this operation"));
    let components = public["components"]["responses"].as_object().unwrap();
    for component in [
        "TollgateAddressForbidden",
        "TollgateForbiddenOrAddress",
        "TollgateForbidden",
    ] {
        assert!(components.contains_key(component), "{component}");
    }
    assert_eq!(
        public["paths"]["/healthz"]["get"]["responses"]["403"]["$ref"],
        "#/components/responses/TollgateAddressForbidden"
    );
}

#[test]
fn an_operation_open_to_anyone_asks_for_no_key_in_either_output() {
    let (swagger, public) = both_formats(&config("subscription_key"), &openapi());
    assert_eq!(swagger["security"], json!([{"apiKeyHeader": []}]));
    assert_eq!(swagger["paths"]["/healthz"]["get"]["security"], json!([]));
    // The others keep the document's requirement.
    assert!(swagger["paths"]["/validate"]["post"]
        .get("security")
        .is_none());
    assert_eq!(public["paths"]["/healthz"]["get"]["security"], json!([]));
}

#[test]
fn the_key_in_the_query_is_an_alternative_in_the_openapi_description_only() {
    let (swagger, public) = both_formats(&config("subscription_key"), &openapi());
    assert_eq!(
        public["components"]["securitySchemes"]["apiKeyQuery"],
        json!({"type": "apiKey", "in": "query", "name": "key"})
    );
    assert_eq!(
        public["paths"]["/validate"]["post"]["security"],
        json!([{"apiKeyHeader": []}, {"apiKeyQuery": []}])
    );
    // Power Platform's connection holds one key, sent one way: the header, as APIM exports it.
    let definitions = swagger["securityDefinitions"].as_object().unwrap();
    assert_eq!(definitions.keys().collect::<Vec<_>>(), ["apiKeyHeader"]);
}

#[test]
fn retry_after_and_the_rate_limit_headers_are_documented() {
    let (swagger, public) = both_formats(&limited_config(json!({})), &openapi());
    let get = &swagger["paths"]["/invoices/{invoice_id}"]["get"]["responses"];
    for status in ["403", "429"] {
        assert_eq!(get[status]["headers"]["Retry-After"]["type"], "integer");
    }
    assert!(get["401"].get("headers").is_none());
    assert!(get["404"].get("headers").is_none());
    let admitted = get["200"]["headers"].as_object().unwrap();
    assert_eq!(
        admitted.keys().collect::<Vec<_>>(),
        [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset"
        ]
    );
    // No consumer, no limit: no headers.
    let health = &swagger["paths"]["/healthz"]["get"]["responses"]["200"];
    assert!(health.get("headers").is_none());

    let get = &public["paths"]["/invoices/{invoice_id}"]["get"]["responses"];
    assert_eq!(
        get["429"],
        json!({"$ref": "#/components/responses/TollgateTooManyRequests"})
    );
    let components = &public["components"];
    assert_eq!(
        components["responses"]["TollgateTooManyRequests"]["headers"]["Retry-After"],
        json!({"$ref": "#/components/headers/RetryAfter"})
    );
    assert_eq!(
        components["responses"]["TollgateForbidden"]["headers"]["Retry-After"],
        json!({"$ref": "#/components/headers/RetryAfter"})
    );
    assert_eq!(
        get["200"]["headers"]["x-ratelimit-remaining"],
        json!({"$ref": "#/components/headers/RateLimitRemaining"})
    );
    assert_eq!(
        components["headers"]["RateLimitReset"]["schema"]["type"],
        "integer"
    );
    assert!(public["paths"]["/healthz"]["get"]["responses"]["200"]
        .get("headers")
        .is_none());
}

#[test]
fn the_rate_limit_headers_follow_the_configuration() {
    let renamed = limited_config(json!({"rate_limit_headers":
        {"limit": "RateLimit-Limit", "remaining": "RateLimit-Remaining", "reset": "RateLimit-Reset"}}));
    let (swagger, public) = both_formats(&renamed, &openapi());
    let admitted = &swagger["paths"]["/validate"]["post"]["responses"]["200"]["headers"];
    assert!(admitted.get("ratelimit-limit").is_some(), "{admitted}");
    assert!(admitted.get("x-ratelimit-limit").is_none());
    let admitted = &public["paths"]["/validate"]["post"]["responses"]["200"]["headers"];
    assert!(admitted.get("ratelimit-reset").is_some(), "{admitted}");

    let off = limited_config(json!({"rate_limit_headers": "none"}));
    let (swagger, public) = both_formats(&off, &openapi());
    let responses = &swagger["paths"]["/validate"]["post"]["responses"];
    assert!(responses["200"].get("headers").is_none());
    assert!(responses["429"]["headers"].get("Retry-After").is_some());
    assert!(public["components"]["headers"]
        .get("RateLimitLimit")
        .is_none());

    // Unlimited products: nothing to count, no headers.
    let (swagger, _) = both_formats(&config("subscription_key"), &openapi());
    assert!(swagger["paths"]["/validate"]["post"]["responses"]["200"]
        .get("headers")
        .is_none());
}

#[test]
fn a_response_the_backend_shares_gets_the_headers_in_place() {
    let mut document = openapi();
    document["components"]["responses"] = json!({"Ok": {"description": "OK", "headers": {"X-RateLimit-Limit": {"description": "old"}}}});
    document["paths"]["/api/v1/validate"]["post"]["responses"] =
        json!({"200": {"$ref": "#/components/responses/Ok"}});
    let (_, public) = both_formats(&limited_config(json!({})), &document);
    let ok = &public["paths"]["/validate"]["post"]["responses"]["200"];
    assert_eq!(ok["description"], "OK");
    let names: Vec<&String> = ok["headers"].as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset"
        ]
    );
    // The component itself is left as the backend wrote it.
    assert_eq!(
        public["components"]["responses"]["Ok"]["headers"]["X-RateLimit-Limit"]["description"],
        "old"
    );
}

#[test]
fn path_parameters_exclude_what_the_gateway_cannot_carry() {
    let mut document = openapi();
    let item = |schema: Value| {
        json!({"get": {"parameters": [{"name": "id", "in": "path", "required": true,
            "schema": schema}], "responses": {"200": {"description": "OK"}}}})
    };
    let paths = document["paths"].as_object_mut().unwrap();
    paths.insert(
        "/api/v1/invoices/by-number/{id}".into(),
        item(json!({"type": "integer"})),
    );
    paths.insert(
        "/api/v1/invoices/by-code/{id}".into(),
        item(json!({"type": "string", "pattern": "^INV-[0-9]+$", "default": "a/b"})),
    );
    paths.insert(
        "/api/v1/invoices/by-kind/{id}".into(),
        item(json!({"$ref": "#/components/schemas/Kind"})),
    );
    paths.insert(
        "/api/v1/invoices/by-flag/{id}".into(),
        item(json!({"type": "string", "pattern": "(?i)^inv", "default": "../x"})),
    );
    document["components"]["schemas"]["Kind"] = json!({"type": "string", "enum": ["a", "b"]});
    let (swagger, public) = both_formats(&config("subscription_key"), &document);
    let swagger_parameter = |path: &str| {
        swagger["paths"][path]["get"]["parameters"][0]
            .as_object()
            .unwrap()
            .clone()
    };
    let public_schema =
        |path: &str| public["paths"][path]["get"]["parameters"][0]["schema"].clone();
    let segment = parameters::SEGMENT;
    assert_eq!(
        swagger_parameter("/invoices/{invoice_id}")["pattern"],
        segment
    );
    assert_eq!(public_schema("/invoices/{invoice_id}")["pattern"], segment);
    // An integer never holds '/' nor is '.': no pattern needed.
    assert!(swagger_parameter("/invoices/by-number/{id}")
        .get("pattern")
        .is_none());
    assert!(public_schema("/invoices/by-number/{id}")
        .get("pattern")
        .is_none());
    // FastAPI's own pattern is kept inside the one regex.
    let combined = r"^(?!\.{1,2}$)(?=[^/\\]+$)(?=[\s\S]*?(?:^INV-[0-9]+$))";
    let by_code = swagger_parameter("/invoices/by-code/{id}");
    assert_eq!(by_code["pattern"], combined);
    assert!(by_code.get("default").is_none());
    assert_eq!(public_schema("/invoices/by-code/{id}")["pattern"], combined);
    // Inline flags open the whole pattern; a default that is no segment goes.
    let by_flag = swagger_parameter("/invoices/by-flag/{id}");
    assert_eq!(
        by_flag["pattern"],
        r"(?i)^(?!\.{1,2}$)(?=[^/\\]+$)(?=[\s\S]*?(?:^inv))"
    );
    assert!(by_flag.get("default").is_none());
    // Behind a ref the target's constraints stand beside the segment's.
    assert_eq!(
        public_schema("/invoices/by-kind/{id}"),
        json!({"allOf": [{"$ref": "#/components/schemas/Kind"}], "pattern": segment})
    );
    assert_eq!(
        swagger_parameter("/invoices/by-kind/{id}")["pattern"],
        segment
    );
    assert_eq!(
        swagger_parameter("/invoices/by-kind/{id}")["enum"],
        json!(["a", "b"])
    );
}

#[test]
fn an_undeclared_path_parameter_is_one_segment_too() {
    let mut document = openapi();
    document["paths"]["/api/v1/invoices/{invoice_id}"]["get"]
        .as_object_mut()
        .unwrap()
        .remove("parameters");
    let (swagger, _) = both_formats(&config("subscription_key"), &document);
    let parameter = &swagger["paths"]["/invoices/{invoice_id}"]["get"]["parameters"][0];
    assert_eq!(parameter["pattern"], parameters::SEGMENT);
}

#[test]
fn a_transformed_body_is_described_by_its_public_schema_or_as_any_object() {
    let public = json!({"type": "object", "required": ["InvoiceNumber"],
        "properties": {"InvoiceNumber": {"type": "string"}, "Total": {"type": "number"}}});
    let mut with_schema = config("subscription_key");
    with_schema["operations"][0]["request_body"] =
        json!({"transform": "{amount: body.Total}", "public_schema": public});
    with_schema["operations"][0]["response_body"] = json!({"transform": "{valid: body.valid}"});
    let generated = run(&with_schema, &openapi(), &Options::for_host("h")).unwrap();
    let definition = file(&generated, "apiDefinition.swagger.json");
    let validate = &definition["paths"]["/validate"]["post"];
    let body = validate["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["in"] == "body")
        .unwrap();
    let properties = body["schema"]["properties"].as_object().unwrap();
    assert!(properties.contains_key("InvoiceNumber") && !properties.contains_key("amount"));
    assert_eq!(
        validate["responses"]["200"]["schema"],
        json!({"type": "object"})
    );
    let warned = |side: &str| {
        generated.warnings.iter().any(|w| {
            w.starts_with("POST /validate (validate)")
                && w.contains(&format!("{side} is transformed and has no public_schema"))
        })
    };
    assert!(warned("response_body") && !warned("request_body"));

    let openapi_out = run(
        &with_schema,
        &openapi(),
        &Options {
            format: Format::OpenApi,
            ..Options::for_host("h")
        },
    )
    .unwrap();
    let document = file(&openapi_out, "openapi.json");
    assert_eq!(
        document["paths"]["/validate"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["required"],
        json!(["InvoiceNumber"])
    );

    let mut open = config("subscription_key");
    open["operations"][0]["request_body"] = json!({"transform": "{amount: body.Total}"});
    let generated = run(&open, &openapi(), &Options::for_host("h")).unwrap();
    let definition = file(&generated, "apiDefinition.swagger.json");
    let body = definition["paths"]["/validate"]["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["in"] == "body")
        .cloned()
        .unwrap();
    assert_eq!(body["schema"], json!({"type": "object"}));
    assert!(generated
        .warnings
        .iter()
        .any(|w| w.contains("request_body is transformed and has no public_schema")));
}
