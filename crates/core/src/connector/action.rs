//! One connector operation (Swagger 2.0): its parameters, its body, its responses. Power
//! Platform shows one response schema per operation, so only the first 2xx JSON response keeps
//! its schema; tollgate's own refusals (401, 403, 429; 404 on a path with parameters) are
//! listed with the messages it sends, and the headers tollgate adds (`Retry-After`, the
//! rate-limit headers) with the responses that carry them.

use crate::config::AuthMode;
use crate::connector::document::resolve;
use crate::connector::gateway::{self, RateHeader, RETRY_AFTER, RETRY_AFTER_TEXT};
use crate::connector::notes::{shorten, Notes};
use crate::connector::parameters::{self, Owned};
use crate::connector::public_api::Exposed;
use crate::connector::schema;
use crate::plan::Plan;
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// The Swagger operation object for `exposed`, named `id`.
pub(crate) fn swagger_operation(
    exposed: &Exposed,
    id: &str,
    openapi: &Value,
    plan: &Plan,
    owned: &Owned,
    notes: &mut Notes,
) -> Value {
    // Every warning of the operation starts with this: kept short, whatever the path.
    let label = format!(
        "{} {} ({})",
        exposed.method.to_ascii_uppercase(),
        shorten(&exposed.public_path, 120),
        shorten(id, 60)
    );
    let mut operation = Map::new();
    operation.insert("operationId".into(), json!(id));
    let summary = exposed
        .fastapi
        .get("summary")
        .and_then(Value::as_str)
        .unwrap_or(&exposed.operation.name);
    operation.insert(
        "summary".into(),
        json!(crate::connector::names::summary(summary)),
    );
    if let Some(description) = exposed.fastapi.get("description").and_then(Value::as_str) {
        operation.insert("description".into(), json!(description));
    }
    if exposed.fastapi.get("deprecated") == Some(&Value::Bool(true)) {
        operation.insert("deprecated".into(), json!(true));
    }
    if exposed.operation.auth == AuthMode::None {
        // Open to anyone: no credential, whatever the document-wide `security` asks.
        operation.insert("security".into(), json!([]));
    }

    let (kept, _) = parameters::kept(exposed, openapi, owned);
    let mut parameters: Vec<Value> = Vec::new();
    for parameter in kept {
        let named = parameter.get("name").and_then(Value::as_str).is_some();
        let location = parameter.get("in").and_then(Value::as_str);
        if named && matches!(location, Some("path" | "query" | "header")) {
            parameters.push(plain_parameter(parameter, openapi, &label, notes));
        } else {
            notes.push(format!(
                "{label}: a parameter without a name or in {location:?} left out"
            ));
        }
    }
    let undeclared = undeclared_path_parameters(&exposed.public_path, &parameters);
    if !undeclared.is_empty() {
        // One line for all of them: a path can hold thousands.
        let shown: Vec<String> = undeclared.iter().take(5).map(|n| shorten(n, 40)).collect();
        let more = match undeclared.len() {
            n if n > shown.len() => format!(" and {} more", n - shown.len()),
            _ => String::new(),
        };
        notes.push(format!(
            "{label}: path parameter(s) {}{more} not declared in the OpenAPI; added as strings",
            shown.join(", ")
        ));
    }
    for name in undeclared {
        parameters.push(json!({ "name": name, "in": "path", "required": true,
            "type": "string", "pattern": parameters::SEGMENT, "x-ms-url-encoding": "single" }));
    }
    let (body, consumes) = request_body(exposed, openapi, &label, notes);
    parameters.extend(body);
    if !parameters.is_empty() {
        operation.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(consumes) = consumes {
        operation.insert("consumes".into(), json!([consumes]));
    }
    let rate_headers = gateway::rate_headers(plan, exposed.operation);
    operation.insert(
        "responses".into(),
        Value::Object(responses(exposed, openapi, &rate_headers, &label, notes)),
    );
    Value::Object(operation)
}

/// `{name}`s of the path with no `in: path` parameter of that name (Swagger requires one each).
fn undeclared_path_parameters(path: &str, parameters: &[Value]) -> Vec<String> {
    let declared: HashSet<&str> = parameters
        .iter()
        .filter(|p| p.get("in").and_then(Value::as_str) == Some("path"))
        .filter_map(|p| p.get("name").and_then(Value::as_str))
        .collect();
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .filter(|name| !declared.contains(name))
        .map(str::to_string)
        .collect()
}

/// A path, query, header or form parameter as Swagger 2.0 primitives.
fn plain_parameter(
    parameter: &Map<String, Value>,
    openapi: &Value,
    label: &str,
    notes: &mut Notes,
) -> Value {
    let mut out = Map::new();
    for field in ["name", "in", "description"] {
        if let Some(value) = parameter.get(field).filter(|v| v.is_string()) {
            out.insert(field.into(), value.clone());
        }
    }
    let location = parameter
        .get("in")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let schema = parameter
        .get("schema")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(title) = schema.get("title").and_then(Value::as_str) {
        out.insert("x-ms-summary".into(), json!(title));
    }
    let name = parameter.get("name").unwrap_or(&Value::Null).to_string();
    let context = format!("{label}, parameter {}", shorten(&name, 60));
    out.extend(schema::parameter_fields(
        &schema, openapi, location, &context, notes,
    ));
    let required = location == "path" || parameter.get("required") == Some(&Value::Bool(true));
    out.insert("required".into(), json!(required));
    if location == "path" {
        parameters::restrict_swagger_path(&mut out);
        out.insert("x-ms-url-encoding".into(), json!("single"));
    }
    Value::Object(out)
}

/// The body as Swagger 2.0 parameters (`in: body`, or `formData` fields for a form), and the
/// media type the operation consumes.
fn request_body(
    exposed: &Exposed,
    openapi: &Value,
    label: &str,
    notes: &mut Notes,
) -> (Vec<Value>, Option<String>) {
    let Some(body) = exposed.fastapi.get("requestBody") else {
        if matches!(exposed.method, "post" | "put" | "patch") {
            notes.push(format!(
                "{label}: the OpenAPI declares no request body (the handler reads the raw request), so Power Automate shows no fields for it"
            ));
        }
        return (Vec::new(), None);
    };
    let body = resolve(body, openapi).unwrap_or(body);
    let required = body.get("required") == Some(&Value::Bool(true));
    let Some(content) = body.get("content").and_then(Value::as_object) else {
        return (Vec::new(), None);
    };
    let json_type = content
        .keys()
        .find(|media| *media == "application/json" || media.ends_with("+json"));
    let form_type = ["multipart/form-data", "application/x-www-form-urlencoded"]
        .into_iter()
        .find(|media| content.contains_key(*media));
    let empty = json!({});
    if let Some(media) = json_type {
        let schema = content
            .get(media)
            .and_then(|c| c.get("schema"))
            .unwrap_or(&empty);
        let parameter = json!({ "name": "body", "in": "body", "required": required,
            "schema": schema::body_schema(schema, openapi, &format!("{label}, body"), notes) });
        return (vec![parameter], Some(media.to_string()));
    }
    if let Some(media) = form_type {
        let schema = content
            .get(media)
            .and_then(|c| c.get("schema"))
            .unwrap_or(&empty);
        return (
            form_fields(schema, openapi, label, notes),
            Some(media.to_string()),
        );
    }
    // Another media type (text/plain, application/octet-stream): one opaque body.
    let Some((media, value)) = content.iter().next() else {
        return (Vec::new(), None);
    };
    let schema = value.get("schema").unwrap_or(&empty);
    let parameter = json!({ "name": "body", "in": "body", "required": required,
        "schema": schema::body_schema(schema, openapi, &format!("{label}, body"), notes) });
    (vec![parameter], Some(media.clone()))
}

/// A form's properties as `formData` parameters, made like any other parameter (an upload
/// becomes `type: file` there).
fn form_fields(schema: &Value, openapi: &Value, label: &str, notes: &mut Notes) -> Vec<Value> {
    let schema = resolve(schema, openapi).unwrap_or(schema);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, property)| {
            let mut parameter = Map::new();
            parameter.insert("name".into(), json!(name));
            parameter.insert("in".into(), json!("formData"));
            if let Some(description) = property.get("description") {
                parameter.insert("description".into(), description.clone());
            }
            parameter.insert("schema".into(), property.clone());
            parameter.insert("required".into(), json!(required.contains(&name.as_str())));
            plain_parameter(&parameter, openapi, label, notes)
        })
        .collect()
}

/// A status Swagger 2.0 takes: three digits or `default`; OpenAPI 3's ranges (`2XX`) become
/// their first code unless the document gives that code itself.
fn swagger_status(status: &str, all: &Map<String, Value>) -> Option<String> {
    let digits = status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit());
    if digits || status == "default" {
        return Some(status.to_string());
    }
    let range = status.len() == 3
        && status
            .as_bytes()
            .first()
            .is_some_and(|b| (b'1'..=b'5').contains(b))
        && status
            .get(1..)
            .is_some_and(|xx| xx.eq_ignore_ascii_case("XX"));
    let first = format!("{}00", status.get(..1).unwrap_or_default());
    (range && !all.contains_key(&first)).then_some(first)
}

/// FastAPI's responses, descriptions only but for the first 2xx JSON one, which keeps its
/// schema, each with the rate-limit headers tollgate adds; and tollgate's own answers.
fn responses(
    exposed: &Exposed,
    openapi: &Value,
    rate_headers: &[RateHeader],
    label: &str,
    notes: &mut Notes,
) -> Map<String, Value> {
    let mut out = Map::new();
    let mut schema_given = false;
    let empty = Map::new();
    let fastapi = exposed
        .fastapi
        .get("responses")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (status, response) in fastapi {
        let Some(status) = swagger_status(status, fastapi) else {
            notes.push(format!(
                "{label}: response {status:?} is not a status code; left out"
            ));
            continue;
        };
        let response = resolve(response, openapi).unwrap_or(response);
        let description = response
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("Response");
        let mut entry = Map::new();
        entry.insert("description".into(), json!(description));
        let schema = response
            .get("content")
            .and_then(|c| c.get("application/json"))
            .and_then(|c| c.get("schema"));
        if let (false, true, Some(schema)) = (schema_given, status.starts_with('2'), schema) {
            // `{}` is FastAPI's "any JSON": no fields to show, nothing to declare.
            if schema.as_object().is_some_and(|s| !s.is_empty()) {
                let context = format!("{label}, response {status}");
                entry.insert(
                    "schema".into(),
                    schema::body_schema(schema, openapi, &context, notes),
                );
            }
            schema_given = true;
        }
        out.insert(status, Value::Object(entry));
    }
    if !out.keys().any(|status| status.starts_with('2')) {
        out.insert("200".into(), json!({ "description": "Success" }));
    }
    if !rate_headers.is_empty() {
        // Every response the backend gives passes tollgate, which adds them.
        let headers: Map<String, Value> = rate_headers
            .iter()
            .map(|h| {
                let header = json!({ "type": "integer", "description": h.description });
                (h.name.clone(), header)
            })
            .collect();
        for response in out.values_mut().filter_map(Value::as_object_mut) {
            response.insert("headers".into(), Value::Object(headers.clone()));
        }
    }
    for answer in gateway::answers(exposed) {
        let mut value = Map::new();
        value.insert("description".into(), json!(answer.description));
        if answer.retry_after {
            let header = json!({ "type": "integer", "description": RETRY_AFTER_TEXT });
            value.insert("headers".into(), json!({ RETRY_AFTER: header }));
        }
        gateway::insert_answer(&mut out, &answer, Value::Object(value));
    }
    out
}
