//! Header-value templates: literal text with `{consumer}`, `{product}`, `{operation}` and
//! `{claim:<name>}` placeholders. Parsed once at load; rendering only concatenates.

use std::fmt;

/// Why a header-value template cannot be used. `Display` is the operator-facing message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateError {
    /// A control character other than tab, which a header value cannot carry.
    ControlCharacter {
        /// The character found first.
        character: char,
    },
    /// A `}` that closes no placeholder.
    UnmatchedClose {
        /// The whole template, as given.
        template: String,
    },
    /// A `{` that is never closed.
    Unclosed {
        /// The whole template, as given.
        template: String,
    },
    /// A placeholder other than `{consumer}`, `{product}`, `{operation}`, `{claim:<name>}`.
    UnknownPlaceholder {
        /// What stood between the braces.
        name: String,
    },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ControlCharacter { character } => write!(
                f,
                "control character U+{:04X} is not allowed in a header value",
                u32::from(*character)
            ),
            Self::UnmatchedClose { template } => {
                write!(f, "unmatched '}}' in template {template:?}")
            }
            Self::Unclosed { template } => write!(f, "unclosed '{{' in template {template:?}"),
            Self::UnknownPlaceholder { name } => write!(
                f,
                "unknown placeholder {{{name}}}: use {{consumer}}, {{product}}, {{operation}} or {{claim:<name>}}"
            ),
        }
    }
}

impl std::error::Error for TemplateError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Consumer,
    Product,
    Operation,
    Claim(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// What a template can refer to for one request. `None` means "not known for this request"
/// (no consumer on an `auth: none` operation, a claim the token does not carry).
pub struct TemplateValues<'a> {
    pub consumer: Option<&'a str>,
    pub product: Option<&'a str>,
    pub operation: &'a str,
    pub claims: &'a dyn ClaimSource,
}

/// Claim values of the request's verified token, as text fit for a header.
pub trait ClaimSource {
    fn claim(&self, name: &str) -> Option<String>;
}

/// For requests that carry no verified token.
pub struct NoClaims;

impl ClaimSource for NoClaims {
    fn claim(&self, _name: &str) -> Option<String> {
        None
    }
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if let Some(character) = text.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(TemplateError::ControlCharacter { character });
        }
        let mut pieces = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    pieces.push(Piece::Literal(rest.to_string()));
                    break;
                }
                Some(at) => {
                    let (literal, tail) = rest.split_at(at);
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(literal.to_string()));
                    }
                    if tail.starts_with('}') {
                        return Err(TemplateError::UnmatchedClose {
                            template: text.to_string(),
                        });
                    }
                    let close = tail.find('}').ok_or_else(|| TemplateError::Unclosed {
                        template: text.to_string(),
                    })?;
                    let name = tail.get(1..close).unwrap_or_default();
                    pieces.push(Self::placeholder(name)?);
                    rest = tail.get(close + 1..).unwrap_or_default();
                }
            }
        }
        Ok(Self { pieces })
    }

    fn placeholder(name: &str) -> Result<Piece, TemplateError> {
        match name {
            "consumer" => Ok(Piece::Consumer),
            "product" => Ok(Piece::Product),
            "operation" => Ok(Piece::Operation),
            _ => match name.strip_prefix("claim:") {
                Some(claim) if !claim.is_empty() && !claim.contains('{') => {
                    Ok(Piece::Claim(claim.to_string()))
                }
                _ => Err(TemplateError::UnknownPlaceholder {
                    name: name.to_string(),
                }),
            },
        }
    }

    /// The value for this request, or `None` when a placeholder has no value here.
    pub fn render(&self, values: &TemplateValues) -> Option<String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Consumer => out.push_str(values.consumer?),
                Piece::Product => out.push_str(values.product?),
                Piece::Operation => out.push_str(values.operation),
                Piece::Claim(name) => out.push_str(&values.claims.claim(name)?),
            }
        }
        Some(out)
    }

    /// Whether the value says who is calling (`{consumer}`, `{product}`, a claim): a header
    /// holding it is one a backend may trust, so tollgate owns that name on every request.
    pub fn is_identity(&self) -> bool {
        self.pieces
            .iter()
            .any(|piece| matches!(piece, Piece::Consumer | Piece::Product | Piece::Claim(_)))
    }

    pub fn claim_names(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Claim(name) => Some(name.as_str()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct OneClaim;
    impl ClaimSource for OneClaim {
        fn claim(&self, name: &str) -> Option<String> {
            (name == "oid").then(|| "0000-1111".to_string())
        }
    }

    fn values<'a>(consumer: Option<&'a str>, claims: &'a dyn ClaimSource) -> TemplateValues<'a> {
        TemplateValues {
            consumer,
            product: consumer.map(|_| "starter"),
            operation: "validate",
            claims,
        }
    }

    #[test]
    fn renders_every_placeholder() {
        let t = Template::parse("{consumer}/{product}/{operation}/{claim:oid}!").unwrap();
        assert_eq!(
            t.render(&values(Some("invoice-flow"), &OneClaim))
                .as_deref(),
            Some("invoice-flow/starter/validate/0000-1111!")
        );
        assert_eq!(t.claim_names().collect::<Vec<_>>(), vec!["oid"]);
    }

    #[test]
    fn literal_only_and_empty() {
        let t = Template::parse("fixed value").unwrap();
        assert_eq!(
            t.render(&values(None, &NoClaims)).as_deref(),
            Some("fixed value")
        );
        assert_eq!(
            Template::parse("")
                .unwrap()
                .render(&values(None, &NoClaims))
                .as_deref(),
            Some("")
        );
    }

    #[test]
    fn missing_value_renders_nothing() {
        let t = Template::parse("id={consumer}").unwrap();
        assert_eq!(t.render(&values(None, &NoClaims)), None);
        let t = Template::parse("{claim:roles}").unwrap();
        assert_eq!(t.render(&values(Some("a"), &OneClaim)), None);
    }

    #[test]
    fn refuses_bad_templates() {
        for (text, wanted) in [
            ("{user}", "unknown placeholder {user}"),
            ("{claim:}", "unknown placeholder {claim:}"),
            ("{}", "unknown placeholder {}"),
            ("{consumer", "unclosed '{'"),
            ("consumer}", "unmatched '}'"),
            ("a\r\nb", "control character U+000D"),
            ("a\0", "control character U+0000"),
        ] {
            let err = Template::parse(text).unwrap_err().to_string();
            assert!(err.contains(wanted), "{text:?}: {err}");
        }
    }

    #[test]
    fn errors_say_the_same_as_ever() {
        for (text, wanted) in [
            (
                "a\r\nb",
                "control character U+000D is not allowed in a header value",
            ),
            ("x}", "unmatched '}' in template \"x}\""),
            ("{x", "unclosed '{' in template \"{x\""),
            (
                "{user}",
                "unknown placeholder {user}: use {consumer}, {product}, {operation} or {claim:<name>}",
            ),
        ] {
            assert_eq!(
                Template::parse(text).map_err(|e| e.to_string()),
                Err(wanted.to_string()),
                "{text:?}"
            );
        }
        assert_eq!(
            Template::parse("{claim:}"),
            Err(TemplateError::UnknownPlaceholder {
                name: "claim:".into()
            })
        );
    }
}
