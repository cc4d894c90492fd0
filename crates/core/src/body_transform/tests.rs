use super::expression::{CompileError, EvalError, Expression, MAX_EXPRESSION_BYTES};
use super::*;
use crate::deny::Outcome;
use crate::jwt::token_cache::TokenCache;
use crate::pipeline::{decide, RequestEnv};
use crate::plan::Plan;
use crate::subscription::KeyHash;
use crate::testing::tokens::{claims, jwt_section, rs256, NOW};
use crate::testing::{FixedClock, MemoryStore};
use crate::verdict::{Decision, Forward, Verdict};
use serde_json::{json, Value};

/// The demo's transform: a flow's PascalCase invoice to the backend's snake_case model.
const FLOW_TO_MODEL: &str = "{invoice_id: body.InvoiceNumber, amount: body.Total, \
    currency: body.Currency || 'EUR', due_date: body.DueDate, submitted_by: consumer}";
const ECHO_CONTEXT: &str = "{consumer: consumer, product: product, operation: operation, \
    claims: claims, query: query, headers: headers, status: status}";

fn hash(key: &str) -> String {
    KeyHash::of(key.as_bytes()).to_config_string()
}

fn config() -> Value {
    json!({
        "products": { "starter": {}, "partner": {} },
        "consumers": [
            { "id": "invoice-flow", "product": "starter", "keys": [hash("flow-key")] },
            { "id": "contoso-portal", "product": "partner", "jwt_client_ids": ["client-1"] }
        ],
        "jwt": jwt_section(),
        "operations": [
            { "name": "submit", "methods": ["POST"], "path": "/submit",
              "request_body": { "transform": FLOW_TO_MODEL, "max_bytes": 200 },
              "response_body": { "transform": "{valid: body.valid, status: status}" } },
            { "name": "echo", "path": "/echo", "auth": "either",
              "request_body": { "transform": ECHO_CONTEXT } },
            { "name": "open", "path": "/open", "auth": "none",
              "request_body": { "transform": ECHO_CONTEXT } },
            { "name": "plain", "path": "/plain" }
        ]
    })
}

fn plan_of(config: &Value) -> Plan {
    Plan::from_json(config.to_string().as_bytes()).unwrap()
}

fn request(path: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    let mut headers = vec![
        (":method".to_string(), b"POST".to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"api.contoso.com".to_vec()),
        ("x-request-id".to_string(), b"req-1".to_vec()),
    ];
    headers.extend(
        extra
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
    );
    headers
}

fn decided(plan: &Plan, headers: &Headers, body_follows: bool) -> Decision {
    let mut tokens = TokenCache::new(16, [7; 16]);
    let counters = MemoryStore::default();
    let mut env = RequestEnv::new(&FixedClock(NOW * 1000), &mut tokens, &counters);
    env.body_follows = body_follows;
    decide(plan, headers, &mut env)
}

fn forwarded(plan: &Plan, headers: &Headers) -> Forward {
    match decided(plan, headers, true).verdict {
        Verdict::Forward(forward) => forward,
        other => panic!("not forwarded: {other:?}"),
    }
}

fn json_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

const JSON: (&str, &str) = ("content-type", "application/json; charset=utf-8");
const FLOW_KEY: (&str, &str) = ("ocp-apim-subscription-key", "flow-key");

mod compile {
    use super::*;

    fn refusal(transform: &str) -> String {
        let mut config = config();
        config["operations"][3]["request_body"] = json!({ "transform": transform });
        Plan::from_json(config.to_string().as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_syntax_error_names_the_path_and_the_parsers_message() {
        let message = refusal("{a: body.");
        assert!(
            message.starts_with("operations[3].request_body.transform: invalid JMESPath at column"),
            "{message}"
        );
        let message = refusal("nope(body)");
        assert_eq!(
            message,
            "operations[3].request_body.transform: unknown JMESPath function 'nope'"
        );
    }

    #[test]
    fn expressions_the_module_could_not_run_are_refused() {
        assert_eq!(
            Expression::compile(&"a".repeat(MAX_EXPRESSION_BYTES + 1)),
            Err(CompileError::TooLong {
                bytes: MAX_EXPRESSION_BYTES + 1
            })
        );
        assert_eq!(
            Expression::compile(&"!".repeat(300).to_string().add("a")),
            Err(CompileError::TooNested)
        );
        // A long chain is deep once parsed, with few brackets.
        let chain = vec!["a"; 400].join(".");
        assert_eq!(Expression::compile(&chain), Err(CompileError::TooNested));
        // Brackets inside quotes do not count.
        assert!(Expression::compile(&format!("'{}'", "[".repeat(300))).is_ok());
        assert!(Expression::compile(FLOW_TO_MODEL).is_ok());
    }

    trait Add {
        fn add(self, tail: &str) -> String;
    }
    impl Add for String {
        fn add(mut self, tail: &str) -> String {
            self.push_str(tail);
            self
        }
    }

    #[test]
    fn max_bytes_and_the_public_schema_are_checked() {
        let mut config = config();
        config["operations"][3]["request_body"] = json!({ "transform": "body", "max_bytes": 0 });
        assert!(Plan::from_json(config.to_string().as_bytes())
            .unwrap_err()
            .to_string()
            .starts_with("operations[3].request_body.max_bytes: must be at least 1"));
        config["operations"][3]["request_body"] =
            json!({ "transform": "body", "public_schema": { "type": "text" } });
        assert!(Plan::from_json(config.to_string().as_bytes())
            .unwrap_err()
            .to_string()
            .starts_with("operations[3].request_body.public_schema: type: must be one of"));
        config["operations"][3]["request_body"] = json!({ "transform": "body", "extra": 1 });
        assert!(Plan::from_json(config.to_string().as_bytes()).is_err());
        let plan = plan_of(&super::config());
        let submit = plan.operations[0].request_body.as_ref().unwrap();
        assert_eq!(submit.max_bytes, 200);
        let echo = plan.operations[1].request_body.as_ref().unwrap();
        assert_eq!(echo.max_bytes, DEFAULT_MAX_BYTES);
    }
}

mod context {
    use super::*;

    fn echoed(plan: &Plan, headers: &Headers) -> Value {
        let reshape = forwarded(plan, headers).request_body.unwrap();
        json_body(&reshape.apply(plan, b"{}").unwrap())
    }

    #[test]
    fn a_key_callers_context_names_consumer_and_product_never_the_key() {
        let plan = plan_of(&config());
        let context = echoed(
            &plan,
            &request(
                "/echo?subscription-key=flow-key&b=2&b=3&x%20y=%C3%A9",
                &[
                    JSON,
                    ("x-custom", "one"),
                    ("x-custom", "two"),
                    ("authorization", "Bearer t"),
                ],
            ),
        );
        assert_eq!(context["consumer"], "invoice-flow");
        assert_eq!(context["product"], "starter");
        assert_eq!(context["operation"], "echo");
        assert_eq!(context["claims"], json!({}));
        assert_eq!(context["query"], json!({ "b": "2", "x y": "é" }));
        let headers = context["headers"].as_object().unwrap();
        assert_eq!(headers["x-custom"], "one", "the first value");
        assert_eq!(headers["x-request-id"], "req-1");
        for absent in [
            "authorization",
            "ocp-apim-subscription-key",
            ":path",
            ":method",
        ] {
            assert!(!headers.contains_key(absent), "{absent}");
        }
        assert_eq!(context["status"], Value::Null, "no status on a request");
        // The key in the header is never there either.
        let context = echoed(&plan, &request("/echo", &[JSON, FLOW_KEY]));
        assert!(!context["headers"]
            .as_object()
            .unwrap()
            .contains_key("ocp-apim-subscription-key"));
        assert!(!context.to_string().contains("flow-key"));
    }

    #[test]
    fn a_token_callers_context_holds_its_claims_never_the_token() {
        let plan = plan_of(&config());
        let bearer = format!("Bearer {}", rs256(claims()));
        let context = echoed(
            &plan,
            &request("/echo", &[JSON, ("authorization", &bearer)]),
        );
        assert_eq!(context["consumer"], "contoso-portal");
        assert_eq!(context["product"], "partner");
        assert_eq!(context["claims"]["oid"], "user-7");
        assert_eq!(context["claims"]["roles"], json!(["Invoices.Validate"]));
        assert!(!context.to_string().contains(&bearer[7..]));
    }

    #[test]
    fn an_open_operations_context_has_no_consumer() {
        let plan = plan_of(&config());
        let context = echoed(&plan, &request("/open", &[JSON]));
        assert_eq!(context["consumer"], Value::Null);
        assert_eq!(context["product"], Value::Null);
        assert_eq!(context["operation"], "open");
    }

    #[test]
    fn the_demo_transform_makes_the_backends_model() {
        let plan = plan_of(&config());
        let reshape = forwarded(&plan, &request("/submit", &[JSON, FLOW_KEY]))
            .request_body
            .unwrap();
        let body = br#"{"InvoiceNumber": "INV-1", "Total": 12.5, "DueDate": "2026-12-31"}"#;
        assert_eq!(
            json_body(&reshape.apply(&plan, body).unwrap()),
            json!({ "invoice_id": "INV-1", "amount": 12.5, "currency": "EUR",
                    "due_date": "2026-12-31", "submitted_by": "invoice-flow" })
        );
        let body = br#"{"InvoiceNumber": "INV-2", "Total": 3, "Currency": "USD"}"#;
        assert_eq!(
            json_body(&reshape.apply(&plan, body).unwrap())["currency"],
            "USD"
        );
    }
}

mod failures {
    use super::*;

    fn denied(plan: &Plan, headers: &Headers) -> crate::deny::Denial {
        match decided(plan, headers, true).verdict {
            Verdict::Deny(denial) => denial,
            other => panic!("not denied: {other:?}"),
        }
    }

    #[test]
    fn another_type_than_json_is_415_before_the_body() {
        let plan = plan_of(&config());
        for content_type in [
            "text/plain",
            "application/xml",
            "multipart/form-data",
            "json",
        ] {
            let denial = denied(
                &plan,
                &request("/submit", &[("content-type", content_type), FLOW_KEY]),
            );
            assert_eq!((denial.status, denial.outcome), (415, Outcome::BadBody));
            assert_eq!(denial.message, "Request body must be JSON.");
        }
        assert_eq!(denied(&plan, &request("/submit", &[FLOW_KEY])).status, 415);
        for json_type in [
            "application/json",
            "Application/JSON",
            "application/vnd.api+json",
        ] {
            let decision = decided(
                &plan,
                &request("/submit", &[("content-type", json_type), FLOW_KEY]),
                true,
            );
            assert!(
                matches!(decision.verdict, Verdict::Forward(_)),
                "{json_type}"
            );
        }
        // Credentials first: no key, 401 whatever the body.
        assert_eq!(
            denied(
                &plan,
                &request("/submit", &[("content-type", "text/plain")])
            )
            .status,
            401
        );
    }

    #[test]
    fn a_declared_length_over_max_bytes_is_413_before_the_body() {
        let plan = plan_of(&config());
        let denial = denied(
            &plan,
            &request("/submit", &[JSON, FLOW_KEY, ("content-length", "201")]),
        );
        assert_eq!((denial.status, denial.outcome), (413, Outcome::TooLarge));
        assert_eq!(denial.message, "Request body is larger than 200 bytes.");
        let at_the_limit = decided(
            &plan,
            &request("/submit", &[JSON, FLOW_KEY, ("content-length", "200")]),
            true,
        );
        assert!(matches!(at_the_limit.verdict, Verdict::Forward(_)));
    }

    #[test]
    fn a_request_without_a_body_is_left_alone() {
        let plan = plan_of(&config());
        let decision = decided(&plan, &request("/submit", &[FLOW_KEY]), false);
        let Verdict::Forward(forward) = decision.verdict else {
            panic!("not forwarded");
        };
        assert_eq!(forward.request_body, None, "nothing to reshape");
        assert!(forward.response_body.is_some(), "the response still is");
    }

    #[test]
    fn a_body_that_grows_past_max_bytes_is_413() {
        let plan = plan_of(&config());
        let reshape = forwarded(&plan, &request("/submit", &[JSON, FLOW_KEY]))
            .request_body
            .unwrap();
        assert_eq!(reshape.check_size(&plan, 200), Ok(()));
        let denial = reshape.check_size(&plan, 201).unwrap_err();
        assert_eq!((denial.status, denial.outcome), (413, Outcome::TooLarge));
        let denial = reshape.apply(&plan, &[b' '; 201]).unwrap_err();
        assert_eq!(denial.status, 413);
    }

    #[test]
    fn broken_json_is_400_and_a_failing_transform_400_with_its_error() {
        let plan = plan_of(&config());
        let reshape = forwarded(&plan, &request("/submit", &[JSON, FLOW_KEY]))
            .request_body
            .unwrap();
        for broken in [&b"{"[..], b"", b"{\"a\": 1,}", b"\xff", b"[1] [2]"] {
            let denial = reshape.apply(&plan, broken).unwrap_err();
            assert_eq!((denial.status, denial.outcome), (400, Outcome::BadBody));
            assert_eq!(denial.message, "Request body is not valid JSON.");
        }
        let echo = forwarded(&plan, &request("/echo", &[JSON, FLOW_KEY]))
            .request_body
            .unwrap();
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            echo.apply(&plan, deep.as_bytes()).unwrap_err().status,
            400,
            "nested past serde_json's limit: refused, not a stack overflow"
        );

        let mut config = config();
        config["operations"][3]["request_body"] = json!({ "transform": "abs(body.total)" });
        let plan = plan_of(&config);
        let reshape = forwarded(&plan, &request("/plain", &[JSON, FLOW_KEY]))
            .request_body
            .unwrap();
        let denial = reshape.apply(&plan, br#"{"total": "12"}"#).unwrap_err();
        assert_eq!((denial.status, denial.outcome), (400, Outcome::BadBody));
        assert_eq!(
            denial.message,
            "Request body could not be transformed: Argument 0 expects type number, given string."
        );
        assert_eq!(reshape.apply(&plan, br#"{"total": -3}"#).unwrap(), b"3");
    }
}

mod responses {
    use super::*;

    fn reshape(plan: &Plan) -> ResponseReshape {
        forwarded(plan, &request("/submit", &[JSON, FLOW_KEY]))
            .response_body
            .unwrap()
    }

    #[test]
    fn only_a_2xx_with_a_body_is_reshaped() {
        let plan = plan_of(&config());
        let r = reshape(&plan);
        let json = Some(&b"application/json"[..]);
        for status in [199, 300, 304, 400, 404, 422, 500, 503] {
            assert_eq!(
                r.on_headers(&plan, Some(status), json, None, false),
                ResponseStep::Leave,
                "{status}"
            );
        }
        assert_eq!(
            r.on_headers(&plan, Some(204), json, None, true),
            ResponseStep::Leave,
            "no body"
        );
        assert_eq!(
            r.on_headers(&plan, Some(201), json, Some(b"10"), false),
            ResponseStep::Buffer {
                max_bytes: DEFAULT_MAX_BYTES
            }
        );
        assert_eq!(
            r.on_headers(&plan, None, json, None, false),
            ResponseStep::Leave
        );
    }

    #[test]
    fn a_2xx_it_cannot_take_is_a_502_naming_the_request() {
        let plan = plan_of(&config());
        let r = reshape(&plan);
        let bad_gateway = MaskedReply {
            status: 502,
            body: r#"{"statusCode":502,"message":"Bad gateway. Request id req-1."}"#.to_string(),
        };
        assert_eq!(
            r.on_headers(&plan, Some(200), Some(b"text/html"), None, false),
            ResponseStep::Refuse(bad_gateway.clone(), Failure::NotJsonType)
        );
        assert_eq!(
            r.on_headers(&plan, Some(200), None, None, false),
            ResponseStep::Refuse(bad_gateway.clone(), Failure::NotJsonType)
        );
        let over = (DEFAULT_MAX_BYTES + 1).to_string();
        assert_eq!(
            r.on_headers(
                &plan,
                Some(200),
                Some(b"application/json"),
                Some(over.as_bytes()),
                false
            ),
            ResponseStep::Refuse(bad_gateway.clone(), Failure::TooLarge)
        );
        assert_eq!(
            r.apply(&plan, 200, b"<html>"),
            Err((bad_gateway.clone(), Failure::NotJson))
        );
    }

    #[test]
    fn a_response_transform_sees_the_status_and_strips_fields() {
        let plan = plan_of(&config());
        let r = reshape(&plan);
        let body =
            br#"{"valid": true, "problems": [], "received": {"headers": [["x", "secret"]]}}"#;
        assert_eq!(
            json_body(&r.apply(&plan, 201, body).unwrap()),
            json!({ "valid": true, "status": 201 })
        );
    }
}

mod budget {
    use super::*;

    fn evaluate(expression: &str, data: &Value, budget: u64) -> Result<Value, EvalError> {
        let expression = Expression::compile(expression).unwrap();
        let data = Rcvar::new(Variable::try_from(data.clone()).unwrap());
        expression
            .evaluate(&data, budget)
            .map(|found| json_body(&output::to_json(&found, usize::MAX).unwrap()))
    }

    #[test]
    fn work_that_doubles_at_every_step_stops_at_the_budget() {
        // A value of 2^20 leaves from a 200-byte expression and an empty object: cheap to
        // make (its parts are shared), dear to go through.
        let doubling = vec!["[@,@][*]"; 20].join(".");
        for costly in [
            format!("to_string({doubling})"),
            format!("({doubling}) == ({doubling})"),
            format!("contains({doubling}, `1`)"),
        ] {
            assert_eq!(
                evaluate(&costly, &json!({}), 100_000),
                Err(EvalError::OverBudget),
                "{costly}"
            );
        }
        let big: Vec<Value> = (0..20_000)
            .map(|i| json!({ "n": i, "s": "x".repeat(20) }))
            .collect();
        for costly in [
            "to_string([@,@,@,@,@,@,@,@])",
            "sort_by(@, &s)[*].to_string(@)",
            "@[*].[@, @][][].length(to_string(@))",
            "map(&to_string(@), @) == map(&to_string(@), @)",
        ] {
            assert_eq!(
                evaluate(costly, &json!(big), 100_000),
                Err(EvalError::OverBudget),
                "{costly}"
            );
        }
    }

    #[test]
    fn an_ordinary_transform_fits_a_small_budget() {
        let body = json!({ "body": { "InvoiceNumber": "INV-1", "Total": 3 }, "consumer": "c" });
        assert!(evaluate(FLOW_TO_MODEL, &body, 100).is_ok());
        let items: Vec<Value> = (0..1000).map(|i| json!({ "n": i })).collect();
        assert_eq!(
            evaluate("length(@[?n > `10`])", &json!(items), 10_000),
            Ok(json!(989))
        );
    }

    #[test]
    fn a_result_may_not_outgrow_its_limit() {
        let plan = plan_of(&{
            let mut config = config();
            config["operations"][3]["request_body"] =
                json!({ "transform": "[body, body, body, body]", "max_bytes": 10 });
            config
        });
        let reshape = forwarded(&plan, &request("/plain", &[JSON, FLOW_KEY]))
            .request_body
            .unwrap();
        // 10 bytes in, 2 × 10 + 64 KiB allowed out: four copies of ten bytes fit.
        assert!(reshape.apply(&plan, b"\"12345678\"").is_ok());
        // 512 copies of a 402-byte string: over 2 × 500 + 64 KiB.
        let eight = |item: &str| format!("[{}]", [item; 8].join(","));
        let mut config = config();
        config["operations"][3]["request_body"] =
            json!({ "transform": eight(&eight(&eight("body"))), "max_bytes": 500 });
        let plan = plan_of(&config);
        let reshape = forwarded(&plan, &request("/plain", &[JSON, FLOW_KEY]))
            .request_body
            .unwrap();
        let denial = reshape.apply(&plan, format!("\"{}\"", "x".repeat(400)).as_bytes());
        assert_eq!(
            denial.unwrap_err().message,
            "Request body could not be transformed: the transform's result is too large."
        );
    }

    #[test]
    fn integral_floats_are_written_as_integers() {
        assert_eq!(
            evaluate(
                "[ceil(`1.5`), floor(`-2.5`), sum(`[1, 2.0]`), `1.25`, `1e300`]",
                &json!({}),
                100
            ),
            Ok(json!([2, -3, 3, 1.25, 1e300]))
        );
        let found = Expression::compile("ceil(`1.5`)")
            .unwrap()
            .evaluate(&Rcvar::new(Variable::Null), 10)
            .unwrap();
        assert_eq!(output::to_json(&found, 100).unwrap(), b"2");
        let reference = Expression::compile("&a")
            .unwrap()
            .evaluate(&Rcvar::new(Variable::Null), 10)
            .unwrap();
        assert_eq!(
            output::to_json(&reference, 100),
            Err(output::OutputError::NotJson)
        );
    }
}
