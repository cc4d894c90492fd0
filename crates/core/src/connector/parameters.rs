//! The parameters a caller of the public API gives: FastAPI's, minus what tollgate owns — the
//! subscription key (header and query), `Authorization`, cookies (a connector cannot send
//! them), and every header tollgate sets or removes on the way in (a client value there never
//! reaches the backend, so asking for it would mislead). Path parameters are restricted to
//! the values the gateway can carry.

use crate::connector::document::resolve;
use crate::connector::public_api::Exposed;
use crate::plan::Plan;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// A path parameter's value as the gateway carries it: one non-empty segment, without `/` or
/// `\`, neither `.` nor `..`. Envoy's path normalisation reshapes anything else (a `/` splits
/// the segment, `.` and `..` are removed or climb) and tollgate's URL templates refuse it, so
/// such a value never reaches the handler the description names.
pub(crate) const SEGMENT: &str = r"^(?!\.{1,2}$)[^/\\]+$";

/// Whether `value` is one segment as `SEGMENT` says.
pub(crate) fn is_segment(value: &str) -> bool {
    !value.is_empty() && value != "." && value != ".." && !value.contains(['/', '\\'])
}

/// `SEGMENT` and FastAPI's own pattern, both required, as the one regex a schema's `pattern`
/// holds. A JSON Schema pattern may match anywhere, so theirs sits in a lookahead that may
/// start anywhere (its `^` and `$` still mean the value's ends); lookaheads and `(?:` capture
/// nothing, so its groups keep their numbers. Inline flags that open theirs (`(?i)`, as
/// pydantic's engines take them) open the whole.
pub(crate) fn with_segment(theirs: Option<&str>) -> String {
    let Some(theirs) = theirs.filter(|theirs| *theirs != SEGMENT) else {
        return SEGMENT.to_string();
    };
    let (flags, rest) = leading_flags(theirs);
    format!(r"{flags}^(?!\.{{1,2}}$)(?=[^/\\]+$)(?=[\s\S]*?(?:{rest}))")
}

/// `(?i)` and the like at the start of a pattern, and the rest.
fn leading_flags(pattern: &str) -> (&str, &str) {
    let flags = pattern.strip_prefix("(?").and_then(|after| {
        let end = after.find(')')?;
        let letters = after.get(..end)?;
        (!letters.is_empty() && letters.chars().all(|c| c.is_ascii_alphabetic())).then_some(end + 3)
    });
    match flags.and_then(|at| Some((pattern.get(..at)?, pattern.get(at..)?))) {
        Some(split) => split,
        None => ("", pattern),
    }
}

/// Whether a JSON Schema `type` admits no string (integers, numbers, booleans never hold `/`,
/// `\` or a lone `.`): such a schema needs no pattern.
fn never_a_string(schema: &Value) -> bool {
    let kinds: Vec<&str> = match schema.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    !kinds.is_empty()
        && kinds
            .iter()
            .all(|kind| matches!(*kind, "integer" | "number" | "boolean" | "null"))
}

/// An OpenAPI path parameter's schema, restricted to one segment: `pattern` (FastAPI's folded
/// in), or beside a `$ref` an `allOf` that requires both.
pub(crate) fn restrict_path_schema(schema: &mut Value, openapi: &Value) {
    if schema.get("$ref").is_some() {
        if resolve(schema, openapi).is_some_and(never_a_string) {
            return;
        }
        let target = schema.take();
        *schema = json!({ "allOf": [target], "pattern": SEGMENT });
        return;
    }
    if never_a_string(schema) {
        return;
    }
    if let Some(map) = schema.as_object_mut() {
        let theirs = map.get("pattern").and_then(Value::as_str);
        let pattern = with_segment(theirs);
        map.insert("pattern".into(), json!(pattern));
    }
}

/// A Swagger path parameter (or its `items`, for a list) restricted to one segment, when it is
/// a string: `pattern` with FastAPI's folded in; a `default` it refuses is dropped.
pub(crate) fn restrict_swagger_path(parameter: &mut Map<String, Value>) {
    match parameter.get("type").and_then(Value::as_str) {
        Some("string") => {
            let theirs = parameter.get("pattern").and_then(Value::as_str);
            let pattern = with_segment(theirs);
            parameter.insert("pattern".into(), json!(pattern));
            let default_fits = match parameter.get("default") {
                Some(Value::String(default)) => is_segment(default),
                _ => true,
            };
            if !default_fits {
                parameter.remove("default");
            }
        }
        Some("array") => {
            if let Some(items) = parameter.get_mut("items").and_then(Value::as_object_mut) {
                restrict_swagger_path(items);
            }
        }
        _ => {}
    }
}

/// The headers and query parameter no connector operation may ask for, lower-cased.
#[derive(Debug)]
pub(crate) struct Owned {
    key_header: String,
    key_query: String,
    /// Identity headers from JWT claims (`jwt.claims_to_headers`), set on every verified request.
    claim_headers: Vec<String>,
}

impl Owned {
    pub(crate) fn of(plan: &Plan) -> Self {
        Self {
            key_header: plan.key_header.clone(),
            key_query: plan.key_query.clone(),
            claim_headers: plan
                .jwt
                .as_ref()
                .map(|jwt| {
                    jwt.claims_to_headers
                        .iter()
                        .map(|(_, header)| header.clone())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn hides(&self, exposed: &Exposed, parameter: &Map<String, Value>) -> bool {
        let name = parameter
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase();
        match parameter.get("in").and_then(Value::as_str) {
            Some("cookie") => true,
            Some("query") => name == self.key_query.to_ascii_lowercase(),
            Some("header") => {
                let rules = &exposed.operation.request_headers;
                name == self.key_header
                    || name == "authorization"
                    || self.claim_headers.contains(&name)
                    || rules.remove.contains(&name)
                    || rules.set.iter().any(|(header, _)| *header == name)
            }
            _ => false,
        }
    }
}

/// FastAPI's parameters of one operation (path item's, then the operation's, which win on the
/// same name and location), `$ref`s resolved, tollgate's own left out; with the names of
/// those left out.
pub(crate) fn kept<'a>(
    exposed: &'a Exposed<'a>,
    openapi: &'a Value,
    owned: &Owned,
) -> (Vec<&'a Map<String, Value>>, Vec<String>) {
    let lists = [
        exposed.path_item.get("parameters"),
        exposed.fastapi.get("parameters"),
    ];
    // A later parameter replaces an earlier one of the same name and location, and takes its
    // place at the end; found through a map, as a list of thousands would take minutes.
    let mut slots: Vec<Option<&'a Map<String, Value>>> = Vec::new();
    let mut at: HashMap<(String, String), usize> = HashMap::new();
    for parameter in lists
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|p| resolve(p, openapi).and_then(Value::as_object))
    {
        let text = |field: &str| {
            parameter
                .get(field)
                .map(Value::to_string)
                .unwrap_or_default()
        };
        if let Some(earlier) = at.insert((text("name"), text("in")), slots.len()) {
            if let Some(slot) = slots.get_mut(earlier) {
                *slot = None;
            }
        }
        slots.push(Some(parameter));
    }
    let mut merged: Vec<&'a Map<String, Value>> = slots.into_iter().flatten().collect();
    let mut hidden = Vec::new();
    merged.retain(|parameter| {
        let hide = owned.hides(exposed, parameter);
        if hide {
            let name = parameter
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            hidden.push(name.to_string());
        }
        !hide
    });
    (merged, hidden)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::connector::public_api::map;
    use serde_json::json;

    fn names(kept: &[&Map<String, Value>]) -> Vec<String> {
        kept.iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn tollgate_owned_parameters_never_reach_the_connector() {
        let config = json!({
            "subscription_key": {"header": "X-Key", "query": "key"},
            "jwt": {"issuers": ["https://i"], "audiences": ["a"], "algorithms": ["HS256"],
                    "jwks": {"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI"}]},
                    "claims_to_headers": {"oid": "X-User-Oid"}},
            "operations": [{"name": "op", "path": "/p", "auth": "jwt",
                "request_headers": {"set": {"x-consumer-id": "{consumer}"}, "remove": ["X-Debug"],
                                    "append": {"x-trail": "tollgate"}}}]
        });
        let plan = Plan::from_json(config.to_string().as_bytes()).unwrap();
        let header =
            |name: &str| json!({"name": name, "in": "header", "schema": {"type": "string"}});
        let doc = json!({"openapi": "3.1.0", "paths": {"/p": {"get": {"parameters": [
            header("x-key"), header("Authorization"), header("X-Consumer-Id"), header("x-debug"),
            header("x-user-oid"), header("x-trail"), header("x-request-note"),
            {"name": "key", "in": "query", "schema": {"type": "string"}},
            {"name": "q", "in": "query", "schema": {"type": "string"}},
            {"name": "session", "in": "cookie", "schema": {"type": "string"}}
        ], "responses": {}}}}});
        let api = map(&plan, &doc);
        let (kept, hidden) = kept(&api.exposed[0], &doc, &Owned::of(&plan));
        assert_eq!(names(&kept), ["x-trail", "x-request-note", "q"]);
        assert_eq!(hidden.len(), 7);
    }

    #[test]
    fn a_segment_pattern_folds_fastapis_in_and_leaves_others_alone() {
        assert_eq!(with_segment(None), SEGMENT);
        assert_eq!(with_segment(Some(SEGMENT)), SEGMENT);
        assert_eq!(
            with_segment(Some("a|b")),
            r"^(?!\.{1,2}$)(?=[^/\\]+$)(?=[\s\S]*?(?:a|b))"
        );
        assert_eq!(leading_flags("(?im)x"), ("(?im)", "x"));
        assert_eq!(leading_flags("(?:x)"), ("", "(?:x)"));
        assert_eq!(leading_flags("(?"), ("", "(?"));
        for good in ["a", "a.b", "...", "%2F", "INV-1"] {
            assert!(is_segment(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a\\b", "/"] {
            assert!(!is_segment(bad), "{bad}");
        }
        let mut schema = json!({"type": ["integer", "null"]});
        restrict_path_schema(&mut schema, &json!({}));
        assert!(schema.get("pattern").is_none());
        let mut schema = json!({"anyOf": [{"type": "integer"}, {"type": "string"}]});
        restrict_path_schema(&mut schema, &json!({}));
        assert_eq!(schema["pattern"], SEGMENT);
    }

    #[test]
    fn operation_parameters_override_the_path_items_and_refs_resolve() {
        let plan = Plan::from_json(
            br#"{"operations": [{"name": "op", "path_prefix": "/p", "auth": "none"}]}"#,
        )
        .unwrap();
        let doc = json!({"openapi": "3.1.0",
            "components": {"parameters": {"Limit": {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                                          "Loop": {"$ref": "#/components/parameters/Loop"}}},
            "paths": {"/p/{id}": {
                "parameters": [{"name": "id", "in": "path", "description": "old", "schema": {"type": "string"}}],
                "get": {"parameters": [
                    {"name": "id", "in": "path", "description": "new", "required": true, "schema": {"type": "string"}},
                    {"$ref": "#/components/parameters/Limit"},
                    {"$ref": "#/components/parameters/Loop"},
                    {"$ref": "#/components/parameters/Missing"}
                ], "responses": {}}}}});
        let api = map(&plan, &doc);
        let (kept, _) = kept(&api.exposed[0], &doc, &Owned::of(&plan));
        assert_eq!(names(&kept), ["id", "limit"]);
        assert_eq!(kept[0]["description"], "new");
    }
}
