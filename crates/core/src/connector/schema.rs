//! OpenAPI 3.1 schemas (as FastAPI/pydantic 2 write them) → Swagger 2.0 schemas that Power
//! Platform's `apiDefinition.swagger.schema.json` accepts. Pure functions over `serde_json::Value`;
//! `serde_json::Map` is a BTreeMap in this workspace (no `preserve_order`), so output key order is
//! sorted and the output deterministic.
//!
//! Recursion always ends: `#/components/schemas/` refs stay refs, and where refs are followed
//! (union merging, other local refs, parameters) a stack of the refs and unions being expanded
//! stops a second visit, with a depth limit behind it. The work and the output are bounded too:
//! each conversion, and the whole run (`Notes`), may take so many steps and copy so many bytes
//! of referenced schema, whatever the refs.

use crate::connector::notes::{shorten, written_size, Notes};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

/// `#/definitions/format` of the connector schema: a `format` outside this list fails it.
const FORMATS: &[&str] = &[
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "binary",
    "date",
    "date-time",
    "password",
    "date-no-tz",
    "email",
    "html",
    "uri",
    "uuid",
];

/// The `x-ms-*` keys kept from FastAPI's schemas (`json_schema_extra`), with the values Power
/// Platform takes: a field's label and its visibility. Other `x-ms-*` keys (dynamic values,
/// notifications) name operations of a connector this is not, and are dropped.
fn keeps_x_ms(key: &str, value: &Value) -> bool {
    match key {
        "x-ms-summary" => value.is_string(),
        "x-ms-visibility" => matches!(value.as_str(), Some("important" | "advanced" | "internal")),
        _ => false,
    }
}

/// JSON Schema types Swagger 2.0 schemas may name (`null` becomes `x-nullable`).
const TYPES: &[&str] = &["string", "number", "integer", "boolean", "array", "object"];

/// What a non-body parameter and its `items` may carry (`primitivesItems` and the
/// `*ParameterSubSchema`s of the connector schema), apart from `items`/`collectionFormat`.
const PARAMETER_KEYS: &[&str] = &[
    "type",
    "format",
    "default",
    "enum",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "multipleOf",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
];

/// Keys that describe rather than constrain: when a union's result is folded into its parent,
/// the parent's own values for these win instead of counting as a conflict.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "example",
    "examples",
    "readOnly",
    "writeOnly",
    "deprecated",
    "$comment",
    "discriminator",
];

/// Deeper nesting than any real model; bounds the stack on hostile or cyclic input.
const MAX_DEPTH: usize = 48;
/// Steps (schemas converted, refs followed) one conversion may take. Depth alone does not bound
/// the work: a ref reached along several branches is followed along each, so a 2 KB document
/// of refs four wide can ask for 4^n steps.
const MAX_STEPS: usize = 20_000;
/// Bytes of referenced schema one conversion may copy. Steps alone do not bound the output:
/// each step can copy a large target (an enum of thousands of values) once more.
const MAX_BYTES: usize = 4 << 20;
const TOO_LARGE: &str =
    "schema too large to convert (too many refs to follow, or too much to copy); the rest left unconstrained";

const COMPONENTS: &str = "#/components/schemas/";

/// A components/schemas name as a Swagger definitions name: every char outside [A-Za-z0-9_]
/// becomes '_' (pydantic 2 names `X-Input`/`X-Output`).
pub(crate) fn definition_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `#/definitions/...` for all of the document's `components.schemas`, converted; empty map if
/// none. Two names that sanitise alike keep the first (sorted by original name), with a warning.
pub(crate) fn definitions(openapi: &Value, notes: &mut Notes) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(Value::Object(schemas)) = openapi.pointer("/components/schemas") else {
        return out;
    };
    let mut cx = Cx::new(openapi, notes);
    for (name, schema) in schemas {
        let definition = definition_name(name);
        if out.contains_key(&definition) {
            cx.warn(
                &format!("schema {name}"),
                &format!("another schema is already definition `{definition}`; left out"),
            );
            continue;
        }
        let at = format!("schema {}", shorten(name, 80));
        // Each definition is a conversion of its own, with its own share of the budget.
        let converted = cx.whole(|cx| cx.convert(schema, &at));
        out.insert(definition, converted.unwrap_or_else(|| json!({})));
    }
    out
}

/// Any OpenAPI 3.1 schema (body, response, property) → a Swagger 2.0 schema object Power
/// Platform accepts. `openapi` resolves refs when unions of models are merged; `context` (e.g.
/// "POST /items body") starts each warning.
pub(crate) fn body_schema(
    schema: &Value,
    openapi: &Value,
    context: &str,
    notes: &mut Notes,
) -> Value {
    Cx::new(openapi, notes)
        .whole(|cx| cx.convert(schema, context))
        .unwrap_or_else(|| json!({}))
}

/// A non-body parameter's schema → the Swagger 2.0 parameter fields (`type`, `format`, `items`,
/// `enum`, `default`, `x-nullable`, bounds, `collectionFormat`). `location` is the Swagger `in`:
/// arrays are `multi` in `query` and `formData` (repeated keys, as FastAPI reads them), `csv`
/// elsewhere; in `formData` an uploaded file is `type: file`. Refs are resolved (FastAPI writes
/// enum query parameters as refs to components); objects and other leftovers become strings.
pub(crate) fn parameter_fields(
    schema: &Value,
    openapi: &Value,
    location: &str,
    context: &str,
    notes: &mut Notes,
) -> Map<String, Value> {
    let mut cx = Cx::new(openapi, notes);
    let fields = cx.whole(|cx| {
        let inlined = cx.inline(schema, context);
        let converted = cx.convert(&inlined, context);
        Value::Object(cx.parameter(&converted, location, context))
    });
    match fields {
        Some(Value::Object(fields)) => fields,
        // Past the run's budget: what any value fits.
        _ => as_map(&json!({ "type": "string" })),
    }
}

/// What a schema describes, for deciding how a union of several collapses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind<'a> {
    Object,
    Array,
    Primitive(&'a str),
    Any,
}

struct Cx<'a> {
    doc: &'a Value,
    notes: &'a mut Notes,
    depth: usize,
    /// Unions being merged and refs being followed, outermost first: meeting one again is a cycle.
    active: Vec<String>,
    /// What is left of `MAX_STEPS`; at zero the rest is left unconstrained, with one warning.
    steps_left: usize,
    /// What is left of `MAX_BYTES`.
    bytes_left: usize,
    /// Whether this conversion has warned of `MAX_DEPTH`.
    said_too_deep: bool,
}

/// A `$ref` that could not be followed.
enum Unfollowed {
    /// It names nothing in the document.
    Dangling,
    /// Its target would take more than the budget has left; the conversion stops.
    Spent,
}

impl<'a> Cx<'a> {
    fn new(doc: &'a Value, notes: &'a mut Notes) -> Self {
        Cx {
            doc,
            notes,
            depth: 0,
            active: Vec::new(),
            steps_left: MAX_STEPS,
            bytes_left: MAX_BYTES,
            said_too_deep: false,
        }
    }

    /// One level deeper, within `MAX_DEPTH` and the step budget; false (with a warning) when
    /// the schema must be left unconstrained. The caller leaves with `self.depth -= 1`.
    fn enter(&mut self, at: &str) -> bool {
        if self.depth >= MAX_DEPTH {
            // Said once per conversion, and paid for: a wide schema can be cut here thousands
            // of times.
            if !self.said_too_deep {
                self.said_too_deep = true;
                self.warn(at, "schema nested too deeply; left unconstrained");
            }
            self.step(at);
            return false;
        }
        if !self.step(at) {
            return false;
        }
        self.depth += 1;
        true
    }

    /// Takes one step of the budget; false (and a warning the first time) when none is left.
    fn step(&mut self, at: &str) -> bool {
        if self.steps_left == 0 {
            return false;
        }
        if !self.notes.take_step() {
            // The run's budget is spent; `Notes` has said so once for the whole run.
            self.steps_left = 0;
            return false;
        }
        self.steps_left -= 1;
        if self.steps_left == 0 {
            self.warn(at, TOO_LARGE);
            return false;
        }
        true
    }

    /// The target of a local `$ref`, its size taken from the byte budget: the caller copies it.
    fn follow(&mut self, reference: &str, at: &str) -> Result<&'a Value, Unfollowed> {
        if self.steps_left == 0 {
            return Err(Unfollowed::Spent);
        }
        let target = self.resolve(reference).ok_or(Unfollowed::Dangling)?;
        let size = self.notes.size_of(reference, target);
        if size > self.bytes_left {
            self.warn(at, TOO_LARGE);
            self.steps_left = 0;
            return Err(Unfollowed::Spent);
        }
        if !self.notes.take_bytes(size) {
            self.steps_left = 0;
            return Err(Unfollowed::Spent);
        }
        self.bytes_left -= size;
        Ok(target)
    }

    fn warn(&mut self, at: &str, message: &str) {
        self.notes.push(format!("{at}: {message}"));
    }

    /// One whole conversion, with a budget of its own, its output charged to the run's: None
    /// when the run's budget is spent, before or by this output.
    fn whole(&mut self, convert: impl FnOnce(&mut Self) -> Value) -> Option<Value> {
        if self.notes.spent() {
            return None;
        }
        self.steps_left = MAX_STEPS;
        self.bytes_left = MAX_BYTES;
        self.said_too_deep = false;
        self.depth = 0;
        self.active.clear();
        let out = convert(self);
        self.notes.take_bytes(written_size(&out)).then_some(out)
    }

    fn convert(&mut self, schema: &Value, at: &str) -> Value {
        let map = match schema {
            Value::Object(map) => map,
            Value::Bool(true) => return json!({}),
            _ => {
                self.warn(at, "not a usable schema; left unconstrained");
                return json!({});
            }
        };
        if !self.enter(at) {
            return json!({});
        }
        let active = self.active.len();
        // Copied only when there is a union or a null marker to take out: a copy at every level
        // would copy a deep schema once per level.
        let (map, nullable) = match needs_flattening(map) {
            true => {
                let (map, nullable) = self.flatten(map.clone(), at);
                (Cow::Owned(map), nullable)
            }
            false => (Cow::Borrowed(map), false),
        };
        // Unions merged by `flatten` stay active while their merged properties are converted.
        let out = self.keywords(&map, nullable, at);
        self.active.truncate(active);
        self.depth -= 1;
        Value::Object(out)
    }

    /// Removes `anyOf`/`oneOf`, type lists and null markers; returns the schema and whether null
    /// was allowed.
    fn flatten(&mut self, mut map: Map<String, Value>, at: &str) -> (Map<String, Value>, bool) {
        let mut nullable = false;
        // A variant folded into `map` may bring a union of its own.
        for _ in 0..MAX_DEPTH {
            nullable |= take_null_markers(&mut map);
            let mut unions = Vec::new();
            if let Some(Value::Array(types)) = map.get("type") {
                unions.push(
                    types
                        .iter()
                        .map(|t| json!({ "type": t }))
                        .collect::<Vec<_>>(),
                );
                map.remove("type");
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(variants)) = map.remove(key) {
                    unions.push(variants);
                }
            }
            if unions.is_empty() {
                break;
            }
            for variants in unions {
                let (merged, null) = self.union(variants, at);
                nullable |= null;
                fold_into(&mut map, merged);
            }
        }
        (map, nullable)
    }

    /// One schema for a union: null variants → nullable, one left → it, several → merged.
    fn union(&mut self, variants: Vec<Value>, at: &str) -> (Map<String, Value>, bool) {
        let mut flat = Vec::new();
        self.expand(variants, &mut flat, 0);
        let mut nullable = false;
        let mut rest: Vec<Value> = Vec::new();
        // By text, in one pass: thousands of variants compared pairwise would take minutes.
        let mut seen = HashSet::new();
        for variant in flat {
            if is_null_schema(&variant) {
                nullable = true;
            } else if seen.insert(variant.to_string()) {
                rest.push(variant);
            }
        }
        match rest.as_slice() {
            [] => (Map::new(), nullable),
            [one] => (as_map(one), nullable),
            _ => (self.merge(&rest, at), nullable),
        }
    }

    /// Variants that are themselves unions (inline or behind a ref) become variants here.
    fn expand(&mut self, variants: Vec<Value>, out: &mut Vec<Value>, depth: usize) {
        for variant in variants {
            if depth < 8 && self.step("union") {
                let reference = match variant.get("$ref").and_then(Value::as_str) {
                    Some(r) if is_bare_ref(&variant) => Some(r),
                    _ => None,
                };
                let target = reference.and_then(|r| self.resolve(r)).unwrap_or(&variant);
                if let Some(inner) = pure_union(target) {
                    // Only a union's variants are copied, and only then charged.
                    let paid = match reference {
                        Some(r) => self.follow(r, "union").is_ok(),
                        None => true,
                    };
                    if paid {
                        self.expand(inner, out, depth + 1);
                        continue;
                    }
                }
            }
            out.push(variant);
        }
    }

    /// Several non-null variants → one schema Power Platform can show.
    fn merge(&mut self, variants: &[Value], at: &str) -> Map<String, Value> {
        // Order-free, so `X | Y` inside `Y | X` counts as the same union.
        let mut key: Vec<String> = variants.iter().map(Value::to_string).collect();
        key.sort_unstable();
        let key = key.join("|");
        if self.active.contains(&key) {
            self.warn(at, "recursive union cannot be merged; left unconstrained");
            return Map::new();
        }
        self.active.push(key);
        let resolved: Vec<Map<String, Value>> = variants
            .iter()
            .map(|v| self.resolve_shallow(v, 0))
            .collect();
        let kinds: Vec<Kind> = resolved.iter().map(kind_of).collect();
        let names = variants
            .iter()
            .zip(&kinds)
            .map(|(v, k)| variant_name(v, *k))
            .collect::<Vec<_>>();
        let names = names.join(" | ");
        if kinds.iter().all(|k| *k == Kind::Object) {
            self.warn(
                at,
                &format!(
                    "union {names} merged into one object (all properties; required only where every variant requires it)"
                ),
            );
            return merge_objects(&resolved);
        }
        if kinds.iter().all(|k| *k == Kind::Array) {
            let mut items: Vec<Value> = Vec::new();
            for m in &resolved {
                let item = m.get("items").cloned().unwrap_or_else(|| json!({}));
                if !items.contains(&item) {
                    items.push(item);
                }
            }
            let items = match items.as_slice() {
                [one] => one.clone(),
                _ => json!({ "anyOf": items }),
            };
            return as_map(&json!({ "type": "array", "items": items }));
        }
        let primitives: Vec<&str> = kinds
            .iter()
            .filter_map(|k| {
                if let Kind::Primitive(t) = k {
                    Some(*t)
                } else {
                    None
                }
            })
            .collect();
        if primitives.len() == kinds.len() {
            if let Some(first) = primitives.first().copied() {
                if primitives.iter().all(|t| *t == first) {
                    return merge_same_type(&resolved, first);
                }
                if primitives.iter().all(|t| *t == "integer" || *t == "number") {
                    return merge_same_type(&resolved, "number");
                }
            }
            // e.g. pydantic's Decimal (number | string): a string carries every value.
            self.warn(at, &format!("union {names} emitted as string"));
            return as_map(&json!({ "type": "string" }));
        }
        self.warn(
            at,
            &format!("union {names} has no Swagger 2.0 form; left unconstrained"),
        );
        Map::new()
    }

    /// A variant with its refs followed and `allOf` folded, for merging (not for output).
    fn resolve_shallow(&mut self, schema: &Value, depth: usize) -> Map<String, Value> {
        let mut map = as_map(schema);
        if depth >= 8 || !self.step("union") {
            return map;
        }
        if let Some(r) = map
            .remove("$ref")
            .and_then(|r| r.as_str().map(str::to_owned))
        {
            if let Ok(target) = self.follow(&r, "union") {
                for (k, v) in self.resolve_shallow(target, depth + 1) {
                    map.entry(k).or_insert(v);
                }
            }
        }
        if let Some(Value::Array(members)) = map.remove("allOf") {
            for member in members {
                let member = self.resolve_shallow(&member, depth + 1);
                fold_object(&mut map, member);
            }
        }
        map
    }

    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        self.doc.pointer(reference.strip_prefix('#')?)
    }

    /// The Swagger 2.0 keywords of a schema already free of unions.
    fn keywords(
        &mut self,
        map: &Map<String, Value>,
        nullable: bool,
        at: &str,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        for (key, value) in map {
            let keep = match key.as_str() {
                "type" => value.as_str().is_some_and(|t| TYPES.contains(&t)),
                "format" => {
                    if let Some(format) = value.as_str().and_then(power_platform_format) {
                        out.insert(key.clone(), json!(format));
                    }
                    false
                }
                "title" | "description" | "pattern" => value.is_string(),
                "default" | "example" => !value.is_null(),
                "examples" => {
                    let first = value
                        .as_array()
                        .and_then(|a| a.first())
                        .filter(|v| !v.is_null());
                    if let (Some(first), false) = (first, map.contains_key("example")) {
                        out.insert("example".to_owned(), first.clone());
                    }
                    false
                }
                "multipleOf" => value.as_f64().is_some_and(|m| m > 0.0),
                "maxLength" | "minLength" | "maxItems" | "minItems" | "maxProperties"
                | "minProperties" => value.is_u64(),
                "uniqueItems" | "readOnly" => value.is_boolean(),
                "required" => {
                    let mut names: Vec<Value> = Vec::new();
                    for name in value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|n| n.is_string())
                    {
                        if !names.contains(name) {
                            names.push(name.clone());
                        }
                    }
                    if !names.is_empty() {
                        out.insert(key.clone(), Value::Array(names));
                    }
                    false
                }
                "additionalProperties" => {
                    if value.is_object() {
                        let converted = self.convert(value, &deeper(at, ".*"));
                        out.insert(key.clone(), converted);
                    }
                    value.is_boolean()
                }
                "items" => {
                    // A 3.1 `items` is one schema; `false` (closed tuple) has no 2.0 form.
                    if value.is_object() || value == &Value::Bool(true) {
                        let converted = self.convert(value, &deeper(at, "[]"));
                        out.insert(key.clone(), converted);
                    }
                    false
                }
                "allOf" => {
                    let members: Vec<Value> = value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|m| self.convert(m, at))
                        .collect();
                    if !members.is_empty() {
                        out.insert(key.clone(), Value::Array(members));
                    }
                    false
                }
                "properties" => {
                    if let Some(properties) = value.as_object() {
                        let mut converted = Map::new();
                        for (name, property) in properties {
                            let property = self
                                .convert(property, &deeper(at, &format!(".{}", shorten(name, 60))));
                            converted.insert(name.clone(), property);
                        }
                        out.insert(key.clone(), Value::Object(converted));
                    }
                    false
                }
                // Swagger's own objects, whose members the converter does not check.
                "xml" | "externalDocs" => false,
                k if k.starts_with("x-ms-") => keeps_x_ms(k, value),
                k => k.starts_with("x-"),
            };
            if keep {
                out.insert(key.clone(), value.clone());
            }
        }
        self.enumeration(map, &mut out, at);
        bound(map, &mut out, "minimum", "exclusiveMinimum", |x, m| x >= m);
        bound(map, &mut out, "maximum", "exclusiveMaximum", |x, m| x <= m);
        if let Some(Value::Array(prefix)) = map.get("prefixItems") {
            if !map.get("items").is_some_and(Value::is_object) {
                self.warn(at, "tuple emitted as an array of one item schema");
                let items = self.convert(&json!({ "anyOf": prefix }), &deeper(at, "[]"));
                out.insert("items".to_owned(), items);
            }
        }
        if map.contains_key("contentMediaType") || map.contains_key("contentEncoding") {
            // FastAPI writes UploadFile and bytes as a string with `contentMediaType:
            // application/octet-stream`; pydantic's `Json[...]` as `application/json` text.
            let encoding = map.get("contentEncoding").and_then(Value::as_str);
            let media = map
                .get("contentMediaType")
                .and_then(Value::as_str)
                .unwrap_or("");
            out.insert("type".to_owned(), json!("string"));
            if matches!(encoding, Some("base64" | "base64url")) {
                out.insert("format".to_owned(), json!("byte"));
            } else if is_text(media) {
                out.remove("format");
            } else {
                out.insert("format".to_owned(), json!("binary"));
            }
        }
        if !out.contains_key("type") {
            if out.contains_key("properties") || out.contains_key("additionalProperties") {
                out.insert("type".to_owned(), json!("object"));
            } else if out.contains_key("items") {
                out.insert("type".to_owned(), json!("array"));
            }
        }
        if out.get("type") == Some(&json!("array")) && !out.contains_key("items") {
            out.insert("items".to_owned(), json!({}));
        }
        if out.get("default").is_some_and(|d| !fits(d, &out)) {
            // A union collapsed to one type can leave a default of another (`int | str = 0`).
            out.remove("default");
        }
        if let Some(name) = map.get("discriminator").and_then(Value::as_str) {
            // Swagger 2.0's discriminator must be a required property; OpenAPI 3's object form
            // (pydantic's tagged unions) has no 2.0 meaning once the union is merged.
            let listed = |key: &str| match out.get(key) {
                Some(Value::Array(names)) => names.iter().any(|n| n == name),
                Some(Value::Object(props)) => props.contains_key(name),
                _ => false,
            };
            if listed("required") && listed("properties") {
                out.insert("discriminator".to_owned(), json!(name));
            }
        }
        if nullable {
            out.insert("x-nullable".to_owned(), json!(true));
        }
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            let target = self.reference(reference, at);
            if out.is_empty() {
                return match target {
                    Value::Object(target) => target,
                    _ => Map::new(),
                };
            }
            // Swagger 2.0 ignores a ref's siblings, so they stay beside an allOf.
            let mut members = vec![target];
            if let Some(Value::Array(rest)) = out.remove("allOf") {
                members.extend(rest);
            }
            out.insert("allOf".to_owned(), Value::Array(members));
        }
        out
    }

    /// `enum` and `const` → a non-empty, duplicate-free `enum`, with a type when all values agree.
    fn enumeration(&mut self, map: &Map<String, Value>, out: &mut Map<String, Value>, at: &str) {
        let mut values: Option<Vec<Value>> = map
            .get("enum")
            .and_then(Value::as_array)
            .map(|vs| unique(vs.iter().filter(|v| !v.is_null()).cloned()));
        if let Some(c) = map.get("const").filter(|c| !c.is_null()) {
            if values.as_ref().is_some_and(|vs| !vs.contains(c)) {
                self.warn(at, "`const` is not among the `enum` values; kept the const");
            }
            values = Some(vec![c.clone()]);
        }
        let Some(values) = values.filter(|vs| !vs.is_empty()) else {
            return;
        };
        if !out.contains_key("type") {
            let types: Vec<&str> = values.iter().map(json_type).collect();
            if let Some(first) = types.first().copied() {
                if types.iter().all(|t| *t == first) {
                    out.insert("type".to_owned(), json!(first));
                }
            }
        }
        out.insert("enum".to_owned(), Value::Array(values));
    }

    /// A `$ref` as Swagger 2.0 can say it: components become definitions; any other local
    /// pointer is converted in place, once per chain.
    fn reference(&mut self, reference: &str, at: &str) -> Value {
        if let Some(name) = reference
            .strip_prefix(COMPONENTS)
            .filter(|n| !n.contains('/'))
        {
            let name = name.replace("~1", "/").replace("~0", "~");
            return json!({ "$ref": format!("#/definitions/{}", definition_name(&name)) });
        }
        if reference.starts_with("#/definitions/") {
            return json!({ "$ref": reference });
        }
        if self.active.iter().any(|a| a == reference) {
            self.warn(
                at,
                &format!("recursive $ref `{reference}`; left unconstrained"),
            );
            return json!({});
        }
        let target = match self.follow(reference, at) {
            Ok(target) => target,
            Err(Unfollowed::Spent) => return json!({}),
            Err(Unfollowed::Dangling) => {
                self.warn(
                    at,
                    &format!("cannot resolve $ref `{reference}`; left unconstrained"),
                );
                return json!({});
            }
        };
        self.active.push(reference.to_owned());
        let converted = self.convert(target, at);
        self.active.pop();
        converted
    }

    /// For parameters: refs replaced by their targets (along unions, `allOf` and `items`, the
    /// only places a parameter's shape can come from), each ref once per chain.
    fn inline(&mut self, schema: &Value, at: &str) -> Value {
        let Value::Object(original) = schema else {
            return schema.clone();
        };
        if !self.enter(at) {
            return json!({});
        }
        let active = self.active.len();
        // The target first, its ref active while the siblings are inlined; each piece is
        // copied once (inlining an inlined target again would copy a large leaf at every hop).
        let mut from_ref = Map::new();
        if let Some(reference) = original.get("$ref").and_then(Value::as_str) {
            if self.active.iter().any(|a| a == reference) {
                self.warn(
                    at,
                    &format!("recursive $ref `{reference}`; left unconstrained"),
                );
            } else {
                match self.follow(reference, at) {
                    Ok(target) => {
                        self.active.push(reference.to_owned());
                        if let Value::Object(target) = self.inline(target, at) {
                            from_ref = target;
                        }
                    }
                    Err(Unfollowed::Dangling) => self.warn(
                        at,
                        &format!("cannot resolve $ref `{reference}`; left unconstrained"),
                    ),
                    Err(Unfollowed::Spent) => {}
                }
            }
        }
        let mut map = Map::new();
        let mut members: &[Value] = &[];
        for (key, value) in original {
            match (key.as_str(), value) {
                ("$ref", _) => {}
                ("allOf", value) => {
                    if let Value::Array(list) = value {
                        members = list;
                    }
                }
                ("anyOf" | "oneOf", Value::Array(variants)) => {
                    let inlined = variants.iter().map(|v| self.inline(v, at)).collect();
                    map.insert(key.clone(), Value::Array(inlined));
                }
                ("items", value) => {
                    let inlined = self.inline(value, at);
                    map.insert(key.clone(), inlined);
                }
                _ => {
                    map.insert(key.clone(), value.clone());
                }
            }
        }
        // The ref's siblings (default, description) win over the target's.
        for (k, v) in from_ref {
            map.entry(k).or_insert(v);
        }
        for member in members {
            if let Value::Object(member) = self.inline(member, at) {
                for (k, v) in member {
                    map.entry(k).or_insert(v);
                }
            }
        }
        self.active.truncate(active);
        self.depth -= 1;
        Value::Object(map)
    }

    /// A converted schema as the fields of a non-body parameter.
    fn parameter(&mut self, schema: &Value, location: &str, at: &str) -> Map<String, Value> {
        let mut out = Map::new();
        let form = location == "formData";
        match schema.get("type").and_then(Value::as_str) {
            Some("string" | "number" | "integer" | "boolean") => {
                if form && is_binary(schema) {
                    out.insert("type".to_owned(), json!("file"));
                    return out;
                }
                copy_keys(schema, &mut out);
            }
            Some("array") => {
                let items = schema.get("items").cloned().unwrap_or_else(|| json!({}));
                if form && is_binary(&items) {
                    self.warn(
                        at,
                        "a list of files is sent as one file (Swagger 2.0 has no array of files)",
                    );
                    out.insert("type".to_owned(), json!("file"));
                    return out;
                }
                copy_keys(schema, &mut out);
                out.insert("items".to_owned(), Value::Object(self.items(&items, at)));
                let format = if location == "query" || form {
                    "multi"
                } else {
                    "csv"
                };
                out.insert("collectionFormat".to_owned(), json!(format));
            }
            _ => {
                self.warn(at, "parameter schema is not a primitive or an array of primitives; sent as a string");
                out.insert("type".to_owned(), json!("string"));
            }
        }
        if schema.get("x-nullable") == Some(&json!(true)) {
            out.insert("x-nullable".to_owned(), json!(true));
        }
        out
    }

    /// An array parameter's `items` (`primitivesItems`: primitives or arrays of them).
    fn items(&mut self, schema: &Value, at: &str) -> Map<String, Value> {
        let mut out = Map::new();
        match schema.get("type").and_then(Value::as_str) {
            Some("string" | "number" | "integer" | "boolean") => copy_keys(schema, &mut out),
            Some("array") => {
                copy_keys(schema, &mut out);
                let items = schema.get("items").cloned().unwrap_or_else(|| json!({}));
                out.insert("items".to_owned(), Value::Object(self.items(&items, at)));
                out.insert("collectionFormat".to_owned(), json!("csv"));
            }
            _ => {
                self.warn(at, "array items are not primitives; sent as strings");
                out.insert("type".to_owned(), json!("string"));
            }
        }
        out
    }
}

/// Drops `nullable`, `x-nullable`, null types, `const: null` and null enum values; true if any
/// allowed null.
fn take_null_markers(map: &mut Map<String, Value>) -> bool {
    let mut nullable = false;
    for key in ["nullable", "x-nullable"] {
        if let Some(flag) = map.remove(key) {
            nullable |= flag == Value::Bool(true);
        }
    }
    match map.get_mut("type") {
        Some(Value::String(t)) if t == "null" => {
            map.remove("type");
            nullable = true;
        }
        Some(Value::Array(types)) => {
            let before = types.len();
            types.retain(|t| t != "null");
            nullable |= types.len() != before;
            match types.as_slice() {
                [] => {
                    map.remove("type");
                }
                [one] => {
                    let one = one.clone();
                    map.insert("type".to_owned(), one);
                }
                _ => {}
            }
        }
        _ => {}
    }
    if map.get("const") == Some(&Value::Null) {
        map.remove("const");
        nullable = true;
    }
    if let Some(Value::Array(values)) = map.get_mut("enum") {
        let before = values.len();
        values.retain(|v| !v.is_null());
        if values.len() != before {
            nullable = true;
            if values.is_empty() {
                map.remove("enum");
            }
        }
    }
    nullable
}

/// Whether `flatten` has anything to take out of `map` (what `take_null_markers` and the
/// unions look for).
fn needs_flattening(map: &Map<String, Value>) -> bool {
    ["nullable", "x-nullable", "anyOf", "oneOf"]
        .iter()
        .any(|key| map.contains_key(*key))
        || matches!(map.get("type"), Some(Value::Array(_)))
        || map.get("type").and_then(Value::as_str) == Some("null")
        || map.get("const") == Some(&Value::Null)
        || matches!(map.get("enum"), Some(Value::Array(values)) if values.contains(&Value::Null))
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type") == Some(&json!("null"))
        || schema.get("type") == Some(&json!(["null"]))
        || schema.get("const") == Some(&Value::Null)
        || schema.get("enum") == Some(&json!([null]))
}

fn is_bare_ref(schema: &Value) -> bool {
    schema.as_object().is_some_and(|m| {
        m.keys()
            .all(|k| k == "$ref" || ANNOTATIONS.contains(&k.as_str()))
    })
}

/// The variants of a schema that is only a union (plus annotations).
fn pure_union(schema: &Value) -> Option<Vec<Value>> {
    let map = schema.as_object()?;
    let mut unions = map.iter().filter(|(k, _)| *k == "anyOf" || *k == "oneOf");
    let (_, variants) = unions.next()?;
    let only = unions.next().is_none()
        && map
            .keys()
            .all(|k| k == "anyOf" || k == "oneOf" || ANNOTATIONS.contains(&k.as_str()));
    if only {
        variants.as_array().cloned()
    } else {
        None
    }
}

/// Adds a union's result to the schema around it: beside it when nothing disagrees, else as an
/// `allOf` member.
fn fold_into(map: &mut Map<String, Value>, merged: Map<String, Value>) {
    let conflict = merged.iter().any(|(k, v)| {
        !ANNOTATIONS.contains(&k.as_str()) && map.get(k).is_some_and(|mine| mine != v)
    });
    if conflict {
        match map.get_mut("allOf") {
            Some(Value::Array(members)) => members.push(Value::Object(merged)),
            _ => {
                map.insert("allOf".to_owned(), json!([merged]));
            }
        }
        return;
    }
    for (k, v) in merged {
        map.entry(k).or_insert(v);
    }
}

/// Folds an `allOf` member into its (resolved) parent: properties and required add up.
fn fold_object(map: &mut Map<String, Value>, member: Map<String, Value>) {
    for (k, v) in member {
        match (k.as_str(), map.get_mut(&k), v) {
            ("properties", Some(Value::Object(mine)), Value::Object(theirs)) => {
                for (name, schema) in theirs {
                    mine.entry(name).or_insert(schema);
                }
            }
            ("required", Some(Value::Array(mine)), Value::Array(theirs)) => {
                for name in theirs {
                    if !mine.contains(&name) {
                        mine.push(name);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, v) => {
                map.insert(k, v);
            }
        }
    }
}

fn kind_of(map: &Map<String, Value>) -> Kind<'static> {
    match map.get("type").and_then(Value::as_str) {
        Some("object") => return Kind::Object,
        Some("array") => return Kind::Array,
        Some("string") => return Kind::Primitive("string"),
        Some("number") => return Kind::Primitive("number"),
        Some("integer") => return Kind::Primitive("integer"),
        Some("boolean") => return Kind::Primitive("boolean"),
        _ => {}
    }
    if map.contains_key("properties") || map.contains_key("additionalProperties") {
        return Kind::Object;
    }
    if map.contains_key("items") || map.contains_key("prefixItems") {
        return Kind::Array;
    }
    if map.contains_key("contentMediaType") {
        return Kind::Primitive("string");
    }
    let values: Vec<&Value> = match (map.get("const"), map.get("enum")) {
        (Some(c), _) => vec![c],
        (None, Some(Value::Array(vs))) => vs.iter().collect(),
        _ => Vec::new(),
    };
    let types: Vec<&str> = values.into_iter().map(json_type).collect();
    match types.first() {
        Some(first) if types.iter().all(|t| t == first) => match *first {
            "object" => Kind::Object,
            "array" => Kind::Array,
            "null" => Kind::Any,
            _ => kind_of(&as_map(&json!({ "type": first }))),
        },
        _ => Kind::Any,
    }
}

fn variant_name(variant: &Value, kind: Kind) -> String {
    if let Some(r) = variant.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    match kind {
        Kind::Object => "object".to_owned(),
        Kind::Array => "array".to_owned(),
        Kind::Primitive(t) => t.to_owned(),
        Kind::Any => "any".to_owned(),
    }
}

/// Object variants → one object: every property (a property the variants disagree on becomes
/// their union, converted in turn), required = the names all variants require.
fn merge_objects(variants: &[Map<String, Value>]) -> Map<String, Value> {
    let mut properties: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut required: Option<Vec<Value>> = None;
    for variant in variants {
        if let Some(Value::Object(props)) = variant.get("properties") {
            for (name, schema) in props {
                let list = properties.entry(name.clone()).or_default();
                if !list.contains(schema) {
                    list.push(schema.clone());
                }
            }
        }
        let names: Vec<Value> = variant
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        required = Some(match required {
            None => names,
            Some(common) => common.into_iter().filter(|n| names.contains(n)).collect(),
        });
    }
    let mut out = Map::new();
    out.insert("type".to_owned(), json!("object"));
    let properties: Map<String, Value> = properties
        .into_iter()
        .map(|(name, mut list)| {
            let schema = if list.len() == 1 {
                list.pop().unwrap_or_default()
            } else {
                json!({ "anyOf": list })
            };
            (name, schema)
        })
        .collect();
    if !properties.is_empty() {
        out.insert("properties".to_owned(), Value::Object(properties));
    }
    if let Some(required) = required.filter(|r| !r.is_empty()) {
        out.insert("required".to_owned(), Value::Array(required));
    }
    let extra: Vec<Option<&Value>> = variants
        .iter()
        .map(|v| v.get("additionalProperties"))
        .collect();
    if let Some(Some(first)) = extra.first() {
        if extra.iter().all(|e| *e == Some(*first)) {
            out.insert("additionalProperties".to_owned(), (*first).clone());
        }
    }
    out
}

/// Primitive variants of one type (integer counts as number) → that type, with the union of
/// their enums when all have one and the constraints they share.
fn merge_same_type(variants: &[Map<String, Value>], ty: &str) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some((first, rest)) = variants.split_first() {
        for (k, v) in first {
            let shared = !matches!(k.as_str(), "type" | "enum" | "const")
                && rest.iter().all(|other| other.get(k) == Some(v));
            if shared {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let mut values: Vec<Value> = Vec::new();
    for variant in variants {
        match (variant.get("const"), variant.get("enum")) {
            (Some(c), _) => values.push(c.clone()),
            (None, Some(Value::Array(vs))) => values.extend(vs.iter().cloned()),
            _ => return with_type(out, ty),
        }
    }
    out.insert("enum".to_owned(), Value::Array(unique(values)));
    with_type(out, ty)
}

fn with_type(mut map: Map<String, Value>, ty: &str) -> Map<String, Value> {
    map.insert("type".to_owned(), json!(ty));
    map
}

/// Swagger's `minimum` + boolean `exclusiveMinimum` from 3.1's numeric `exclusiveMinimum`
/// (likewise for the maximum), keeping the stricter bound when both are given.
fn bound(
    map: &Map<String, Value>,
    out: &mut Map<String, Value>,
    inclusive: &str,
    exclusive: &str,
    stricter: fn(f64, f64) -> bool,
) {
    let plain = map.get(inclusive).filter(|v| v.is_number());
    let (limit, strict) = match (map.get(exclusive), plain) {
        (Some(x), _) if x.is_number() => match plain {
            Some(m) if !stricter(x.as_f64().unwrap_or(0.0), m.as_f64().unwrap_or(0.0)) => {
                (m, false)
            }
            _ => (x, true),
        },
        (Some(Value::Bool(true)), Some(m)) => (m, true),
        (_, Some(m)) => (m, false),
        (_, None) => return,
    };
    out.insert(inclusive.to_owned(), limit.clone());
    if strict {
        out.insert(exclusive.to_owned(), json!(true));
    }
}

/// A format Power Platform accepts, or None. pydantic's `uuid1`..`uuid8` are uuids.
fn power_platform_format(format: &str) -> Option<&'static str> {
    let format = match format {
        f if f.len() == 5 && f.starts_with("uuid") => "uuid",
        f => f,
    };
    FORMATS.iter().copied().find(|f| *f == format)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether a value matches the schema's `type`, `enum`, bounds and lengths (what Swagger
/// validators check of a `default`). A `pattern` cannot be checked here without a regex engine:
/// a string default beside one is not kept.
fn fits(value: &Value, schema: &Map<String, Value>) -> bool {
    let typed = match schema.get("type").and_then(Value::as_str) {
        Some("number") => value.is_number(),
        Some(ty) => json_type(value) == ty,
        None => true,
    };
    let listed = match schema.get("enum") {
        Some(Value::Array(values)) => values.contains(value),
        _ => true,
    };
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let exclusive = |key: &str| schema.get(key) == Some(&Value::Bool(true));
    let within = match value.as_f64() {
        Some(number) => {
            let above = bound("minimum").is_none_or(|min| {
                if exclusive("exclusiveMinimum") {
                    number > min
                } else {
                    number >= min
                }
            });
            let below = bound("maximum").is_none_or(|max| {
                if exclusive("exclusiveMaximum") {
                    number < max
                } else {
                    number <= max
                }
            });
            let multiple =
                bound("multipleOf").is_none_or(|m| m > 0.0 && (number / m).fract() == 0.0);
            above && below && multiple
        }
        None => true,
    };
    let sized = match value {
        Value::String(text) => {
            let length = text.chars().count() as f64;
            !schema.contains_key("pattern")
                && bound("minLength").is_none_or(|min| length >= min)
                && bound("maxLength").is_none_or(|max| length <= max)
        }
        Value::Array(items) => {
            let count = items.len() as f64;
            bound("minItems").is_none_or(|min| count >= min)
                && bound("maxItems").is_none_or(|max| count <= max)
        }
        _ => true,
    };
    typed && listed && within && sized
}

/// The values in their first order, each once; linear, so a 60,000-value enum stays cheap.
fn unique(values: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    values
        .into_iter()
        .filter(|v| seen.insert(v.to_string()))
        .collect()
}

/// Where a nested schema sits, for warnings: its end kept, within a bound however deep the
/// schema or long its names.
fn deeper(at: &str, step: &str) -> String {
    shorten(&format!("{at}{step}"), 240)
}

fn as_map(value: &Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// Media types whose content is text, so a string holding it is not binary.
fn is_text(media: &str) -> bool {
    let media = media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media.starts_with("text/")
        || media.ends_with("/json")
        || media.ends_with("+json")
        || media.ends_with("/xml")
        || media.ends_with("+xml")
}

fn is_binary(schema: &Value) -> bool {
    schema.get("type") == Some(&json!("string")) && schema.get("format") == Some(&json!("binary"))
}

fn copy_keys(from: &Value, to: &mut Map<String, Value>) {
    for key in PARAMETER_KEYS {
        if let Some(v) = from.get(*key) {
            to.insert((*key).to_owned(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests;
