//! Only the schemas the public operations use: a model that only an internal endpoint takes
//! must not show up in the connector (nor its conversion warnings).

use crate::connector::schema::definition_name;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

const COMPONENTS: &str = "#/components/schemas/";
const DEFINITIONS: &str = "#/definitions/";

/// Every `$ref` under `value` that starts with `prefix`, without the prefix.
fn refs_in(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(prefix))
            {
                out.insert(name.to_string());
            }
            map.values().for_each(|v| refs_in(v, prefix, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, prefix, out)),
        _ => {}
    }
}

/// `components.schemas` names reached from `roots` (refs `#/components/schemas/...`, or
/// `#/definitions/...` when the roots are already converted), and from those in turn.
fn closure(roots: &Value, converted: bool, openapi: &Value) -> BTreeSet<String> {
    let empty = Map::new();
    let schemas = openapi
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut pending = BTreeSet::new();
    if converted {
        let mut names = BTreeSet::new();
        refs_in(roots, DEFINITIONS, &mut names);
        pending.extend(
            schemas
                .keys()
                .filter(|name| names.contains(&definition_name(name)))
                .cloned(),
        );
    } else {
        // Bodies, responses and parameters may sit in components too, naming schemas in turn.
        let mut refs = BTreeSet::new();
        refs_in(roots, "#/components/", &mut refs);
        let mut seen = BTreeSet::new();
        while let Some(reference) = refs.pop_first() {
            if let Some(name) = reference.strip_prefix("schemas/") {
                pending.insert(name.to_string());
            } else if seen.insert(reference.clone()) {
                if let Some(target) = openapi.pointer(&format!("/components/{reference}")) {
                    let mut more = BTreeSet::new();
                    refs_in(target, "#/components/", &mut more);
                    refs.extend(more.into_iter().filter(|r| !seen.contains(r)));
                }
            }
        }
    }
    let mut reached = BTreeSet::new();
    while let Some(name) = pending.pop_first() {
        if !reached.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = schemas.get(&name) {
            let mut next = BTreeSet::new();
            refs_in(schema, COMPONENTS, &mut next);
            pending.extend(next.into_iter().filter(|n| !reached.contains(n)));
        }
    }
    reached
}

/// The OpenAPI document with only the `components.schemas` that `roots` use.
pub(crate) fn with_used_schemas(openapi: &Value, roots: &Value, converted: bool) -> Value {
    let used = closure(roots, converted, openapi);
    let mut pruned = openapi.clone();
    if let Some(schemas) = pruned
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        schemas.retain(|name, _| used.contains(name));
    }
    pruned
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({"components": {"schemas": {
            "Invoice-Input": {"properties": {"lines": {"items": {"$ref": "#/components/schemas/Line"}}}},
            "Line": {"properties": {"self": {"$ref": "#/components/schemas/Line"}}},
            "Internal": {"type": "object"}
        }}})
    }

    #[test]
    fn schemas_used_by_converted_paths_and_what_they_use() {
        let paths = json!({"/v": {"post": {"parameters": [{"schema": {"$ref": "#/definitions/Invoice_Input"}}]}}});
        let pruned = with_used_schemas(&doc(), &paths, true);
        let names: Vec<&String> = pruned["components"]["schemas"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .collect();
        assert_eq!(names, ["Invoice-Input", "Line"]);
    }

    #[test]
    fn schemas_named_by_components_that_paths_use() {
        let mut doc = doc();
        doc["components"]["requestBodies"] = json!({"B": {"content": {"application/json":
            {"schema": {"$ref": "#/components/schemas/Line"}}}}});
        let paths =
            json!({"/l": {"post": {"requestBody": {"$ref": "#/components/requestBodies/B"}}}});
        let pruned = with_used_schemas(&doc, &paths, false);
        let names: Vec<&String> = pruned["components"]["schemas"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .collect();
        assert_eq!(names, ["Line"]);
    }

    #[test]
    fn schemas_used_by_openapi_paths() {
        let paths = json!({"/l": {"get": {"responses": {"200": {"content": {"application/json":
            {"schema": {"$ref": "#/components/schemas/Line"}}}}}}}});
        let pruned = with_used_schemas(&doc(), &paths, false);
        let names: Vec<&String> = pruned["components"]["schemas"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .collect();
        assert_eq!(names, ["Line"]);
        assert!(with_used_schemas(&json!({}), &paths, false)
            .get("components")
            .is_none());
    }
}
