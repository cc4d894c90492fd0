//! `--format openapi`: the same public API as OpenAPI 3.1, for a developer portal, a client
//! generator or a contract tester. FastAPI's schemas stay as they are (3.1 says everything
//! they say); paths, parameters, ids and security are the public ones, as in the connector.

use crate::config::AuthMode;
use crate::connector::action::{gateway_answers, insert_answer};
use crate::connector::auth::{Entra, KEY_SCHEME};
use crate::connector::parameters::{self, Owned};
use crate::connector::public_api::PublicApi;
use crate::connector::reachable;
use crate::connector::Options;
use serde_json::{json, Map, Value};

const ERROR_SCHEMA: &str = "TollgateError";
const OAUTH: &str = "entraId";

pub(crate) fn document(
    openapi: &Value,
    api: &PublicApi,
    ids: &[String],
    owned: &Owned,
    options: &Options,
    key_header: &str,
    entra: Option<&Entra>,
) -> Value {
    let mut paths = Map::new();
    for (exposed, id) in api.exposed.iter().zip(ids) {
        let mut operation = exposed.fastapi.clone();
        operation.insert("operationId".into(), json!(id));
        let (kept, _) = parameters::kept(exposed, openapi, owned);
        let kept: Vec<Value> = kept.into_iter().cloned().map(Value::Object).collect();
        if kept.is_empty() {
            operation.remove("parameters");
        } else {
            operation.insert("parameters".into(), Value::Array(kept));
        }
        let auth = exposed.operation.auth;
        operation.insert("security".into(), security(auth, entra.is_some()));
        let responses = operation.entry("responses").or_insert_with(|| json!({}));
        if let Some(responses) = responses.as_object_mut() {
            for (status, text) in gateway_answers(exposed) {
                insert_answer(responses, status, error_response(text));
            }
        }
        let item = paths
            .entry(exposed.public_path.clone())
            .or_insert_with(|| json!({}));
        if let Some(item) = item.as_object_mut() {
            item.insert(exposed.method.to_string(), Value::Object(operation));
        }
    }

    let paths = Value::Object(paths);
    let used = reachable::with_used_schemas(openapi, &paths, false);
    let mut components = used
        .get("components")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let schemas = components.entry("schemas").or_insert_with(|| json!({}));
    if let Some(schemas) = schemas.as_object_mut() {
        schemas.insert(ERROR_SCHEMA.into(), json!({ "type": "object",
            "required": ["statusCode", "message"],
            "properties": { "statusCode": { "type": "integer" }, "message": { "type": "string" } } }));
    }
    let mut schemes = Map::new();
    schemes.insert(
        KEY_SCHEME.into(),
        json!({ "type": "apiKey", "in": "header", "name": key_header }),
    );
    if let Some(entra) = entra {
        let base = format!("{}/{}/oauth2/v2.0", entra.login_uri, entra.tenant);
        let scope = format!("{}/.default", entra.resource_uri.trim_end_matches('/'));
        schemes.insert(
            OAUTH.into(),
            json!({ "type": "oauth2", "flows": { "authorizationCode": {
            "authorizationUrl": format!("{base}/authorize"), "tokenUrl": format!("{base}/token"),
            "scopes": { scope: "Call the API" } } } }),
        );
    }
    components.insert("securitySchemes".into(), Value::Object(schemes));

    let mut info = openapi
        .get("info")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(title) = &options.title {
        info.insert("title".into(), json!(title));
    }
    if let Some(description) = &options.description {
        info.insert("description".into(), json!(description));
    }
    info.entry("title").or_insert_with(|| json!("API"));
    info.entry("version").or_insert_with(|| json!("1.0"));
    let base = options.base_path.trim_end_matches('/');
    let version = openapi
        .get("openapi")
        .and_then(Value::as_str)
        .filter(|v| v.starts_with("3."))
        .unwrap_or("3.1.0");
    json!({
        // A 3.0 document's schemas say 3.0 things (`nullable`, boolean exclusive bounds).
        "openapi": version,
        "info": info,
        "servers": [{ "url": format!("{}://{}{base}", options.scheme, options.host) }],
        "paths": paths,
        "components": components,
    })
}

/// OpenAPI's security requirement for an operation's `auth`; the token scheme only when the
/// document describes one.
fn security(auth: AuthMode, with_token: bool) -> Value {
    let key = json!({ KEY_SCHEME: [] });
    let token = json!({ OAUTH: [] });
    match (auth, with_token) {
        (AuthMode::None, _) => json!([]),
        (AuthMode::SubscriptionKey, _) | (_, false) => json!([key]),
        (AuthMode::Jwt, true) => json!([token]),
        (AuthMode::Either, true) => json!([key, token]),
        (AuthMode::Both, true) => json!([{ KEY_SCHEME: [], OAUTH: [] }]),
    }
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": {
        "schema": { "$ref": format!("#/components/schemas/{ERROR_SCHEMA}") } } } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_states_its_own_credentials() {
        assert_eq!(security(AuthMode::None, true), json!([]));
        assert_eq!(
            security(AuthMode::SubscriptionKey, true),
            json!([{"apiKeyHeader": []}])
        );
        assert_eq!(security(AuthMode::Jwt, true), json!([{"entraId": []}]));
        assert_eq!(
            security(AuthMode::Either, true),
            json!([{"apiKeyHeader": []}, {"entraId": []}])
        );
        assert_eq!(
            security(AuthMode::Both, true),
            json!([{"apiKeyHeader": [], "entraId": []}])
        );
    }
}
