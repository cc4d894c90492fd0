//! `tollgate connector`: the Power Platform custom connector (Swagger 2.0 `apiDefinition`,
//! `apiProperties`, paconn `settings`), generated from a tollgate configuration and the
//! service's OpenAPI 3.x document, as APIM's "export to Power Platform" does. Pure functions:
//! documents in, documents out; the CLI reads and writes the files.
//!
//! The connector describes the **public** API: tollgate's operations as callers see them,
//! each mapped back through its `rewrite` to the FastAPI operation it reaches
//! (`public_api.rs`).

mod action;
mod auth;
mod document;
mod drift;
mod error;
mod gateway;
mod names;
mod notes;
mod openapi_out;
mod parameters;
mod properties;
mod public_api;
mod public_body;
mod reachable;
mod schema;

pub use auth::AuthChoice;
pub use drift::{drift, Drift};
pub use error::ConnectorError;
pub(crate) use names::function_name;
pub(crate) use public_api::root_path;

use crate::config::{AuthMode, Config, Unmatched};
use crate::plan::Plan;
use auth::{ConnectorAuth, Entra};
use names::NameParts;
use notes::Notes;
use parameters::Owned;
use public_api::PublicApi;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// apiDefinition.swagger.json, apiProperties.json, settings.json.
    #[default]
    PowerPlatform,
    /// openapi.json: the same public API as OpenAPI 3.1.
    OpenApi,
}

/// The command line's choices (docs/connector.md).
#[derive(Debug, Clone)]
pub struct Options {
    pub host: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub scheme: String,
    pub base_path: String,
    pub auth: AuthChoice,
    pub client_id: Option<String>,
    pub resource_uri: Option<String>,
    pub brand_color: String,
    pub format: Format,
}

impl Options {
    /// The defaults the command line documents, for `host`.
    pub fn for_host(host: &str) -> Self {
        Self {
            host: host.to_string(),
            title: None,
            description: None,
            scheme: "https".to_string(),
            base_path: "/".to_string(),
            auth: AuthChoice::Auto,
            client_id: None,
            resource_uri: None,
            brand_color: properties::DEFAULT_BRAND_COLOR.to_string(),
            format: Format::PowerPlatform,
        }
    }
}

/// The generated files and what the operator should know about them.
#[derive(Debug)]
pub struct Generated {
    /// (file name, contents), in the order they are written.
    pub files: Vec<(&'static str, String)>,
    /// FastAPI operations no tollgate operation reaches: "METHOD /backend/path".
    pub left_out: Vec<String>,
    /// What could not be carried over as it is, one line each: a repeated warning once, with
    /// its count, and at most a hundred distinct lines.
    pub warnings: Vec<String>,
}

/// Both inputs, checked: the configuration as the filter compiles it, and an OpenAPI 3.x
/// document.
struct Inputs {
    plan: Plan,
    issuers: Vec<String>,
    audiences: Vec<String>,
    openapi: Value,
}

pub fn generate(
    config: &[u8],
    openapi: &[u8],
    options: &Options,
) -> Result<Generated, ConnectorError> {
    check_options(options)?;
    let inputs = read_inputs(config, openapi)?;
    let api = public_api::map(&inputs.plan, &inputs.openapi);
    if api.exposed.is_empty() {
        return Err(ConnectorError::NothingExposed);
    }
    let auth = auth::resolve(options.auth, api.exposed.iter().map(|e| e.operation.auth));
    let entra = entra(&inputs, &api, auth, options)?;
    let ids = operation_ids(&api);
    let mut notes = Notes::new(openapi.len());
    public_api::note_open_bodies(&api.exposed, &mut notes);
    let files = match options.format {
        Format::PowerPlatform => {
            let definition = api_definition(
                &inputs,
                &api,
                &ids,
                options,
                auth,
                entra.as_ref(),
                &mut notes,
            );
            let (parameters, policies) =
                auth::connection(auth, &inputs.plan.key_header_display, entra.as_ref());
            vec![
                ("apiDefinition.swagger.json", pretty(&definition)),
                (
                    "apiProperties.json",
                    pretty(&properties::api_properties(
                        parameters,
                        policies,
                        &options.brand_color,
                    )),
                ),
                ("settings.json", pretty(&properties::settings())),
            ]
        }
        Format::OpenApi => {
            let owned = Owned::of(&inputs.plan);
            let document = openapi_out::document(
                &inputs.openapi,
                &api,
                &ids,
                &inputs.plan,
                &owned,
                options,
                entra.as_ref(),
            );
            vec![("openapi.json", pretty(&document))]
        }
    };
    if let Some(title) = options.title.as_deref().filter(|t| t.chars().count() > 30) {
        notes.push(format!(
            "--title {title:?} is longer than the 30 characters Power Platform accepts"
        ));
    }
    let left_out: Vec<String> = api
        .left_out
        .iter()
        .map(|l| format!("{} {}", l.method, l.backend_path))
        .collect();
    if inputs.plan.unmatched == Unmatched::Pass && !left_out.is_empty() {
        notes.push(format!(
            "`unmatched: pass` forwards what no operation matches untouched: the {} operation(s) left out are reachable by anyone, without a key or a token, at their backend paths",
            left_out.len()
        ));
    }
    if let Some(mismatch) = forced_auth_mismatch(options.auth, &api) {
        notes.push(mismatch);
    }
    Ok(Generated {
        files,
        left_out,
        warnings: notes.lines(),
    })
}

/// A forced `--auth` that some exposed operation will refuse every call of.
fn forced_auth_mismatch(choice: AuthChoice, api: &PublicApi) -> Option<String> {
    let refused = |mode: AuthMode| match choice {
        AuthChoice::Auto | AuthChoice::Both => false,
        AuthChoice::Key => matches!(mode, AuthMode::Jwt | AuthMode::Both),
        AuthChoice::Aad => matches!(mode, AuthMode::SubscriptionKey | AuthMode::Both),
    };
    let names: BTreeSet<&str> = api
        .exposed
        .iter()
        .filter(|e| refused(e.operation.auth))
        .map(|e| e.operation.name.as_str())
        .collect();
    (!names.is_empty()).then(|| {
        let names: Vec<&str> = names.into_iter().collect();
        format!(
            "--auth does not give the credential operation(s) {} require: every call of theirs will be refused (401)",
            names.join(", ")
        )
    })
}

/// The Entra ID sign-in: the connector's when it signs in with a token (an app registration
/// required); the OpenAPI description's whenever an exposed operation takes a token (no app
/// registration there: a client brings its own).
fn entra(
    inputs: &Inputs,
    api: &PublicApi,
    auth: ConnectorAuth,
    options: &Options,
) -> Result<Option<Entra>, ConnectorError> {
    let connector_signs_in = matches!(auth, ConnectorAuth::Aad | ConnectorAuth::Both);
    let takes_tokens = api.exposed.iter().any(|e| {
        matches!(
            e.operation.auth,
            AuthMode::Jwt | AuthMode::Either | AuthMode::Both
        )
    });
    let wanted = match options.format {
        Format::PowerPlatform => connector_signs_in,
        Format::OpenApi => connector_signs_in || (takes_tokens && inputs.plan.jwt.is_some()),
    };
    if !wanted {
        return Ok(None);
    }
    if inputs.plan.jwt.is_none() {
        return Err(ConnectorError::NoJwtSection);
    }
    let client_id = match options.format {
        Format::PowerPlatform => Some(
            options
                .client_id
                .as_deref()
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .ok_or(ConnectorError::ClientIdRequired)?,
        ),
        Format::OpenApi => None,
    };
    Entra::from(
        client_id,
        options.resource_uri.as_deref(),
        &inputs.issuers,
        &inputs.audiences,
    )
    .map(Some)
}

fn check_options(options: &Options) -> Result<(), ConnectorError> {
    let bad = |name, message: &str| {
        Err(ConnectorError::Option {
            name,
            message: message.to_string(),
        })
    };
    if !is_host(&options.host) {
        return bad(
            "--host",
            "a host name (and :port), such as api.contoso.com, without scheme or path",
        );
    }
    if options
        .title
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        return bad("--title", "must not be empty");
    }
    if !matches!(options.scheme.as_str(), "https" | "http") {
        return bad("--scheme", "https or http");
    }
    if !options.base_path.starts_with('/') || options.base_path.contains(['?', '#', ' ']) {
        return bad("--base-path", "a path starting with '/'");
    }
    if !properties::is_brand_color(&options.brand_color) {
        return bad("--brand-color", "a colour as #RRGGBB");
    }
    Ok(())
}

/// A host as Power Platform's schema takes it (`^[^{}/ :\\]+(?::\d+)?$`), printable, with a
/// port that exists.
fn is_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '{' | '}' | '/' | ':' | '\\'));
    let port_ok = port.is_none_or(|port| {
        port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    name_ok && port_ok
}

/// An OpenAPI 3.x document with a `paths` object (FastAPI's `/openapi.json`).
pub fn read_openapi(openapi: &[u8]) -> Result<Value, ConnectorError> {
    let openapi: Value = serde_json::from_slice(openapi)
        .map_err(|e| ConnectorError::OpenApiSyntax(e.to_string()))?;
    match openapi.get("openapi").and_then(Value::as_str) {
        Some(version) if version.starts_with("3.") => {}
        Some(version) => {
            return Err(ConnectorError::NotOpenApi3(format!(
                "\"openapi\": \"{version}\""
            )))
        }
        None if openapi.get("swagger").is_some() => {
            return Err(ConnectorError::NotOpenApi3("a Swagger 2.0 document".into()))
        }
        None => {
            return Err(ConnectorError::NotOpenApi3(
                "no \"openapi\" version field".into(),
            ))
        }
    }
    if !openapi.get("paths").is_some_and(Value::is_object) {
        return Err(ConnectorError::NotOpenApi3("no \"paths\" object".into()));
    }
    Ok(openapi)
}

fn read_inputs(config: &[u8], openapi: &[u8]) -> Result<Inputs, ConnectorError> {
    let plan = Plan::from_json(config)?;
    // Accepted by the plan above, so it parses; issuers and audiences are not kept in the plan.
    let jwt = serde_json::from_slice::<Config>(config)
        .ok()
        .and_then(|c| c.jwt);
    let issuers = jwt
        .as_ref()
        .and_then(|j| j.issuers.clone())
        .unwrap_or_default();
    let audiences = jwt.and_then(|j| j.audiences).unwrap_or_default();
    let openapi = read_openapi(openapi)?;
    Ok(Inputs {
        plan,
        issuers,
        audiences,
        openapi,
    })
}

fn operation_ids(api: &PublicApi) -> Vec<String> {
    let parts: Vec<NameParts> = api
        .exposed
        .iter()
        .map(|e| NameParts {
            operation_index: e.operation_index,
            operation_name: e.operation.name.clone(),
            function_name: names::function_name(
                e.fastapi.get("operationId").and_then(Value::as_str),
                e.openapi_path,
            ),
            method: e.method.to_string(),
        })
        .collect();
    names::operation_ids(&parts)
}

/// apiDefinition.swagger.json.
fn api_definition(
    inputs: &Inputs,
    api: &PublicApi,
    ids: &[String],
    options: &Options,
    auth: ConnectorAuth,
    entra: Option<&Entra>,
    notes: &mut Notes,
) -> Value {
    let owned = Owned::of(&inputs.plan);
    let mut paths = Map::new();
    for (exposed, id) in api.exposed.iter().zip(ids) {
        let operation =
            action::swagger_operation(exposed, id, &inputs.openapi, &inputs.plan, &owned, notes);
        let item = paths
            .entry(exposed.public_path.clone())
            .or_insert_with(|| json!({}));
        if let Some(item) = item.as_object_mut() {
            item.insert(exposed.method.to_string(), operation);
        }
    }
    let (security_definitions, security) =
        auth::security_definitions(auth, &inputs.plan.key_header_display, entra);
    let mut document = Map::new();
    document.insert("swagger".into(), json!("2.0"));
    document.insert("info".into(), info(&inputs.openapi, options));
    document.insert("host".into(), json!(options.host));
    document.insert("basePath".into(), json!(base_path(&options.base_path)));
    document.insert("schemes".into(), json!([options.scheme]));
    document.insert("consumes".into(), json!(["application/json"]));
    document.insert("produces".into(), json!(["application/json"]));
    let paths = Value::Object(paths);
    let used = reachable::with_used_schemas(&inputs.openapi, &paths, true);
    document.insert("paths".into(), paths);
    document.insert(
        "definitions".into(),
        Value::Object(schema::definitions(&used, notes)),
    );
    document.insert("securityDefinitions".into(), security_definitions);
    document.insert("security".into(), security);
    Value::Object(document)
}

fn info(openapi: &Value, options: &Options) -> Value {
    let from_doc = |field: &str| {
        openapi
            .pointer(&format!("/info/{field}"))
            .and_then(Value::as_str)
    };
    let mut info = Map::new();
    let title = options
        .title
        .as_deref()
        .or(from_doc("title"))
        .unwrap_or("API");
    info.insert("title".into(), json!(title));
    if let Some(description) = options.description.as_deref().or(from_doc("description")) {
        info.insert("description".into(), json!(description));
    }
    info.insert(
        "version".into(),
        json!(from_doc("version").unwrap_or("1.0")),
    );
    Value::Object(info)
}

/// `/gw/` → `/gw`: Power Platform joins basePath and path with no care for a doubled slash.
pub(crate) fn base_path(given: &str) -> &str {
    match given.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    }
}

/// Two-space indented JSON with a final newline: the same inputs give the same bytes.
fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests;
