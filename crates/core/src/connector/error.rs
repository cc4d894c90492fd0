//! Why a connector cannot be generated; `Display` is what the operator reads.

use crate::config_error::ConfigError;
use std::fmt;

#[derive(Debug)]
pub enum ConnectorError {
    /// The tollgate configuration is refused, exactly as `tollgate check` and the filter refuse it.
    Config(ConfigError),
    /// The OpenAPI input is not JSON.
    OpenApiSyntax(String),
    /// The input is JSON but not an OpenAPI 3.x document (a Swagger 2.0 file, say).
    NotOpenApi3(String),
    /// No FastAPI operation is reachable through any tollgate operation.
    NothingExposed,
    /// `aad` or `both` needs the Entra app registration the connector signs in with.
    ClientIdRequired,
    /// `aad` or `both` with neither `--resource-uri` nor `jwt.audiences`.
    ResourceUriRequired,
    /// `aad`/`both` asked for, but the configuration has no `jwt` section to accept tokens.
    NoJwtSection,
    /// An option's value is unusable (`--brand-color red`).
    Option { name: &'static str, message: String },
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(error) => write!(f, "{error}"),
            Self::OpenApiSyntax(message) => write!(f, "the OpenAPI input is not JSON: {message}"),
            Self::NotOpenApi3(what) => write!(
                f,
                "the OpenAPI input is not an OpenAPI 3.x document ({what}); FastAPI serves one at /openapi.json"
            ),
            Self::NothingExposed => f.write_str(
                "no operation exposed: no tollgate operation reaches any path of the OpenAPI document",
            ),
            Self::ClientIdRequired => f.write_str(
                "--client-id is required for Entra ID sign-in (--auth aad or both): the app registration the connector signs in with",
            ),
            Self::ResourceUriRequired => f.write_str(
                "--resource-uri is required for Entra ID sign-in when jwt.audiences is not set",
            ),
            Self::NoJwtSection => f.write_str(
                "Entra ID sign-in (--auth aad or both) needs a `jwt` section in the configuration: tollgate would not accept the token",
            ),
            Self::Option { name, message } => write!(f, "{name}: {message}"),
        }
    }
}

impl std::error::Error for ConnectorError {}

impl From<ConfigError> for ConnectorError {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}
