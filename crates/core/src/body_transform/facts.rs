//! What a transform knows besides the body (docs/configuration.md, "Body transforms"): who called,
//! which operation, the verified token's claims, the query and the headers — never a credential.
//! Gathered once per request, with the headers; the body (and for a response, the status) is added
//! when it is complete.

use crate::credential::{query_params, Headers};
use jmespath::{Rcvar, Variable};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Longest request id repeated in a message; longer ones are cut.
const MAX_REQUEST_ID: usize = 128;

/// The context object of a request's transforms, without the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub consumer: Option<String>,
    pub product: Option<String>,
    pub operation: String,
    /// The verified token's claims (empty without one).
    pub claims: Map<String, Value>,
    /// First value of each query parameter, decoded; the key's parameter left out.
    pub query: BTreeMap<String, String>,
    /// First value of each header, by lower-case name; the key's header, `Authorization`,
    /// `Proxy-Authorization` and the pseudo-headers left out.
    pub headers: BTreeMap<String, String>,
}

/// Where the credentials are, so the facts leave them out.
pub struct Credentials<'a> {
    /// The key header, lower-case.
    pub key_header: &'a str,
    pub key_query: &'a str,
}

impl Facts {
    pub fn gather(
        headers: &Headers,
        query: Option<&str>,
        credentials: &Credentials,
        who: (Option<&str>, Option<&str>),
        operation: &str,
        claims: Option<&Map<String, Value>>,
    ) -> Self {
        let (consumer, product) = who;
        let mut header_map = BTreeMap::new();
        for (name, value) in headers {
            let secret = name == credentials.key_header
                || name == "authorization"
                || name == "proxy-authorization";
            if secret || name.starts_with(':') {
                continue;
            }
            header_map
                .entry(name.clone())
                .or_insert_with(|| String::from_utf8_lossy(value).into_owned());
        }
        let mut query_map = BTreeMap::new();
        for param in query.map(query_params).into_iter().flatten() {
            if param.name_matches(credentials.key_query) {
                continue;
            }
            query_map
                .entry(param.name())
                .or_insert_with(|| String::from_utf8_lossy(&param.value()).into_owned());
        }
        Self {
            consumer: consumer.map(str::to_string),
            product: product.map(str::to_string),
            operation: operation.to_string(),
            claims: claims.cloned().unwrap_or_default(),
            query: query_map,
            headers: header_map,
        }
    }

    /// The whole context object: these facts, the body, and a response's status.
    pub fn context(&self, body: Rcvar, status: Option<u32>) -> Rcvar {
        let text = |s: &str| Rcvar::new(Variable::String(s.to_string()));
        let optional = |s: &Option<String>| s.as_deref().map_or_else(null, text);
        let strings = |map: &BTreeMap<String, String>| {
            Rcvar::new(Variable::Object(
                map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
            ))
        };
        let claims = Variable::try_from(Value::Object(self.claims.clone())).map_or_else(
            |_| Rcvar::new(Variable::Object(BTreeMap::new())),
            Rcvar::new,
        );
        let mut object = BTreeMap::new();
        object.insert("body".to_string(), body);
        object.insert("consumer".to_string(), optional(&self.consumer));
        object.insert("product".to_string(), optional(&self.product));
        object.insert("operation".to_string(), text(&self.operation));
        object.insert("claims".to_string(), claims);
        object.insert("query".to_string(), strings(&self.query));
        object.insert("headers".to_string(), strings(&self.headers));
        if let Some(status) = status {
            object.insert(
                "status".to_string(),
                Rcvar::new(Variable::Number(serde_json::Number::from(status))),
            );
        }
        Rcvar::new(Variable::Object(object))
    }
}

fn null() -> Rcvar {
    Rcvar::new(Variable::Null)
}

/// The request's `x-request-id` as it may appear in a message or a log line: letters, digits
/// and `-_.:` only, at most 128 of them; `unknown` when there is none.
pub fn request_id(headers: &Headers) -> String {
    let id: String = headers
        .iter()
        .find(|(name, _)| name == "x-request-id")
        .map(|(_, value)| {
            value
                .iter()
                .map(|&b| char::from(b))
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
                .take(MAX_REQUEST_ID)
                .collect()
        })
        .unwrap_or_default();
    if id.is_empty() {
        "unknown".to_string()
    } else {
        id
    }
}
