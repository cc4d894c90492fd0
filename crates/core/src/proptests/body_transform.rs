//! Body transforms never panic and their work is bounded: arbitrary JSON bodies, arbitrary
//! expressions from JMESPath's grammar (every expression that compiles is run), with the
//! budget the filter gives (`200,000 + 2 × body bytes` steps). Checked: no panic; a result
//! written within its byte limit; a smaller budget only ever cuts an evaluation short (never
//! changes its result); and on a large body (256 KiB) no evaluation takes longer than a
//! generous wall-clock bound (an expression whose work grew with the body faster than the
//! budget allows would blow through it by orders of magnitude).

use super::config;
use crate::body_transform::expression::{EvalError, Expression};
use crate::body_transform::output::{to_json, OutputError};
use crate::body_transform::{BASE_STEPS, STEPS_PER_BODY_BYTE};
use jmespath::{Rcvar, Variable};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const FIELDS: &[&str] = &["a", "b", "items", "n", "s", "body", "x y"];
const FUNCTIONS_1: &[&str] = &[
    "length",
    "to_string",
    "keys",
    "values",
    "sort",
    "reverse",
    "not_null",
    "to_array",
    "to_number",
    "type",
    "abs",
    "ceil",
    "floor",
    "sum",
    "avg",
    "max",
    "min",
];
const FUNCTIONS_EXPREF: &[&str] = &["sort_by", "max_by", "min_by"];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        proptest::sample::select(FIELDS).prop_map(|s| json!(s)),
        "[a-z]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(FIELDS), inner), 0..6).prop_map(
                |members| Value::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect()
                )
            ),
        ]
    })
}

fn identifier() -> impl Strategy<Value = String> {
    proptest::sample::select(FIELDS).prop_map(|f| {
        if f.contains(' ') {
            format!("\"{f}\"")
        } else {
            f.to_string()
        }
    })
}

/// Expressions from JMESPath's grammar (and now and then a broken one: only those that compile
/// are run, as only those load).
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        identifier(),
        Just("@".to_string()),
        Just("`1`".to_string()),
        Just("`\"s\"`".to_string()),
        Just("`[1, 2.5, -3]`".to_string()),
        Just("'raw'".to_string()),
        (-3i32..4).prop_map(|i| format!("[{i}]")),
    ];
    leaf.prop_recursive(6, 48, 3, |inner| {
        let two = (inner.clone(), inner.clone());
        prop_oneof![
            two.clone().prop_map(|(a, b)| format!("{a}.{b}")),
            inner.clone().prop_map(|a| format!("{a}[*]")),
            inner.clone().prop_map(|a| format!("{a}[]")),
            inner.clone().prop_map(|a| format!("{a}.*")),
            two.clone().prop_map(|(a, b)| format!("{a}[*].{b}")),
            two.clone().prop_map(|(a, b)| format!("{a}[?{b}]")),
            two.clone().prop_map(|(a, b)| format!("{a}[?{b} == `1`]")),
            two.clone().prop_map(|(a, b)| format!("{a} | {b}")),
            two.clone().prop_map(|(a, b)| format!("{a} || {b}")),
            two.clone().prop_map(|(a, b)| format!("{a} && {b}")),
            two.clone().prop_map(|(a, b)| format!("{a} < {b}")),
            two.clone().prop_map(|(a, b)| format!("{a} != {b}")),
            inner.clone().prop_map(|a| format!("!{a}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("{a}[::-1]")),
            inner.clone().prop_map(|a| format!("{a}[1:3]")),
            two.clone().prop_map(|(a, b)| format!("[{a}, {b}, {a}]")),
            two.clone()
                .prop_map(|(a, b)| format!("{{x: {a}, y: {b}, z: {a}}}")),
            (proptest::sample::select(FUNCTIONS_1), inner.clone())
                .prop_map(|(f, a)| format!("{f}({a})")),
            (proptest::sample::select(FUNCTIONS_EXPREF), two.clone())
                .prop_map(|(f, (a, b))| format!("{f}({a}, &{b})")),
            two.clone().prop_map(|(a, b)| format!("map(&{a}, {b})")),
            two.clone()
                .prop_map(|(a, b)| format!("join(', ', {a}[*].{b})")),
            two.clone().prop_map(|(a, b)| format!("merge({a}, {b})")),
            two.clone().prop_map(|(a, b)| format!("contains({a}, {b})")),
            two.prop_map(|(a, b)| format!("starts_with({a}, {b})")),
        ]
    })
}

fn budget(body_bytes: usize) -> u64 {
    BASE_STEPS.saturating_add(STEPS_PER_BODY_BYTE.saturating_mul(body_bytes as u64))
}

fn variable(value: &Value) -> Rcvar {
    Rcvar::new(Variable::try_from(value.clone()).unwrap())
}

/// A 256 KiB body: many items, each with nested values and strings.
fn large_body() -> &'static (Value, usize) {
    static BODY: OnceLock<(Value, usize)> = OnceLock::new();
    BODY.get_or_init(|| {
        let items: Vec<Value> = (0..2800)
            .map(|i| {
                json!({ "n": i, "s": format!("item-{i}-{}", "x".repeat(40)),
                             "a": [i, i + 1, { "b": i % 7 }], "b": i % 2 == 0 })
            })
            .collect();
        let body = json!({ "items": items, "a": { "b": "c" }, "n": 3 });
        let bytes = body.to_string().len();
        assert!(bytes > 256 * 1024, "{bytes}");
        (body, bytes)
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn transforms_never_panic_and_a_smaller_budget_only_cuts(
        expression in expression(),
        body in json_value(),
        small in 0u64..400,
    ) {
        let Ok(compiled) = Expression::compile(&expression) else {
            return Ok(());
        };
        let data = variable(&json!({ "body": body, "consumer": "c", "status": 200 }));
        let full = compiled.evaluate(&data, budget(0));
        if let Ok(found) = &full {
            match to_json(found, 4096) {
                Ok(written) => prop_assert!(written.len() <= 4096),
                Err(OutputError::TooLarge | OutputError::NotJson) => {}
            }
        }
        match compiled.evaluate(&data, small) {
            Ok(found) => prop_assert_eq!(Ok(found), full, "{}", expression),
            Err(EvalError::OverBudget) => {}
            Err(failed) => prop_assert_eq!(Err(failed), full, "{}", expression),
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn work_on_a_large_body_is_bounded(expression in expression()) {
        let Ok(compiled) = Expression::compile(&expression) else {
            return Ok(());
        };
        let (body, bytes) = large_body();
        let data = variable(&json!({ "body": body }));
        let started = Instant::now();
        let found = compiled.evaluate(&data, budget(*bytes));
        if let Ok(found) = &found {
            let _ = to_json(found, 2 * bytes + 64 * 1024);
        }
        // The budget is about 725,000 steps here: well under a second, even unoptimised.
        prop_assert!(
            started.elapsed() < Duration::from_secs(5),
            "{} took {:?}", expression, started.elapsed()
        );
    }
}

/// The properties above say something only if most generated expressions load.
#[test]
fn most_generated_expressions_compile() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = expression();
    let compiled = (0..200)
        .filter(|_| {
            let text = strategy.new_tree(&mut runner).unwrap().current();
            Expression::compile(&text).is_ok()
        })
        .count();
    assert!(compiled >= 150, "only {compiled} of 200 compile");
}
