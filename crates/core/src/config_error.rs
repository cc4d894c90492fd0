//! A refused configuration: where, and what is wrong there. Every compile step returns this one
//! type, so it lives in a leaf that every step can reach without reaching each other.

use std::fmt;

/// Why a configuration is refused. `Display` is the operator-facing text,
/// `<path>: <message>` (`operations[2].rewrite: must start with '/'`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The document is not JSON, or not one JSON value.
    Syntax { path: String, message: String },
    /// A value has the wrong type, an unknown or duplicate key (serde's finding).
    Shape { path: String, message: String },
    /// A value breaks a rule of the contract (unknown product, bad template, ...).
    Rule { path: String, message: String },
}

impl ConfigError {
    /// A broken rule at `path`.
    pub fn rule(path: impl Into<String>, message: impl fmt::Display) -> Self {
        Self::Rule {
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// Where in the configuration the problem is (`configuration` for the whole document).
    pub fn path(&self) -> &str {
        match self {
            Self::Syntax { path, .. } | Self::Shape { path, .. } | Self::Rule { path, .. } => path,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Syntax { message, .. }
            | Self::Shape { message, .. }
            | Self::Rule { message, .. } => message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path(), self.message())
    }
}

impl std::error::Error for ConfigError {}
