//! Reading the OpenAPI document as FastAPI wrote it (`serde_json::Value`: typed OpenAPI crates
//! drop `const`, `examples` and `contentMediaType`).

use serde_json::Value;

/// `value`, or what its local `$ref` (`#/components/...`) names. A chain of references ends
/// within a few hops; a loop or a dangling reference gives `None` rather than hanging.
pub(crate) fn resolve<'a>(value: &'a Value, openapi: &'a Value) -> Option<&'a Value> {
    let mut current = value;
    for _ in 0..8 {
        match current.get("$ref").and_then(Value::as_str) {
            Some(reference) => current = openapi.pointer(reference.strip_prefix('#')?)?,
            None => return Some(current),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_resolve_and_loops_end() {
        let doc = json!({"components": {"schemas": {
            "A": {"$ref": "#/components/schemas/B"}, "B": {"type": "string"},
            "Loop": {"$ref": "#/components/schemas/Loop"}}}});
        let a = json!({"$ref": "#/components/schemas/A"});
        assert_eq!(resolve(&a, &doc), Some(&json!({"type": "string"})));
        assert_eq!(
            resolve(&json!({"$ref": "#/components/schemas/Loop"}), &doc),
            None
        );
        assert_eq!(resolve(&json!({"$ref": "#/nowhere"}), &doc), None);
        assert_eq!(resolve(&json!({"$ref": "other.json#/x"}), &doc), None);
    }
}
