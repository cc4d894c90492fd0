//! `--format openapi`: the same public API as OpenAPI 3.1, for a developer portal, a client
//! generator or a contract tester. FastAPI's schemas stay as they are (3.1 says everything
//! they say); paths, parameters, ids and security are the public ones, as in the connector.
//! tollgate's own answers and the headers it adds are `components.responses` and
//! `components.headers`, referred to from each operation.

use crate::config::AuthMode;
use crate::connector::auth::{Entra, KEY_SCHEME};
use crate::connector::document::resolve;
use crate::connector::gateway::{self, Answer, RateHeader, RETRY_AFTER, RETRY_AFTER_TEXT};
use crate::connector::parameters::{self, Owned};
use crate::connector::public_api::PublicApi;
use crate::connector::reachable;
use crate::connector::Options;
use crate::plan::Plan;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const ERROR_SCHEMA: &str = "TollgateError";
const OAUTH: &str = "entraId";
/// The subscription key sent as a query parameter (`subscription_key.query`): an alternative
/// to the header wherever a key is asked for.
const KEY_QUERY_SCHEME: &str = "apiKeyQuery";
const RETRY_AFTER_COMPONENT: &str = "RetryAfter";

pub(crate) fn document(
    openapi: &Value,
    api: &PublicApi,
    ids: &[String],
    plan: &Plan,
    owned: &Owned,
    options: &Options,
    entra: Option<&Entra>,
) -> Value {
    let mut paths = Map::new();
    // What the operations refer to, by component name.
    let mut answers: BTreeMap<&'static str, Answer> = BTreeMap::new();
    let mut headers: BTreeMap<&'static str, &'static str> = BTreeMap::new();
    for (exposed, id) in api.exposed.iter().zip(ids) {
        let mut operation = exposed.fastapi.clone().into_owned();
        operation.insert("operationId".into(), json!(id));
        let (kept, _) = parameters::kept(exposed, openapi, owned);
        let mut kept: Vec<Value> = kept.into_iter().cloned().map(Value::Object).collect();
        for parameter in kept
            .iter_mut()
            .filter(|p| p.get("in").and_then(Value::as_str) == Some("path"))
        {
            if let Some(schema) = parameter.get_mut("schema") {
                parameters::restrict_path_schema(schema, openapi);
            }
        }
        if kept.is_empty() {
            operation.remove("parameters");
        } else {
            operation.insert("parameters".into(), Value::Array(kept));
        }
        let auth = exposed.operation.auth;
        operation.insert("security".into(), security(auth, entra.is_some()));
        let rate_headers = gateway::rate_headers(plan, exposed.operation);
        let responses = operation.entry("responses").or_insert_with(|| json!({}));
        if let Some(responses) = responses.as_object_mut() {
            // Every response the backend gives passes tollgate, which adds them.
            for response in responses.values_mut() {
                add_headers(response, &rate_headers, openapi);
            }
            for header in &rate_headers {
                headers.insert(header.component, header.description);
            }
            for answer in gateway::answers(exposed) {
                let reference =
                    json!({ "$ref": format!("#/components/responses/{}", answer.component) });
                if gateway::insert_answer(responses, &answer, reference) {
                    answers.insert(answer.component, answer);
                }
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
    if !answers.is_empty() {
        let responses = components.entry("responses").or_insert_with(|| json!({}));
        if let Some(responses) = responses.as_object_mut() {
            for (component, answer) in &answers {
                responses.insert((*component).into(), error_response(answer));
            }
        }
    }
    if answers.values().any(|a| a.retry_after) {
        headers.insert(RETRY_AFTER_COMPONENT, RETRY_AFTER_TEXT);
    }
    if !headers.is_empty() {
        let defined = components.entry("headers").or_insert_with(|| json!({}));
        if let Some(defined) = defined.as_object_mut() {
            for (component, description) in headers {
                let minimum = u8::from(component == RETRY_AFTER_COMPONENT);
                defined.insert(
                    component.into(),
                    json!({ "description": description,
                        "schema": { "type": "integer", "minimum": minimum } }),
                );
            }
        }
    }
    let mut schemes = Map::new();
    schemes.insert(
        KEY_SCHEME.into(),
        json!({ "type": "apiKey", "in": "header", "name": plan.key_header_display }),
    );
    schemes.insert(
        KEY_QUERY_SCHEME.into(),
        json!({ "type": "apiKey", "in": "query", "name": plan.key_query }),
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

/// OpenAPI's security requirement for an operation's `auth`: alternatives, the key in the
/// header or in the query; the token scheme only when the document describes one.
fn security(auth: AuthMode, with_token: bool) -> Value {
    let header = json!({ KEY_SCHEME: [] });
    let query = json!({ KEY_QUERY_SCHEME: [] });
    let token = json!({ OAUTH: [] });
    match (auth, with_token) {
        (AuthMode::None, _) => json!([]),
        (AuthMode::SubscriptionKey, _) | (_, false) => json!([header, query]),
        (AuthMode::Jwt, true) => json!([token]),
        (AuthMode::Either, true) => json!([header, query, token]),
        (AuthMode::Both, true) => json!([
            { KEY_SCHEME: [], OAUTH: [] },
            { KEY_QUERY_SCHEME: [], OAUTH: [] }
        ]),
    }
}

fn error_response(answer: &Answer) -> Value {
    let mut response = Map::new();
    response.insert("description".into(), json!(answer.description));
    response.insert(
        "content".into(),
        json!({ "application/json": {
            "schema": { "$ref": format!("#/components/schemas/{ERROR_SCHEMA}") } } }),
    );
    if answer.retry_after {
        let header = json!({ "$ref": format!("#/components/headers/{RETRY_AFTER_COMPONENT}") });
        response.insert("headers".into(), json!({ RETRY_AFTER: header }));
    }
    Value::Object(response)
}

/// A backend response with the rate-limit headers tollgate adds, under the configuration's
/// names (replacing the backend's own of any case). A response that is a `$ref` is copied in
/// place first: the component may serve operations without them.
fn add_headers(response: &mut Value, rate_headers: &[RateHeader], openapi: &Value) {
    if rate_headers.is_empty() {
        return;
    }
    if response.get("$ref").is_some() {
        match resolve(response, openapi) {
            Some(target) => *response = target.clone(),
            None => return,
        }
    }
    let Some(response) = response.as_object_mut() else {
        return;
    };
    let headers = response.entry("headers").or_insert_with(|| json!({}));
    let Some(headers) = headers.as_object_mut() else {
        return;
    };
    for header in rate_headers {
        headers.retain(|name, _| !name.eq_ignore_ascii_case(&header.name));
        headers.insert(
            header.name.clone(),
            json!({ "$ref": format!("#/components/headers/{}", header.component) }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_states_its_own_credentials() {
        assert_eq!(security(AuthMode::None, true), json!([]));
        assert_eq!(
            security(AuthMode::SubscriptionKey, true),
            json!([{"apiKeyHeader": []}, {"apiKeyQuery": []}])
        );
        assert_eq!(security(AuthMode::Jwt, true), json!([{"entraId": []}]));
        assert_eq!(
            security(AuthMode::Either, true),
            json!([{"apiKeyHeader": []}, {"apiKeyQuery": []}, {"entraId": []}])
        );
        assert_eq!(
            security(AuthMode::Both, true),
            json!([{"apiKeyHeader": [], "entraId": []}, {"apiKeyQuery": [], "entraId": []}])
        );
    }
}
