//! `tollgate init`: a starting configuration from FastAPI's OpenAPI, as APIM imports an API —
//! one `path_template` operation per FastAPI operation, so exactly the documented API is
//! public and everything else is a 404. Pure: documents in, document out; the CLI makes the
//! key and writes the file.

use crate::connector::{read_openapi, ConnectorError};
use crate::path_template::PathTemplate;
use crate::plan::Plan;
use crate::subscription::KeyHash;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;

/// How the generated operations authenticate (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitAuth {
    #[default]
    SubscriptionKey,
    Jwt,
    Either,
}

impl InitAuth {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "subscription_key" => Some(Self::SubscriptionKey),
            "jwt" => Some(Self::Jwt),
            "either" => Some(Self::Either),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::SubscriptionKey => "subscription_key",
            Self::Jwt => "jwt",
            Self::Either => "either",
        }
    }
}

#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Backend paths under this prefix are public under `public_prefix` instead.
    pub backend_prefix: String,
    pub public_prefix: String,
    pub auth: InitAuth,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            backend_prefix: String::new(),
            public_prefix: "/".to_string(),
            auth: InitAuth::SubscriptionKey,
        }
    }
}

#[derive(Debug)]
pub enum InitError {
    OpenApi(ConnectorError),
    /// `--backend-prefix` / `--public-prefix` is not a path.
    Prefix {
        flag: &'static str,
        value: String,
    },
    /// No FastAPI operation could become a tollgate operation.
    NoOperations,
    /// The configuration cannot be written out (not expected: plain data).
    Serialize(String),
    /// The configuration made does not load (a defect of `init`, or an OpenAPI document whose
    /// paths collide in a way FastAPI itself could not route).
    Refused(crate::ConfigError),
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OpenApi(error) => write!(f, "{error}"),
            Self::Prefix { flag, value } => {
                write!(f, "{flag} {value}: must be a path starting with '/'")
            }
            Self::NoOperations => f.write_str("the OpenAPI document has no operation to expose"),
            Self::Serialize(message) => write!(f, "cannot write the configuration: {message}"),
            Self::Refused(error) => write!(f, "the configuration made does not load: {error}"),
        }
    }
}

impl std::error::Error for InitError {}

/// The configuration, and what the operator should know about it.
#[derive(Debug)]
pub struct Initialized {
    /// Pretty-printed JSON, keys in the order the documentation lists them.
    pub config: String,
    pub operations: usize,
    /// FastAPI operations left out, one line each: "METHOD /backend/path: why".
    pub skipped: Vec<String>,
    /// What the operator may not expect, one line each.
    pub warnings: Vec<String>,
}

/// The product every generated consumer is on: a modest burst limit to start from.
pub const DEFAULT_PRODUCT: &str = "default";
pub const FIRST_CONSUMER: &str = "first-consumer";
const DEFAULT_RATE_LIMIT_CALLS: u64 = 60;
const DEFAULT_RATE_LIMIT_PERIOD_S: u64 = 60;

/// Methods in the order a path's operations are written: HEAD before GET, since a GET
/// operation also takes HEAD and would leave a later HEAD one unreachable.
const METHODS: [&str; 8] = [
    "head", "get", "put", "post", "delete", "options", "patch", "trace",
];

pub fn starting_config(
    openapi: &[u8],
    key: &KeyHash,
    options: &InitOptions,
) -> Result<Initialized, InitError> {
    let openapi = read_openapi(openapi).map_err(InitError::OpenApi)?;
    for (flag, value) in [
        ("--backend-prefix", &options.backend_prefix),
        ("--public-prefix", &options.public_prefix),
    ] {
        let empty_backend = flag == "--backend-prefix" && value.is_empty();
        if !empty_backend && (!value.starts_with('/') || value.contains(['{', '}', '?', '#'])) {
            return Err(InitError::Prefix {
                flag,
                value: value.clone(),
            });
        }
    }
    let root = crate::connector::root_path(&openapi);
    let mut operations = Vec::new();
    let mut skipped = Vec::new();
    let mut names = BTreeSet::new();
    let mut under_prefix = false;
    let paths = openapi
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flatten();
    for (openapi_path, item) in paths {
        let backend_path = format!("{root}{openapi_path}");
        for method in METHODS {
            let Some(fastapi) = item.get(method) else {
                continue;
            };
            let upper = method.to_ascii_uppercase();
            let (public, moved) = public_path(&backend_path, &root, options);
            under_prefix |= moved;
            if let Err(error) = PathTemplate::parse(&public) {
                skipped.push(format!("{upper} {backend_path}: {error}"));
                continue;
            }
            let function = function_name(fastapi, openapi_path, method);
            let name = unique_name(&mut names, &function, method);
            operations.push(StarterOperation {
                name,
                methods: vec![upper],
                rewrite: (backend_path != public).then(|| backend_path.clone()),
                path_template: public,
                auth: options.auth.as_str(),
            });
        }
    }
    let mut warnings = Vec::new();
    if !options.backend_prefix.is_empty() && !under_prefix {
        warnings.push(format!(
            "--backend-prefix {} matches no path of the document (its paths start with {}): \
             every path stays public as the backend serves it",
            options.backend_prefix,
            if root.is_empty() {
                "the OpenAPI path"
            } else {
                root.as_str()
            }
        ));
    }
    if operations.is_empty() {
        return Err(InitError::NoOperations);
    }
    let config = StarterConfig {
        subscription_key: SubscriptionKey {
            header: "Ocp-Apim-Subscription-Key",
            query: "subscription-key",
        },
        jwt: (options.auth != InitAuth::SubscriptionKey).then(entra_placeholder),
        products: [(
            DEFAULT_PRODUCT,
            Product {
                rate_limit: RateLimit {
                    calls: DEFAULT_RATE_LIMIT_CALLS,
                    renewal_period_s: DEFAULT_RATE_LIMIT_PERIOD_S,
                },
            },
        )]
        .into_iter()
        .collect(),
        consumers: vec![Consumer {
            id: FIRST_CONSUMER,
            product: DEFAULT_PRODUCT,
            keys: vec![key.to_config_string()],
        }],
        operations,
        unmatched: "reject",
    };
    // Two FastAPI paths that become one public path (a path outside the prefix beside its
    // twin under it), or templates FastAPI could not tell apart either: the later one can
    // never be reached, so it is left out, named, rather than the whole run refused.
    let mut config = config;
    let text = loop {
        let mut text = serde_json::to_string_pretty(&config)
            .map_err(|e| InitError::Serialize(e.to_string()))?;
        text.push('\n');
        match Plan::from_json(text.as_bytes()) {
            Ok(_) => break text,
            Err(error) => {
                let index = unreachable_operation(&error).ok_or(InitError::Refused(error))?;
                let dropped = config.operations.remove(index);
                skipped.push(format!(
                    "{} {}: public path {} is another operation's already",
                    dropped.methods.join(","),
                    dropped.rewrite.as_deref().unwrap_or(&dropped.path_template),
                    dropped.path_template
                ));
            }
        }
    };
    if config.operations.is_empty() {
        return Err(InitError::NoOperations);
    }
    Ok(Initialized {
        config: text,
        operations: config.operations.len(),
        skipped,
        warnings,
    })
}

/// The index of the operation a refusal says can never be reached.
fn unreachable_operation(error: &crate::ConfigError) -> Option<usize> {
    if !error.message().starts_with(crate::plan::UNREACHABLE) {
        return None;
    }
    error
        .path()
        .strip_prefix("operations[")?
        .split_once(']')?
        .0
        .parse()
        .ok()
}

/// The public path of a backend path, and whether `--backend-prefix` moved it: a path under
/// the prefix (given with or without the document's `root_path`) moves to `--public-prefix`;
/// any other path keeps its own path under `--public-prefix`.
fn public_path(backend_path: &str, root: &str, options: &InitOptions) -> (String, bool) {
    let prefix = options.backend_prefix.trim_end_matches('/');
    let under = |prefix: &str| {
        backend_path
            .strip_prefix(prefix)
            .filter(|rest| !prefix.is_empty() && (rest.is_empty() || rest.starts_with('/')))
    };
    let with_root = format!("{root}{prefix}");
    let moved = under(prefix).or_else(|| under(&with_root).filter(|_| !prefix.is_empty()));
    let rest = moved.unwrap_or(backend_path);
    let public = options.public_prefix.trim_end_matches('/');
    let path = match (public.is_empty(), rest.is_empty()) {
        (true, true) => "/".to_string(),
        (false, true) => public.to_string(),
        _ => format!("{public}{rest}"),
    };
    (path, moved.is_some())
}

/// FastAPI's function name: its default operationId is the name followed by the path (every
/// character but letters, digits and `_` made `_`) and `_<method>`; a custom operationId is
/// taken whole. Without one, the method and the path.
fn function_name(operation: &Value, openapi_path: &str, method: &str) -> String {
    let name = match operation.get("operationId").and_then(Value::as_str) {
        Some(id) => crate::connector::function_name(Some(id), openapi_path),
        None => format!("{method}{openapi_path}"),
    };
    let snake = snake_case(&name);
    if snake.is_empty() {
        snake_case(&format!("{method}{openapi_path}"))
    } else {
        snake
    }
}

/// `listInvoices` → `list_invoices`, `Get Invoice` → `get_invoice`; ASCII letters, digits and
/// single underscores, at most 100 bytes (an operation name is a metric label).
fn snake_case(text: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && previous_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') {
                out.push('_');
            }
            previous_lower = false;
        }
    }
    let trimmed: String = out.trim_matches('_').chars().take(100).collect();
    trimmed.trim_end_matches('_').to_string()
}

/// `name`, else `name_method`, else `name_method_2`, ...
fn unique_name(taken: &mut BTreeSet<String>, name: &str, method: &str) -> String {
    let mut candidate = name.to_string();
    if taken.contains(&candidate) {
        candidate = format!("{name}_{method}");
    }
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{name}_{method}_{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// Entra ID as the token issuer, with the tenant and the API's application id URI left for
/// the operator to fill in (the CLI says so); any valid token becomes its own consumer on the
/// default product until consumers name their clients.
fn entra_placeholder() -> Jwt {
    Jwt {
        issuers: vec![format!(
            "https://login.microsoftonline.com/{TENANT_PLACEHOLDER}/v2.0"
        )],
        audiences: vec![AUDIENCE_PLACEHOLDER.to_string()],
        openid_config: RemoteKeys {
            url: format!(
                "https://login.microsoftonline.com/{TENANT_PLACEHOLDER}/v2.0/.well-known/openid-configuration"
            ),
            cluster: "entra_id",
        },
        default_product: DEFAULT_PRODUCT,
    }
}

/// What the operator replaces in a generated `jwt` section.
pub const TENANT_PLACEHOLDER: &str = "TENANT_ID";
/// Entra ID v2.0 access tokens carry the API's application (client) ID as `aud`.
pub const AUDIENCE_PLACEHOLDER: &str = "API_CLIENT_ID";

// The generated document, in the order the documentation presents the keys.

#[derive(Serialize)]
struct StarterConfig {
    subscription_key: SubscriptionKey,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt: Option<Jwt>,
    products: std::collections::BTreeMap<&'static str, Product>,
    consumers: Vec<Consumer>,
    operations: Vec<StarterOperation>,
    unmatched: &'static str,
}

#[derive(Serialize)]
struct SubscriptionKey {
    header: &'static str,
    query: &'static str,
}

#[derive(Serialize)]
struct Jwt {
    issuers: Vec<String>,
    audiences: Vec<String>,
    openid_config: RemoteKeys,
    default_product: &'static str,
}

#[derive(Serialize)]
struct RemoteKeys {
    url: String,
    cluster: &'static str,
}

#[derive(Serialize)]
struct Product {
    rate_limit: RateLimit,
}

#[derive(Serialize)]
struct RateLimit {
    calls: u64,
    renewal_period_s: u64,
}

#[derive(Serialize)]
struct Consumer {
    id: &'static str,
    product: &'static str,
    keys: Vec<String>,
}

#[derive(Serialize)]
struct StarterOperation {
    name: String,
    methods: Vec<String>,
    path_template: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rewrite: Option<String>,
    auth: &'static str,
}

#[cfg(test)]
mod tests;
