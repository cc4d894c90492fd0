//! Which FastAPI operations the public sees, and where: tollgate's operations mapped back
//! through their `rewrite` to the backend paths of the OpenAPI document. A (method, public path)
//! is kept only when tollgate's own first match sends it to that operation and the rewrite
//! gives back the backend path, so the connector never describes a call tollgate would refuse
//! or route elsewhere.

use crate::connector::notes::{shorten, Notes};
use crate::operation::PathMatch;
use crate::path_template::{fits_param, whole_param, PathTemplate, Segment, WITNESS_VALUE};
use crate::plan::{Operation, Plan};
use crate::rewrite::{upstream_path, PathRewrite, Piece};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeSet;

/// The methods an OpenAPI path item may hold, in the order the specification lists them.
pub(crate) const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The methods a Swagger 2.0 path item can hold (no `trace`).
const SWAGGER_METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];

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
    /// FastAPI's operation, with the bodies a transform reshapes described as the public sees
    /// them (`public_body.rs`).
    pub fastapi: Cow<'a, Map<String, Value>>,
    /// An `ip_filter` applies to the operation: tollgate may refuse the caller's address.
    pub ip_filtered: bool,
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

/// The public API a connector can describe: Swagger 2.0 has no TRACE, so FastAPI's TRACE
/// operations are left out.
pub(crate) fn map<'a>(plan: &'a Plan, openapi: &'a Value) -> PublicApi<'a> {
    map_methods(plan, openapi, &SWAGGER_METHODS)
}

/// Every method an OpenAPI path item may hold (the drift check's view).
pub(crate) fn map_every_method<'a>(plan: &'a Plan, openapi: &'a Value) -> PublicApi<'a> {
    map_methods(plan, openapi, &METHODS)
}

fn map_methods<'a>(plan: &'a Plan, openapi: &'a Value, methods: &[&'static str]) -> PublicApi<'a> {
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
            for &method in methods {
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
                        fastapi: crate::connector::public_body::public_bodies(fastapi, operation),
                        ip_filtered: plan.caller_filter(Some(operation)).is_some(),
                    });
                }
            }
        }
    }
    let reached: BTreeSet<(&str, &str)> = exposed
        .iter()
        .map(|e| (e.method, e.backend_path.as_str()))
        .collect();
    let mut left_out = Vec::new();
    for (openapi_path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        let backend_path = format!("{root}{openapi_path}");
        for method in METHODS {
            if item.get(method).is_some() && !reached.contains(&(method, backend_path.as_str())) {
                left_out.push(LeftOut {
                    method: method.to_ascii_uppercase(),
                    backend_path: backend_path.clone(),
                });
            }
        }
    }
    PublicApi { exposed, left_out }
}

/// The public path whose rewrite is `backend_path`, if the operation's path can yield it, and
/// only a plain one: Envoy normalizes paths (`normalize_path`, `merge_slashes`, escaped
/// slashes), so `/a/../b`, `/a//b` or `/a%2Fb` would reach tollgate as another path.
fn public_path_of(operation: &Operation, backend_path: &str) -> Option<String> {
    let configured = match &operation.route.path {
        PathMatch::Exact(path) | PathMatch::Prefix(path) => path,
        PathMatch::Template(template) => {
            return is_plain(backend_path)
                .then(|| template_public_path(template, operation.rewrite.as_ref(), backend_path))
                .flatten();
        }
    };
    // Braces in tollgate's own paths are literal there, never a template a caller fills.
    let literal = |text: &str| !text.contains(['{', '}']);
    let rewrite = operation.rewrite.as_ref().map(PathRewrite::as_str);
    if !literal(configured) || !rewrite.is_none_or(literal) {
        return None;
    }
    if !is_plain(backend_path) {
        return None;
    }
    public_path_unchecked(operation, backend_path).filter(|path| is_plain(path))
}

/// A path Envoy passes on as it is: segments without `.`/`..`, no empty segment, no escapes,
/// query, fragment, spaces, backslashes or control characters, and balanced `{name}`
/// templates.
fn is_plain(path: &str) -> bool {
    let mut in_template = false;
    for c in path.chars() {
        match c {
            '{' if !in_template => in_template = true,
            '}' if in_template => in_template = false,
            '{' | '}' | '%' | '?' | '#' | ' ' | '\\' => return false,
            c if c.is_control() => return false,
            _ => {}
        }
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    !in_template
        && path.starts_with('/')
        && segments.iter().enumerate().all(|(at, segment)| {
            *segment != "." && *segment != ".." && (!segment.is_empty() || at == last)
        })
}

/// A template operation's public path for `backend_path` (a FastAPI path, `{name}`s
/// included): its rewrite (or, without one, the template itself) must be that path with the
/// template's parameters where FastAPI has its own, each one used. The public path is the
/// template with FastAPI's parameter names, so the connector's path parameters are FastAPI's.
fn template_public_path(
    template: &PathTemplate,
    rewrite: Option<&PathRewrite>,
    backend_path: &str,
) -> Option<String> {
    let target: Vec<Piece> = match rewrite {
        Some(PathRewrite::Fill { pieces, .. }) => pieces.clone(),
        Some(PathRewrite::Replace(_)) => return None,
        None => {
            let mut index = 0;
            let mut pieces = Vec::new();
            for segment in template.segments() {
                pieces.push(Piece::Text("/".to_string()));
                match segment {
                    Segment::Literal(text) => pieces.push(Piece::Text(text.clone())),
                    Segment::Param(_) => {
                        pieces.push(Piece::Param(index));
                        index += 1;
                    }
                }
            }
            pieces
        }
    };
    let target = coalesced(target);
    let backend = fastapi_pieces(backend_path)?;
    let params: Vec<&str> = template.param_names().collect();
    let mut names: Vec<Option<String>> = vec![None; params.len()];
    if target.len() != backend.len() {
        return None;
    }
    for (ours, theirs) in target.iter().zip(&backend) {
        match (ours, theirs) {
            (Piece::Text(a), FastApiPiece::Text(b)) if a == b => {}
            (Piece::Param(index), FastApiPiece::Param(name)) => {
                let slot = names.get_mut(*index)?;
                match slot {
                    Some(known) if known != name => return None,
                    _ => *slot = Some(name.clone()),
                }
            }
            _ => return None,
        }
    }
    // Every template parameter must be a FastAPI one, and no two the same.
    let names: Vec<String> = names.into_iter().collect::<Option<_>>()?;
    if names.iter().collect::<BTreeSet<_>>().len() != names.len() {
        return None;
    }
    let mut public = String::new();
    let mut next = names.iter();
    for segment in template.segments() {
        public.push('/');
        match segment {
            Segment::Literal(text) => public.push_str(text),
            Segment::Param(_) => {
                public.push('{');
                public.push_str(next.next()?);
                public.push('}');
            }
        }
    }
    Some(public)
}

/// A FastAPI operation (method, backend path) that no operation exposes as its own, but that a
/// template operation reaches anyway: a parameter of its rewrite takes a literal segment of
/// the backend path (`/api/v1/invoices/pending` through `/invoices/{id}` →
/// `/api/v1/invoices/{id}`), so `GET /invoices/pending` runs FastAPI's `pending` handler under
/// the template operation's policy. Returns that operation's index and the public path.
pub(crate) fn reached_through_parameter(
    plan: &Plan,
    method: &str,
    backend_path: &str,
) -> Option<(usize, String)> {
    let upper = method.to_ascii_uppercase();
    plan.operations
        .iter()
        .enumerate()
        .filter(|(_, op)| op.route.methods.contains(&upper))
        .find_map(|(index, op)| {
            let PathMatch::Template(template) = &op.route.path else {
                return None;
            };
            let target = op
                .rewrite
                .as_ref()
                .map_or(template.as_str(), PathRewrite::as_str);
            let public = public_with_values(template, target, backend_path)?;
            routes_to(plan, index, method, &public, backend_path).then_some((index, public))
        })
}

/// The template with each parameter given what stands in the backend path where the rewrite
/// (`target`) has it: a FastAPI `{name}` or a literal segment. Whole segments only.
fn public_with_values(template: &PathTemplate, target: &str, backend_path: &str) -> Option<String> {
    let ours: Vec<&str> = target.split('/').collect();
    let theirs: Vec<&str> = backend_path.split('/').collect();
    if ours.len() != theirs.len() {
        return None;
    }
    let param = |segment: &str| whole_param(segment).map(str::to_string);
    let mut values: Vec<(String, String)> = Vec::new();
    for (mine, other) in ours.iter().zip(&theirs) {
        match (param(mine), param(other)) {
            (Some(name), _) => {
                let value = other.to_string();
                if param(other).is_none() && !fits_param(other) {
                    return None;
                }
                match values.iter().find(|(known, _)| *known == name) {
                    Some((_, earlier)) if *earlier != value => return None,
                    Some(_) => {}
                    None => values.push((name, value)),
                }
            }
            (None, None) if mine == other && !mine.contains(['{', '}']) => {}
            _ => return None,
        }
    }
    let mut public = String::new();
    for segment in template.segments() {
        public.push('/');
        match segment {
            Segment::Literal(text) => public.push_str(text),
            Segment::Param(name) => match values.iter().find(|(known, _)| known == name) {
                Some((_, value)) => public.push_str(value),
                None => {
                    public.push('{');
                    public.push_str(name);
                    public.push('}');
                }
            },
        }
    }
    Some(public)
}

/// Adjacent text pieces joined, so two spellings of one path compare piece by piece.
fn coalesced(pieces: Vec<Piece>) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        match (out.last_mut(), piece) {
            (Some(Piece::Text(last)), Piece::Text(text)) => last.push_str(&text),
            (_, piece) => out.push(piece),
        }
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
enum FastApiPiece {
    Text(String),
    Param(String),
}

/// A FastAPI path as text and `{name}` pieces, no two texts in a row.
fn fastapi_pieces(path: &str) -> Option<Vec<FastApiPiece>> {
    let mut pieces = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let (before, from) = rest.split_at(open);
        let close = from.find('}')?;
        if !before.is_empty() {
            pieces.push(FastApiPiece::Text(before.to_string()));
        }
        pieces.push(FastApiPiece::Param(from.get(1..close)?.to_string()));
        rest = from.get(close + 1..)?;
    }
    if !rest.is_empty() {
        pieces.push(FastApiPiece::Text(rest.to_string()));
    }
    Some(pieces)
}

fn public_path_unchecked(operation: &Operation, backend_path: &str) -> Option<String> {
    let rewrite = operation.rewrite.as_ref().map(PathRewrite::as_str);
    match &operation.route.path {
        PathMatch::Template(_) => None,
        PathMatch::Exact(public) => {
            let target = rewrite.unwrap_or(public);
            (backend_path == target).then(|| public.clone())
        }
        PathMatch::Prefix(prefix) => {
            let target = rewrite.unwrap_or(prefix);
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
/// rewrite then gives back `backend_path`. Both paths are tried with every `{name}` filled with
/// a value no literal equals, as a caller's value would be.
fn routes_to(plan: &Plan, index: usize, method: &str, public: &str, backend_path: &str) -> bool {
    let method = method.to_ascii_uppercase();
    let (public, backend_path) = (filled(public), filled(backend_path));
    match plan.match_operation(&method, &public) {
        Some(found) if found.operation == index => plan.operations.get(index).is_some_and(|op| {
            upstream_path(&public, &found.matched, op.rewrite.as_ref(), None) == backend_path
        }),
        _ => false,
    }
}

/// `path` with each `{name}` replaced by a value a caller could send.
fn filled(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' if !in_param => {
                in_param = true;
                out.push_str(WITNESS_VALUE);
            }
            '}' if in_param => in_param = false,
            _ if in_param => {}
            c => out.push(c),
        }
    }
    out
}

/// One warning per transformed body described by no `public_schema`.
pub(crate) fn note_open_bodies(exposed: &[Exposed], notes: &mut Notes) {
    for e in exposed {
        let label = format!(
            "{} {} ({})",
            e.method.to_ascii_uppercase(),
            shorten(&e.public_path, 120),
            shorten(&e.operation.name, 60)
        );
        for (side, transform) in [
            ("request_body", &e.operation.request_body),
            ("response_body", &e.operation.response_body),
        ] {
            if transform
                .as_ref()
                .is_some_and(|t| t.public_schema.is_none())
            {
                notes.push(format!(
                    "{label}: {side} is transformed and has no public_schema: described as any JSON object"
                ));
            }
        }
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
    fn paths_envoy_would_normalize_are_left_out() {
        let plan = plan(json!([{"name": "all", "path_prefix": "/"}]));
        for odd in [
            "/a/../admin",
            "/b/./c",
            "/c%2Fd",
            "/e?x=1",
            "/f#frag",
            "/t s",
            "/u\\v",
            "/w/{x",
            "/y}",
        ] {
            let doc = openapi(&[(odd, &["get"])]);
            let api = map(&plan, &doc);
            assert!(api.exposed.is_empty(), "{odd}");
            assert_eq!(api.left_out.len(), 1, "{odd}");
        }
        let doc = openapi(&[("/items/{id}/", &["get"]), ("/items/{id}", &["get"])]);
        assert_eq!(map(&plan, &doc).exposed.len(), 2);
    }

    #[test]
    fn braces_in_tollgate_paths_are_literal_and_never_exposed() {
        let doc = openapi(&[("/items/{id}", &["get"])]);
        for operation in [
            json!({"name": "item", "path": "/items/{id}"}),
            json!({"name": "item", "path": "/item", "rewrite": "/items/{id}"}),
            json!({"name": "item", "path_prefix": "/v1", "rewrite": "/items/{id}"}),
        ] {
            assert!(map(&plan(json!([operation])), &doc).exposed.is_empty());
        }
    }

    #[test]
    fn trace_has_no_swagger_form_and_is_left_out() {
        let plan = plan(json!([{"name": "all", "path_prefix": "/"}]));
        let doc = openapi(&[("/t", &["trace", "get"])]);
        let api = map(&plan, &doc);
        assert_eq!(routes(&api), vec![row("get", "/t", "/t")]);
        assert_eq!(
            api.left_out,
            vec![LeftOut {
                method: "TRACE".into(),
                backend_path: "/t".into()
            }]
        );
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

    #[test]
    fn a_template_maps_one_to_one_with_fastapi_parameter_names() {
        let plan = plan(json!([
            {"name": "get_invoice", "methods": ["GET"], "path_template": "/invoices/{id}",
             "rewrite": "/api/v1/invoices/{id}"},
            {"name": "export", "methods": ["GET"], "path_template": "/invoices/export",
             "rewrite": "/api/v1/invoices/export"},
            {"name": "attach", "methods": ["POST"], "path_template": "/invoices/{id}/files",
             "rewrite": "/api/v1/invoices/{id}/attachments"}
        ]));
        let doc = openapi(&[
            ("/api/v1/invoices/{invoice_id}", &["get", "delete"]),
            ("/api/v1/invoices/export", &["get"]),
            ("/api/v1/invoices/{invoice_id}/attachments", &["post"]),
            ("/api/v1/invoices/{invoice_id}/history", &["get"]),
        ]);
        let api = map(&plan, &doc);
        assert_eq!(
            routes(&api),
            vec![
                row(
                    "get",
                    "/invoices/{invoice_id}",
                    "/api/v1/invoices/{invoice_id}"
                ),
                row("get", "/invoices/export", "/api/v1/invoices/export"),
                row(
                    "post",
                    "/invoices/{invoice_id}/files",
                    "/api/v1/invoices/{invoice_id}/attachments"
                ),
            ]
        );
        let left: Vec<_> = api
            .left_out
            .iter()
            .map(|l| (l.method.as_str(), l.backend_path.as_str()))
            .collect();
        assert_eq!(
            left,
            [
                ("DELETE", "/api/v1/invoices/{invoice_id}"),
                ("GET", "/api/v1/invoices/{invoice_id}/history")
            ]
        );
    }

    #[test]
    fn a_template_without_rewrite_is_its_own_backend_path() {
        let plan = plan(json!([{"name": "item", "path_template": "/items/{item_id}/"}]));
        let doc = openapi(&[("/items/{id}/", &["get"]), ("/items/{id}", &["get"])]);
        assert_eq!(
            routes(&map(&plan, &doc)),
            vec![row("get", "/items/{id}/", "/items/{id}/")]
        );
    }

    #[test]
    fn a_template_is_exposed_only_when_its_parameters_are_fastapis() {
        let doc = openapi(&[("/api/{a}/{b}", &["get"])]);
        for (template, rewrite) in [
            // A template parameter the backend path does not carry.
            ("/x/{a}/{b}/{c}", "/api/{a}/{b}"),
            // One template parameter standing for two FastAPI ones.
            ("/x/{a}", "/api/{a}/{a}"),
            // Text where FastAPI has a parameter.
            ("/x/{a}", "/api/{a}/b"),
        ] {
            let plan = plan(json!([{"name": "t", "path_template": template, "rewrite": rewrite}]));
            assert!(
                map(&plan, &doc).exposed.is_empty(),
                "{template} -> {rewrite}"
            );
        }
        // Parameters may be reordered by the rewrite; each keeps FastAPI's name.
        let plan =
            plan(json!([{"name": "t", "path_template": "/x/{q}/{p}", "rewrite": "/api/{p}/{q}"}]));
        assert_eq!(
            routes(&map(&plan, &doc)),
            vec![row("get", "/x/{b}/{a}", "/api/{a}/{b}")]
        );
    }
}
