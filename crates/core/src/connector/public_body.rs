//! Bodies a transform reshapes, as the public sees them. FastAPI's schema describes the body
//! its handler takes (or gives); with a `request_body` / `response_body` transform in between,
//! the public sends (or gets) another: the section's `public_schema` when given, else any JSON
//! object, with a warning — a connector whose fields named the backend's model would lead a
//! flow's author to send the wrong body.

use crate::plan::Operation;
use serde_json::{json, Map, Value};
use std::borrow::Cow;

/// `fastapi` with the request body and the first 2xx JSON response replaced where `operation`
/// transforms them; borrowed as it is otherwise.
pub(crate) fn public_bodies<'a>(
    fastapi: &'a Map<String, Value>,
    operation: &Operation,
) -> Cow<'a, Map<String, Value>> {
    if operation.request_body.is_none() && operation.response_body.is_none() {
        return Cow::Borrowed(fastapi);
    }
    let mut public = fastapi.clone();
    if let Some(transform) = &operation.request_body {
        let schema = schema_or_open(transform.public_schema.as_ref());
        public.insert(
            "requestBody".into(),
            json!({ "required": true, "content": { "application/json": { "schema": schema } } }),
        );
    }
    if let Some(transform) = &operation.response_body {
        let schema = schema_or_open(transform.public_schema.as_ref());
        if let Some(responses) = public.get_mut("responses").and_then(Value::as_object_mut) {
            let first_2xx = responses
                .iter_mut()
                .filter(|(status, _)| status.starts_with('2'))
                .map(|(_, response)| response)
                .next();
            match first_2xx.and_then(Value::as_object_mut) {
                Some(response) => {
                    response.insert(
                        "content".into(),
                        json!({ "application/json": { "schema": schema } }),
                    );
                }
                None => {
                    responses.insert(
                        "200".into(),
                        json!({ "description": "Success",
                                "content": { "application/json": { "schema": schema } } }),
                    );
                }
            }
        }
    }
    Cow::Owned(public)
}

fn schema_or_open(schema: Option<&Value>) -> Value {
    schema
        .cloned()
        .unwrap_or_else(|| json!({ "type": "object" }))
}
