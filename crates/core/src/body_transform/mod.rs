//! `request_body` / `response_body`: JSON bodies reshaped by a JMESPath expression
//! (docs/configuration.md, "Body transforms and backend error masking"), APIM's `set-body`.
//!
//! The expression is compiled at load. Per request, the pipeline gathers the facts the context
//! object holds besides the body (`facts.rs`) and checks what the headers already tell (the
//! content type, a declared length); the glue buffers the body to its end and hands it here.
//! One evaluation may take at most `200,000 + 2 × body bytes` steps (`expression.rs` says what
//! a step is), and its result may be at most `2 × max_bytes + 64 KiB` once written.

pub(crate) mod expression;
mod facts;
pub(crate) mod output;
mod public_schema;

use crate::config::BodyTransformConfig;
use crate::config_error::ConfigError;
use crate::credential::Headers;
use crate::deny::Denial;
use crate::error_masking::MaskedReply;
use crate::operation::OperationId;
use expression::{EvalError, Expression};
pub use facts::Facts;
pub(crate) use facts::{request_id, Credentials};
use jmespath::{Rcvar, Variable};
use output::OutputError;
use std::fmt;
use std::rc::Rc;

/// `max_bytes` when the configuration gives none: 1 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;
/// Steps every evaluation may take, whatever the body's size.
pub const BASE_STEPS: u64 = 200_000;
/// Further steps per byte of the body.
pub const STEPS_PER_BODY_BYTE: u64 = 2;
/// What a result may exceed `2 × max_bytes` by.
const RESULT_SLACK_BYTES: u64 = 64 * 1024;

/// One compiled `request_body` or `response_body` section.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyTransform {
    pub(crate) expression: Expression,
    pub max_bytes: u64,
    /// The body the public sees, for the connector (a JSON Schema object).
    pub public_schema: Option<serde_json::Value>,
}

impl BodyTransform {
    pub(crate) fn compile(at: &str, config: BodyTransformConfig) -> Result<Self, ConfigError> {
        let expression = Expression::compile(&config.transform)
            .map_err(|err| ConfigError::rule(format!("{at}.transform"), err.to_string()))?;
        let max_bytes = config.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        if max_bytes == 0 {
            return Err(ConfigError::rule(
                format!("{at}.max_bytes"),
                "must be at least 1",
            ));
        }
        if let Some(schema) = &config.public_schema {
            public_schema::check_public_schema(schema)
                .map_err(|err| ConfigError::rule(format!("{at}.public_schema"), err))?;
        }
        Ok(Self {
            expression,
            max_bytes,
            public_schema: config.public_schema,
        })
    }

    /// Parses `body`, evaluates the expression on the context object and writes the result.
    fn run(&self, facts: &Facts, body: &[u8], status: Option<u32>) -> Result<Vec<u8>, Failure> {
        if u64::try_from(body.len()).unwrap_or(u64::MAX) > self.max_bytes {
            return Err(Failure::TooLarge);
        }
        let parsed: Variable = serde_json::from_slice(body).map_err(|_| Failure::NotJson)?;
        let context = facts.context(Rcvar::new(parsed), status);
        let budget = BASE_STEPS.saturating_add(
            STEPS_PER_BODY_BYTE.saturating_mul(u64::try_from(body.len()).unwrap_or(u64::MAX)),
        );
        let result = self
            .expression
            .evaluate(&context, budget)
            .map_err(Failure::Expression)?;
        let most = self
            .max_bytes
            .saturating_mul(2)
            .saturating_add(RESULT_SLACK_BYTES);
        output::to_json(&result, usize::try_from(most).unwrap_or(usize::MAX)).map_err(|err| {
            match err {
                OutputError::TooLarge => Failure::ResultTooLarge,
                OutputError::NotJson => Failure::ResultNotJson,
            }
        })
    }
}

/// Why a body could not be transformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Not `application/json` (or `+json`).
    NotJsonType,
    /// Does not parse as JSON.
    NotJson,
    /// Over `max_bytes`.
    TooLarge,
    /// The expression failed or ran out of steps.
    Expression(EvalError),
    /// The result is longer than a result may be.
    ResultTooLarge,
    /// The result is an expression reference.
    ResultNotJson,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotJsonType => f.write_str("the body is not JSON (content type)"),
            Self::NotJson => f.write_str("the body is not valid JSON"),
            Self::TooLarge => f.write_str("the body is larger than max_bytes"),
            Self::Expression(err) => write!(f, "the transform failed: {err}"),
            Self::ResultTooLarge => f.write_str("the transform's result is too large"),
            Self::ResultNotJson => f.write_str("the transform's result is not JSON"),
        }
    }
}

/// `application/json` or any `+json` type, parameters (`; charset=utf-8`) aside.
pub fn is_json_type(content_type: Option<&[u8]>) -> bool {
    let Some(value) = content_type.and_then(|v| std::str::from_utf8(v).ok()) else {
        return false;
    };
    let media = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = media.split_once('/') else {
        return false;
    };
    (kind == "application" && subtype == "json") || (!kind.is_empty() && subtype.ends_with("+json"))
}

fn header<'h>(headers: &'h Headers, name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// A declared `Content-Length`, when it reads as a number.
pub fn declared_length(value: Option<&[u8]>) -> Option<u64> {
    value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The request side of an operation with a `request_body` transform: what the headers tell
/// before the body comes. A request that brings no body is left as it is.
pub(crate) fn check_request_headers(
    transform: &BodyTransform,
    headers: &Headers,
) -> Result<(), Denial> {
    if !is_json_type(header(headers, "content-type")) {
        return Err(Denial::body_not_json_type());
    }
    match declared_length(header(headers, "content-length")) {
        Some(length) if length > transform.max_bytes => {
            Err(Denial::body_too_large(transform.max_bytes))
        }
        _ => Ok(()),
    }
}

/// Where an operation's transforms are (the plan): the request and response sides find them
/// by operation, so this module never needs the plan itself.
pub trait OperationTransforms {
    fn request_transform(&self, operation: OperationId) -> Option<&BodyTransform>;
    fn response_transform(&self, operation: OperationId) -> Option<&BodyTransform>;
}

/// The request body of one forwarded request, to be reshaped once it is complete.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestReshape {
    pub(crate) operation: OperationId,
    pub(crate) facts: Rc<Facts>,
}

impl RequestReshape {
    fn transform<'p>(&self, plan: &'p dyn OperationTransforms) -> Option<&'p BodyTransform> {
        plan.request_transform(self.operation)
    }

    /// Refuses a body that has grown past `max_bytes` while it is buffered.
    pub fn check_size(
        &self,
        plan: &dyn OperationTransforms,
        buffered_bytes: usize,
    ) -> Result<(), Denial> {
        match self.transform(plan) {
            Some(t) if u64::try_from(buffered_bytes).unwrap_or(u64::MAX) > t.max_bytes => {
                Err(Denial::body_too_large(t.max_bytes))
            }
            _ => Ok(()),
        }
    }

    /// The new body, or the refusal to send instead (400, 413).
    pub fn apply(&self, plan: &dyn OperationTransforms, body: &[u8]) -> Result<Vec<u8>, Denial> {
        let Some(transform) = self.transform(plan) else {
            return Ok(body.to_vec());
        };
        transform
            .run(&self.facts, body, None)
            .map_err(|failure| match failure {
                Failure::TooLarge => Denial::body_too_large(transform.max_bytes),
                Failure::NotJson | Failure::NotJsonType => Denial::body_not_json(),
                Failure::Expression(err) => Denial::body_transform_failed(&err.to_string()),
                Failure::ResultTooLarge | Failure::ResultNotJson => {
                    Denial::body_transform_failed(&failure.to_string())
                }
            })
    }
}

/// The response side of an operation with a `response_body` transform.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseReshape {
    pub(crate) operation: OperationId,
    pub(crate) facts: Rc<Facts>,
    pub(crate) request_id: String,
}

/// What to do with a response once its headers are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseStep {
    /// Not the transform's business (not 2xx, or no body): leave it.
    Leave,
    /// Buffer the body to its end (refusing it past `max_bytes`), then `apply`.
    Buffer { max_bytes: u64 },
    /// It cannot be transformed: answer this instead, for this reason.
    Refuse(MaskedReply, Failure),
}

impl ResponseReshape {
    fn transform<'p>(&self, plan: &'p dyn OperationTransforms) -> Option<&'p BodyTransform> {
        plan.response_transform(self.operation)
    }

    pub fn operation(&self) -> OperationId {
        self.operation
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Decides from the response headers: only 2xx responses with a body are transformed; a
    /// type that is not JSON or a declared length over `max_bytes` is refused at once.
    pub fn on_headers(
        &self,
        plan: &dyn OperationTransforms,
        status: Option<u32>,
        content_type: Option<&[u8]>,
        content_length: Option<&[u8]>,
        end_of_stream: bool,
    ) -> ResponseStep {
        let Some(transform) = self.transform(plan) else {
            return ResponseStep::Leave;
        };
        if !status.is_some_and(|s| (200..300).contains(&s)) || end_of_stream {
            return ResponseStep::Leave;
        }
        if !is_json_type(content_type) {
            return ResponseStep::Refuse(self.bad_gateway(), Failure::NotJsonType);
        }
        match declared_length(content_length) {
            Some(length) if length > transform.max_bytes => {
                ResponseStep::Refuse(self.bad_gateway(), Failure::TooLarge)
            }
            _ => ResponseStep::Buffer {
                max_bytes: transform.max_bytes,
            },
        }
    }

    /// The new body, or the 502 to answer instead and why.
    pub fn apply(
        &self,
        plan: &dyn OperationTransforms,
        status: u32,
        body: &[u8],
    ) -> Result<Vec<u8>, (MaskedReply, Failure)> {
        let Some(transform) = self.transform(plan) else {
            return Ok(body.to_vec());
        };
        transform
            .run(&self.facts, body, Some(status))
            .map_err(|failure| (self.bad_gateway(), failure))
    }

    /// The 502 of a 2xx that cannot be transformed.
    pub fn bad_gateway(&self) -> MaskedReply {
        MaskedReply::bad_gateway(&self.request_id)
    }
}

#[cfg(test)]
mod compliance_tests;
#[cfg(test)]
mod tests;
