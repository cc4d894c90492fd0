//! The parameters a caller of the public API gives: FastAPI's, minus what tollgate owns — the
//! subscription key (header and query), `Authorization`, cookies (a connector cannot send
//! them), and every header tollgate sets or removes on the way in (a client value there never
//! reaches the backend, so asking for it would mislead).

use crate::connector::document::resolve;
use crate::connector::public_api::Exposed;
use crate::plan::Plan;
use serde_json::{Map, Value};
use std::collections::HashMap;

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
    exposed: &Exposed<'a>,
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
