//! The JSON Schema of the configuration (`tollgate schema`, docs/tollgate.schema.json), derived
//! from the types in `config.rs` with schemars: their doc comments are its descriptions, and
//! the rules below are the ones serde and the compile steps enforce that a schema can say.
//!
//! Built only with the `schema` feature, which only the CLI enables: the filter never builds or
//! links schemars.
//!
//! The schema never refuses a configuration that `tollgate check` accepts; it may accept one
//! that `tollgate check` refuses (an unknown product, a duplicate key, a bad template...):
//! docs/configuration.md lists what only the check sees.

use schemars::transform::{transform_subschemas, Transform};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};
use std::borrow::Cow;

/// What Rust calls whitespace and control characters (`char::is_whitespace`,
/// `char::is_control`), as the ranges of a regular-expression class; written out rather than
/// `\s`, whose meaning differs between regular-expression engines.
macro_rules! blank {
    () => {
        r"\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}

/// A key hash as `consumers[].keys` holds it.
pub(crate) const KEY_HASH: &str = "^sha256:[0-9a-f]{64}$";
/// Consumer ids, operation and product names: printable ASCII, no spaces, 1 to 128 bytes.
pub(crate) const IDENTIFIER: &str = "^[!-~]{1,128}$";
/// RFC 9110 token characters: header names and methods (`checks::is_token`).
pub(crate) const TOKEN: &str = "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$";
/// `path`, `path_prefix`, `path_template` and `rewrite` (`checks::check_path`).
pub(crate) const PATH: &str = concat!("^/[^?#", blank!(), "]*$");
/// A query parameter name (`checks::check_query_name`).
pub(crate) const QUERY_NAME: &str = concat!("^[^&=#?%+", blank!(), "]+$");
/// Printable ASCII without spaces (an Envoy cluster of the rate-limit service).
pub(crate) const PRINTABLE: &str = "^[!-~]+$";
/// `http://` or `https://`, a host, an optional path (`jwt::remote::parse_url`).
pub(crate) const URL: &str = concat!("^https?://[^/@?#", blank!(), "]+(/[^#", blank!(), "]*)?$");

/// The schema of a whole configuration, as `tollgate schema` prints it.
pub fn configuration_schema() -> Value {
    let mut schema = SchemaGenerator::default().into_root_schema_for::<crate::config::Config>();
    schema.insert("title".into(), "tollgate plugin configuration".into());
    Tidy.transform(&mut schema);
    schema.to_value()
}

/// `configuration_schema` as pretty JSON ending in a newline: docs/tollgate.schema.json.
pub fn configuration_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&configuration_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// Doc comments arrive with their source line breaks: each paragraph becomes one line, so an
/// editor wraps it to its own width. And an optional number's `None` default (`null`, which
/// the field does not accept) is dropped: its description says what absent means.
struct Tidy;

impl Transform for Tidy {
    fn transform(&mut self, schema: &mut Schema) {
        if schema.get("default") == Some(&Value::Null) {
            schema.remove("default");
        }
        if let Some(Value::String(text)) = schema.get_mut("description") {
            *text = text
                .split("\n\n")
                .map(|paragraph| paragraph.split('\n').collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join("\n\n");
        }
        transform_subschemas(self, schema);
    }
}

/// `{"not": {"type": "null"}}` for each of `keys`: the key is there and not `null` (serde reads
/// a `null` optional member as absent).
fn present(keys: &[&str]) -> Value {
    let properties: Map<String, Value> = keys
        .iter()
        .map(|key| ((*key).to_string(), json!({"not": {"type": "null"}})))
        .collect();
    json!({"required": keys, "properties": properties})
}

/// Exactly one of `keys` is given.
fn exactly_one_of(schema: &mut Schema, keys: &[&str]) {
    let choices: Vec<Value> = keys.iter().map(|key| present(&[key])).collect();
    schema.insert("oneOf".into(), choices.into());
}

/// An operation matches by exactly one of `path`, `path_prefix`, `path_template`.
pub(crate) fn one_path(schema: &mut Schema) {
    exactly_one_of(schema, &["path", "path_prefix", "path_template"]);
}

/// `ip_filter`: exactly one of `allow` or `forbid`.
pub(crate) fn one_ip_list(schema: &mut Schema) {
    exactly_one_of(schema, &["allow", "forbid"]);
}

/// A required claim has exactly one of `any_of` or `all_of`.
pub(crate) fn one_claim_rule(schema: &mut Schema) {
    exactly_one_of(schema, &["any_of", "all_of"]);
}

/// A consumer has `keys`, `jwt_client_ids`, or both.
pub(crate) fn consumer_credentials(schema: &mut Schema) {
    schema.insert(
        "anyOf".into(),
        json!([present(&["keys"]), present(&["jwt_client_ids"])]),
    );
}

/// The `jwt` section needs signing keys (`jwks`, `openid_config` or `jwks_uri`), and takes one
/// remote source at most.
pub(crate) fn jwt_key_sources(schema: &mut Schema) {
    schema.insert(
        "anyOf".into(),
        json!([
            present(&["jwks"]),
            present(&["openid_config"]),
            present(&["jwks_uri"])
        ]),
    );
    schema.insert("not".into(), present(&["openid_config", "jwks_uri"]));
}

/// A JWT algorithm name `jwt.algorithms` accepts (never `none`).
pub(crate) struct AlgorithmName;

impl JsonSchema for AlgorithmName {
    fn schema_name() -> Cow<'static, str> {
        "Algorithm".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = crate::jwt::algorithm::SUPPORTED.split(", ").collect();
        json_schema!({
            "description": "A JWS algorithm a token may be signed with.",
            "type": "string",
            "enum": names,
        })
    }
}

/// `request_body.public_schema`: a JSON Schema object (checked at load, used by
/// `tollgate connector`).
pub(crate) struct PublicSchema;

impl JsonSchema for PublicSchema {
    fn schema_name() -> Cow<'static, str> {
        "PublicSchema".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "object"})
    }
}
