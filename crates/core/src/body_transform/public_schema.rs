//! `request_body.public_schema` / `response_body.public_schema`: the body as the public sends or
//! receives it when a transform stands between it and the backend's model. Checked at load as a
//! JSON Schema object the connector can use: an object whose keywords have their JSON Schema
//! types, all the way down (at most 32 levels).

use serde_json::Value;

/// Deepest schema accepted.
const MAX_DEPTH: usize = 32;

const TYPES: [&str; 7] = [
    "object", "array", "string", "number", "integer", "boolean", "null",
];

/// `Ok` for a usable JSON Schema object; else what is wrong, and where (`properties.a.type`).
pub fn check_public_schema(schema: &Value) -> Result<(), String> {
    check(schema, "", 0)
}

fn check(schema: &Value, at: &str, depth: usize) -> Result<(), String> {
    let place = |key: &str| {
        if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        }
    };
    let here = if at.is_empty() { "the schema" } else { at };
    if depth > MAX_DEPTH {
        return Err(format!("{here}: nested more than {MAX_DEPTH} levels"));
    }
    let Some(object) = schema.as_object() else {
        return Err(format!("{here}: must be a JSON Schema object"));
    };
    for (key, value) in object {
        let at = place(key);
        match key.as_str() {
            "type" => {
                let known = |v: &Value| v.as_str().is_some_and(|t| TYPES.contains(&t));
                let ok = match value {
                    Value::Array(types) => !types.is_empty() && types.iter().all(known),
                    other => known(other),
                };
                if !ok {
                    return Err(format!("{at}: must be one of {}", TYPES.join(", ")));
                }
            }
            "properties" | "patternProperties" | "definitions" | "$defs" => {
                let Some(members) = value.as_object() else {
                    return Err(format!("{at}: must be an object of schemas"));
                };
                for (name, member) in members {
                    check(member, &format!("{at}.{name}"), depth + 1)?;
                }
            }
            "items" | "additionalProperties" | "not" | "contains" | "propertyNames"
                if !value.is_boolean() =>
            {
                check(value, &at, depth + 1)?;
            }
            "allOf" | "anyOf" | "oneOf" => {
                let Some(schemas) = value.as_array().filter(|s| !s.is_empty()) else {
                    return Err(format!("{at}: must be a non-empty array of schemas"));
                };
                for (i, member) in schemas.iter().enumerate() {
                    check(member, &format!("{at}[{i}]"), depth + 1)?;
                }
            }
            "required" | "enum" => {
                if !value.is_array() {
                    return Err(format!("{at}: must be an array"));
                }
                if key == "required"
                    && !value.as_array().into_iter().flatten().all(Value::is_string)
                {
                    return Err(format!("{at}: must be an array of property names"));
                }
            }
            "title" | "description" | "format" | "pattern" | "$ref" if !value.is_string() => {
                return Err(format!("{at}: must be a string"));
            }
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" | "multipleOf"
            | "minLength" | "maxLength" | "minItems" | "maxItems"
                if !value.is_number() =>
            {
                return Err(format!("{at}: must be a number"));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_public_schema;
    use serde_json::json;

    #[test]
    fn a_usable_schema_passes() {
        let schema = json!({ "type": "object", "required": ["InvoiceNumber"],
            "properties": { "InvoiceNumber": { "type": "string", "title": "Invoice number" },
                            "Total": { "type": ["number", "string"] },
                            "Lines": { "type": "array", "items": { "type": "object" } } } });
        assert_eq!(check_public_schema(&schema), Ok(()));
        assert_eq!(check_public_schema(&json!({})), Ok(()));
    }

    #[test]
    fn what_is_wrong_is_named_with_its_place() {
        for (schema, expected) in [
            (json!("object"), "the schema: must be a JSON Schema object"),
            (json!({ "type": "text" }), "type: must be one of"),
            (
                json!({ "properties": { "a": { "type": 5 } } }),
                "properties.a.type: must be one of",
            ),
            (
                json!({ "properties": { "a": [] } }),
                "properties.a: must be a JSON Schema object",
            ),
            (json!({ "required": "a" }), "required: must be an array"),
            (
                json!({ "required": [1] }),
                "required: must be an array of property names",
            ),
            (json!({ "items": 3 }), "items: must be a JSON Schema object"),
            (json!({ "maxLength": "3" }), "maxLength: must be a number"),
        ] {
            let err = check_public_schema(&schema).unwrap_err();
            assert!(err.starts_with(expected), "{schema}: {err}");
        }
        let mut deep = json!({ "type": "string" });
        for _ in 0..40 {
            deep = json!({ "items": deep });
        }
        assert!(check_public_schema(&deep)
            .unwrap_err()
            .contains("nested more than"));
    }
}
