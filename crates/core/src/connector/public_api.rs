//! Which FastAPI operations the public sees, and where: tollgate's operations mapped back
//! through their `rewrite` to the backend paths of the OpenAPI document. A (method, public path)
//! is kept only when tollgate's own first match sends it to that operation and the rewrite
//! gives back the backend path, so the connector never describes a call tollgate would refuse
//! or route elsewhere.

use crate::operation::PathMatch;
use crate::plan::{Operation, Plan};
use crate::rewrite::upstream_path;
use serde_json::{Map, Value};

/// The methods an OpenAPI path item may hold, in the order the specification lists them.
pub(crate) const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One FastAPI operation as the public calls it through tollgate.
#[derive(Debug)]
pub(crate) struct Exposed<'a> {
    /// Index of the tollgate operation in the configuration.
    pub operation_index: usize,
    pub operation: &'a Operation,
    /// Lower case, as OpenAPI keys it.
    pub method: &'static str,
    pub public_path: String,
    pub backend_path: String,
    /// The key of the path item in the OpenAPI document (without `servers[0]`'s path).
    pub openapi_path: &'a str,
    pub path_item: &'a Map<String, Value>,
    pub fastapi: &'a Map<String, Value>,
}

/// A FastAPI operation no tollgate operation reaches.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LeftOut {
    pub method: String,
    pub backend_path: String,
}

#[derive(Debug)]
pub(crate) struct PublicApi<'a> {
    pub exposed: Vec<Exposed<'a>>,
    pub left_out: Vec<LeftOut>,
}

/// The path FastAPI is mounted under (`root_path`, which FastAPI writes as `servers[0].url`).
pub(crate) fn root_path(openapi: &Value) -> String {
    let url = openapi
        .pointer("/servers/0/url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // "https://host/api" → "/api"; "/api/" → "/api"
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').and_then(|at| rest.get(at..)).unwrap_or(""),
        None => url,
    };
    path.trim_end_matches('/').to_string()
}

pub(crate) fn map<'a>(plan: &'a Plan, openapi: &'a Value) -> PublicApi<'a> {
    let root = root_path(openapi);
    let Some(paths) = openapi.get("paths").and_then(Value::as_object) else {
        return PublicApi {
            exposed: Vec::new(),
            left_out: Vec::new(),
        };
    };
    let mut exposed = Vec::new();
    for (index, operation) in plan.operations.iter().enumerate() {
        for (openapi_path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            let backend_path = format!("{root}{openapi_path}");
            let Some(public_path) = public_path_of(operation, &backend_path) else {
                continue;
            };
            for method in METHODS {
                let Some(fastapi) = item.get(method).and_then(Value::as_object) else {
                    continue;
                };
                if routes_to(plan, index, method, &public_path, &backend_path) {
                    exposed.push(Exposed {
                        operation_index: index,
                        operation,
                        method,
                        public_path: public_path.clone(),
                        backend_path: backend_path.clone(),
                        openapi_path,
                        path_item: item,
                        fastapi,
                    });
                }
            }
        }
    }
    let mut left_out = Vec::new();
    for (openapi_path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        let backend_path = format!("{root}{openapi_path}");
        for method in METHODS {
            let reached = exposed
                .iter()
                .any(|e| e.method == method && e.backend_path == backend_path);
            if item.get(method).is_some() && !reached {
                left_out.push(LeftOut {
                    method: method.to_ascii_uppercase(),
                    backend_path: backend_path.clone(),
                });
            }
        }
    }
    PublicApi { exposed, left_out }
}

/// The public path whose rewrite is `backend_path`, if the operation's path can yield it.
/// Never one with `//`: Envoy merges slashes (`merge_slashes`), so that path would reach the
/// operation as another one.
fn public_path_of(operation: &Operation, backend_path: &str) -> Option<String> {
    public_path_unchecked(operation, backend_path).filter(|path| !path.contains("//"))
}

fn public_path_unchecked(operation: &Operation, backend_path: &str) -> Option<String> {
    match &operation.route.path {
        PathMatch::Exact(public) => {
            let target = operation.rewrite.as_deref().unwrap_or(public);
            (backend_path == target).then(|| public.clone())
        }
        PathMatch::Prefix(prefix) => {
            let target = operation.rewrite.as_deref().unwrap_or(prefix);
            let rest = backend_path.strip_prefix(target)?;
            if rest.is_empty() {
                return Some(prefix.clone());
            }
            if target.ends_with('/') {
                // The rewrite put the slash back: "/v1" + "/x" → "/api/" + "x".
                let joiner = if prefix.ends_with('/') { "" } else { "/" };
                Some(format!("{prefix}{joiner}{rest}"))
            } else if rest.starts_with('/') {
                Some(format!("{prefix}{rest}"))
            } else {
                // "/api/v1/itemsx" is not under "/api/v1/items".
                None
            }
        }
    }
}

/// Whether tollgate's first match sends (method, public path) to operation `index`, whose
/// rewrite then gives back `backend_path`.
fn routes_to(plan: &Plan, index: usize, method: &str, public: &str, backend_path: &str) -> bool {
    let method = method.to_ascii_uppercase();
    match plan.match_operation(&method, public) {
        Some((matched, len)) if matched == index => plan.operations.get(index).is_some_and(|op| {
            upstream_path(public, len, op.rewrite.as_deref(), None) == backend_path
        }),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(operations: Value) -> Plan {
        let config = json!({ "operations": operations, "products": {"p": {}},
            "consumers": [{"id": "c", "product": "p",
              "keys": [format!("sha256:{}", "0".repeat(64))]}] });
        Plan::from_json(config.to_string().as_bytes()).unwrap()
    }

    fn openapi(paths: &[(&str, &[&str])]) -> Value {
        let mut map = Map::new();
        for (path, methods) in paths {
            let mut item = Map::new();
            for method in *methods {
                item.insert(method.to_string(), json!({"responses": {}}));
            }
            map.insert(path.to_string(), Value::Object(item));
        }
        json!({"openapi": "3.1.0", "paths": map})
    }

    fn routes(api: &PublicApi) -> Vec<(String, String, String)> {
        api.exposed
            .iter()
            .map(|e| {
                (
                    e.method.to_string(),
                    e.public_path.clone(),
                    e.backend_path.clone(),
                )
            })
            .collect()
    }

    fn row(method: &str, public: &str, backend: &str) -> (String, String, String) {
        (method.into(), public.into(), backend.into())
    }

    #[test]
    fn an_exact_path_reaches_its_rewrite_only() {
        let plan = plan(
            json!([{"name": "validate", "methods": ["POST"], "path": "/validate",
                                 "rewrite": "/api/v1/validate"}]),
        );
        let doc = openapi(&[
            ("/api/v1/validate", &["post", "get"]),
            ("/validate", &["post"]),
        ]);
        let api = map(&plan, &doc);
        assert_eq!(
            routes(&api),
            vec![row("post", "/validate", "/api/v1/validate")]
        );
        assert_eq!(
            api.left_out,
            vec![
                LeftOut {
                    method: "GET".into(),
                    backend_path: "/api/v1/validate".into()
                },
                LeftOut {
                    method: "POST".into(),
                    backend_path: "/validate".into()
                },
            ]
        );
    }

    #[test]
    fn a_prefix_maps_every_path_under_its_rewrite_on_a_segment_boundary() {
        let plan = plan(json!([{"name": "invoices", "path_prefix": "/invoices",
                                 "rewrite": "/api/v1/invoices"}]));
        let doc = openapi(&[
            ("/api/v1/invoices", &["get"]),
            ("/api/v1/invoices/{invoice_id}", &["get", "delete"]),
            ("/api/v1/invoicesx", &["get"]),
        ]);
        let api = map(&plan, &doc);
        assert_eq!(
            routes(&api),
            vec![
                row("get", "/invoices", "/api/v1/invoices"),
                row(
                    "get",
                    "/invoices/{invoice_id}",
                    "/api/v1/invoices/{invoice_id}"
                ),
                row(
                    "delete",
                    "/invoices/{invoice_id}",
                    "/api/v1/invoices/{invoice_id}"
                ),
            ]
        );
        assert_eq!(api.left_out.len(), 1);
    }

    #[test]
    fn a_rewrite_ending_in_a_slash_gets_its_slash_back_in_the_public_path() {
        let plan = plan(json!([{"name": "v1", "path_prefix": "/v1", "rewrite": "/api/"}]));
        let doc = openapi(&[("/api/items", &["get"])]);
        assert_eq!(
            routes(&map(&plan, &doc)),
            vec![row("get", "/v1/items", "/api/items")]
        );
    }

    #[test]
    fn a_public_path_is_never_one_envoy_would_merge_slashes_in() {
        // "/v/" + "/validate" only reaches "/api/v1/validate" as "/v//validate", which Envoy
        // merges to "/v/validate", rewritten to "/api/v1validate".
        let plan = plan(json!([{"name": "v", "path_prefix": "/v/", "rewrite": "/api/v1"}]));
        let doc = openapi(&[("/api/v1/validate", &["post"])]);
        let api = map(&plan, &doc);
        assert!(api.exposed.is_empty());
        assert_eq!(api.left_out.len(), 1);
    }

    #[test]
    fn without_rewrite_the_public_path_is_the_backend_path() {
        let plan = plan(json!([{"name": "admin", "path_prefix": "/admin"}]));
        let doc = openapi(&[("/admin/users", &["get"]), ("/administrator", &["get"])]);
        assert_eq!(
            routes(&map(&plan, &doc)),
            vec![row("get", "/admin/users", "/admin/users")]
        );
    }

    #[test]
    fn only_allowed_methods_appear() {
        let plan = plan(json!([{"name": "items", "methods": ["GET"], "path_prefix": "/items"}]));
        let doc = openapi(&[("/items/{id}", &["get", "put"])]);
        let api = map(&plan, &doc);
        assert_eq!(routes(&api), vec![row("get", "/items/{id}", "/items/{id}")]);
        assert_eq!(api.left_out[0].method, "PUT");
    }

    #[test]
    fn an_earlier_operation_that_takes_the_public_path_wins() {
        // "/items/{id}" through "all" is first matched by "read" for GET, so "all" yields only
        // DELETE there; "read" itself rewrites elsewhere and so exposes nothing.
        let plan = plan(json!([
            {"name": "read", "methods": ["GET"], "path_prefix": "/items", "rewrite": "/other"},
            {"name": "all", "path_prefix": "/items"}
        ]));
        let doc = openapi(&[("/items/{id}", &["get", "delete"])]);
        let api = map(&plan, &doc);
        assert_eq!(
            routes(&api),
            vec![row("delete", "/items/{id}", "/items/{id}")]
        );
        assert_eq!(
            api.left_out,
            vec![LeftOut {
                method: "GET".into(),
                backend_path: "/items/{id}".into()
            }]
        );
    }

    #[test]
    fn fastapi_root_path_is_part_of_the_backend_path() {
        let plan = plan(json!([{"name": "v", "path": "/validate", "rewrite": "/svc/validate"}]));
        let mut doc = openapi(&[("/validate", &["post"])]);
        doc["servers"] = json!([{"url": "/svc"}]);
        assert_eq!(
            routes(&map(&plan, &doc)),
            vec![row("post", "/validate", "/svc/validate")]
        );
        assert_eq!(
            root_path(&json!({"servers": [{"url": "https://h.example/svc/"}]})),
            "/svc"
        );
        assert_eq!(
            root_path(&json!({"servers": [{"url": "https://h.example"}]})),
            ""
        );
        assert_eq!(root_path(&json!({})), "");
    }

    #[test]
    fn one_backend_path_may_be_public_under_two_operations() {
        let plan = plan(json!([
            {"name": "short", "methods": ["POST"], "path": "/v", "rewrite": "/api/validate"},
            {"name": "long", "methods": ["POST"], "path": "/validate", "rewrite": "/api/validate"}
        ]));
        let doc = openapi(&[("/api/validate", &["post"])]);
        assert_eq!(
            routes(&map(&plan, &doc)),
            vec![
                row("post", "/v", "/api/validate"),
                row("post", "/validate", "/api/validate")
            ]
        );
    }
}
