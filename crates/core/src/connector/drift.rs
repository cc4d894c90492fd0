//! `tollgate check --openapi`: where the configuration and FastAPI's OpenAPI have drifted
//! apart — FastAPI operations no tollgate operation reaches (a route added since, not yet
//! published) and tollgate operations that reach no FastAPI operation (a route removed or
//! renamed since). Both from the same mapping the connector uses (`public_api.rs`).

use super::public_api;
use super::{read_openapi, ConnectorError};
use crate::plan::Plan;

/// Each line is "METHOD /path": the backend path for `not_exposed`, the public one for
/// `reaches_nothing` (`ANY` for an operation without `methods`); `through_parameter` lines
/// name the backend operation, the operation that takes it and the public path.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drift {
    pub not_exposed: Vec<String>,
    /// FastAPI operations with no operation of their own that a template operation's
    /// parameter reaches anyway (under that operation's policy).
    pub through_parameter: Vec<String>,
    pub reaches_nothing: Vec<String>,
}

impl Drift {
    pub fn len(&self) -> usize {
        self.not_exposed.len() + self.through_parameter.len() + self.reaches_nothing.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub fn drift(config: &[u8], openapi: &[u8]) -> Result<Drift, ConnectorError> {
    let plan = Plan::from_json(config)?;
    let openapi = read_openapi(openapi)?;
    let api = public_api::map_every_method(&plan, &openapi);
    let mut not_exposed = Vec::new();
    let mut through_parameter = Vec::new();
    for left in &api.left_out {
        let line = format!("{} {}", left.method, left.backend_path);
        match public_api::reached_through_parameter(&plan, &left.method, &left.backend_path) {
            Some((index, public)) => through_parameter.push(format!(
                "{line} (by operation '{}' as {} {public})",
                plan.operation_name(index).unwrap_or_default(),
                left.method
            )),
            None => not_exposed.push(line),
        }
    }
    let reached = |index: usize, method: Option<&str>| {
        api.exposed.iter().any(|e| {
            e.operation_index == index && method.is_none_or(|m| e.method.eq_ignore_ascii_case(m))
        })
    };
    let mut reaches_nothing = Vec::new();
    for (index, operation) in plan.operations.iter().enumerate() {
        let path = operation.route.path.as_str();
        match operation.route.methods.listed() {
            None if !reached(index, None) => reaches_nothing.push(format!("ANY {path}")),
            None => {}
            Some(methods) => {
                // FastAPI documents no HEAD: its GET routes answer it.
                for method in methods.iter().filter(|m| *m != "HEAD") {
                    if !reached(index, Some(method)) {
                        reaches_nothing.push(format!("{method} {path}"));
                    }
                }
            }
        }
    }
    Ok(Drift {
        not_exposed,
        through_parameter,
        reaches_nothing,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(operations: serde_json::Value) -> Vec<u8> {
        json!({ "operations": operations, "products": {"p": {}},
            "consumers": [{"id": "c", "product": "p",
              "keys": [format!("sha256:{}", "0".repeat(64))]}] })
        .to_string()
        .into_bytes()
    }

    fn openapi(paths: serde_json::Value) -> Vec<u8> {
        json!({"openapi": "3.1.0", "info": {}, "paths": paths})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn no_drift_when_every_operation_meets_one() {
        let found = drift(
            &config(json!([
                {"name": "get", "methods": ["GET"], "path_template": "/i/{id}",
                 "rewrite": "/api/i/{id}"},
                {"name": "add", "methods": ["POST"], "path_template": "/i", "rewrite": "/api/i"}
            ])),
            &openapi(json!({"/api/i/{item_id}": {"get": {}}, "/api/i": {"post": {}}})),
        )
        .unwrap();
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn both_lists() {
        let found = drift(
            &config(json!([
                {"name": "get", "methods": ["GET", "HEAD"], "path_template": "/i/{id}",
                 "rewrite": "/api/i/{id}"},
                {"name": "legacy", "methods": ["GET", "POST"], "path": "/legacy"},
                {"name": "old", "path_prefix": "/old"}
            ])),
            &openapi(json!({
                "/api/i/{item_id}": {"get": {}},
                "/api/i/{item_id}/approve": {"post": {}},
                "/legacy": {"get": {}}
            })),
        )
        .unwrap();
        assert_eq!(found.not_exposed, ["POST /api/i/{item_id}/approve"]);
        assert_eq!(found.reaches_nothing, ["POST /legacy", "ANY /old"]);
        assert!(!found.is_empty());
    }

    #[test]
    fn a_route_a_parameter_takes_is_reported_with_the_operation_that_takes_it() {
        let found = drift(
            &config(json!([
                {"name": "get_invoice", "methods": ["GET"], "path_template": "/invoices/{id}",
                 "rewrite": "/api/invoices/{id}"}
            ])),
            &openapi(json!({
                "/api/invoices/pending": {"get": {}, "post": {}},
                "/api/invoices/{invoice_id}": {"get": {}}
            })),
        )
        .unwrap();
        assert_eq!(found.not_exposed, ["POST /api/invoices/pending"]);
        assert_eq!(
            found.through_parameter,
            ["GET /api/invoices/pending (by operation 'get_invoice' as GET /invoices/pending)"]
        );
        assert!(found.reaches_nothing.is_empty());
        assert_eq!(found.len(), 2);
    }

    #[test]
    fn trace_is_drift_like_any_method() {
        let found = drift(
            &config(json!([{"name": "ping", "methods": ["TRACE"], "path_template": "/ping"}])),
            &openapi(json!({"/ping": {"trace": {}}})),
        )
        .unwrap();
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_bad_input_is_an_error() {
        let good = config(json!([{"name": "a", "path": "/a"}]));
        assert!(matches!(
            drift(&good, br#"{"swagger": "2.0"}"#),
            Err(ConnectorError::NotOpenApi3(_))
        ));
        assert!(matches!(
            drift(b"{}", &openapi(json!({}))),
            Err(ConnectorError::Config(_))
        ));
    }
}
