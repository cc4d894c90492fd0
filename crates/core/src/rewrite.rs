//! Header and path rewrites: the edits an admitted request (or its response) gets.

use crate::route_table::Matched;
use crate::template::{Template, TemplateValues};

/// One change to a header map, applied by the host glue in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Replace every value of the header (a client-sent copy never survives).
    Set(String, String),
    Append(String, String),
    Remove(String),
}

impl HeaderEdit {
    /// The header the edit is about.
    pub fn name(&self) -> &str {
        match self {
            Self::Set(name, _) | Self::Append(name, _) | Self::Remove(name) => name,
        }
    }
}

/// The `request_headers` / `response_headers` rules of one operation, names lower-cased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    pub set: Vec<(String, Template)>,
    pub append: Vec<(String, Template)>,
    pub remove: Vec<String>,
}

impl HeaderRules {
    /// Whether these rules `set` the header (lower-cased `name`): its every value replaced.
    pub fn sets(&self, name: &str) -> bool {
        self.set.iter().any(|(set, _)| set == name)
    }

    /// Claims named by `{claim:...}` in these rules.
    pub fn claim_names(&self) -> impl Iterator<Item = &str> {
        self.set
            .iter()
            .chain(&self.append)
            .flat_map(|(_, template)| template.claim_names())
    }

    /// Edits in the order remove, set, append. A `set` whose template has no value for this
    /// request removes the header instead, so a client-sent value can never pass as ours;
    /// an `append` without a value adds nothing.
    pub fn push_edits(&self, values: &TemplateValues, edits: &mut Vec<HeaderEdit>) {
        edits.extend(self.remove.iter().cloned().map(HeaderEdit::Remove));
        for (name, template) in &self.set {
            edits.push(match template.render(values) {
                Some(value) => HeaderEdit::Set(name.clone(), value),
                None => HeaderEdit::Remove(name.clone()),
            });
        }
        for (name, template) in &self.append {
            if let Some(value) = template.render(values) {
                edits.push(HeaderEdit::Append(name.clone(), value));
            }
        }
    }
}

/// An operation's `rewrite`, compiled for the kind of path it rewrites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRewrite {
    /// Replaces what a `path` or `path_prefix` matched; braces in it are plain text.
    Replace(String),
    /// The path of a `path_template` operation, its `{name}`s filled with the request's
    /// segments, byte for byte (still percent-encoded as received).
    Fill { text: String, pieces: Vec<Piece> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// The n-th parameter of the template.
    Param(usize),
}

/// Why a template operation's `rewrite` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FillError {
    UnknownParam {
        name: String,
        known: Vec<String>,
    },
    /// A `{` without its `}` or a `}` without its `{`.
    Unbalanced,
}

impl std::fmt::Display for FillError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownParam { name, known } if known.is_empty() => write!(
                f,
                "unknown parameter '{{{name}}}' (the template has no parameters)"
            ),
            Self::UnknownParam { name, known } => write!(
                f,
                "unknown parameter '{{{name}}}' (the template has: {})",
                known.join(", ")
            ),
            Self::Unbalanced => f.write_str("unbalanced '{' or '}'"),
        }
    }
}

impl PathRewrite {
    /// A template operation's rewrite: `{name}` must be one of `params` (in template order).
    pub fn fill(text: &str, params: &[&str]) -> Result<Self, FillError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            let (before, from) = rest.split_at(open);
            if from.starts_with('}') {
                return Err(FillError::Unbalanced);
            }
            let close = from.find('}').ok_or(FillError::Unbalanced)?;
            let name = from.get(1..close).ok_or(FillError::Unbalanced)?;
            if name.contains('{') {
                return Err(FillError::Unbalanced);
            }
            let index =
                params
                    .iter()
                    .position(|p| *p == name)
                    .ok_or_else(|| FillError::UnknownParam {
                        name: name.to_string(),
                        known: params.iter().map(|p| p.to_string()).collect(),
                    })?;
            if !before.is_empty() {
                pieces.push(Piece::Text(before.to_string()));
            }
            pieces.push(Piece::Param(index));
            rest = from.get(close + 1..).unwrap_or_default();
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Self::Fill {
            text: text.to_string(),
            pieces,
        })
    }

    /// The rewrite as configured.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Replace(text) | Self::Fill { text, .. } => text,
        }
    }
}

/// The upstream `:path`: the rewrite replaces what the operation matched (the whole path, a
/// prefix, or a template whose parameters it fills); the query follows unchanged.
pub fn upstream_path(
    path: &str,
    matched: &Matched,
    rewrite: Option<&PathRewrite>,
    query: Option<&str>,
) -> String {
    let mut out = String::with_capacity(path.len() + 16);
    match (rewrite, matched) {
        (Some(PathRewrite::Fill { pieces, .. }), Matched::Template(captures)) => {
            for piece in pieces {
                match piece {
                    Piece::Text(text) => out.push_str(text),
                    Piece::Param(index) => out.push_str(
                        captures
                            .get(*index)
                            .and_then(|range| path.get(range.clone()))
                            .unwrap_or_default(),
                    ),
                }
            }
        }
        (Some(PathRewrite::Replace(replacement)), Matched::Whole | Matched::Prefix(_)) => {
            let matched_len = match matched {
                Matched::Prefix(len) => *len,
                _ => path.len(),
            };
            out.push_str(replacement);
            let rest = path.get(matched_len..).unwrap_or_default();
            // "/v1" + "/x" under rewrite "/api/" must not become "/api//x".
            if replacement.ends_with('/') {
                out.push_str(rest.strip_prefix('/').unwrap_or(rest));
            } else {
                out.push_str(rest);
            }
        }
        // No rewrite (a compiled plan never pairs a rewrite with another kind of match).
        _ => out.push_str(path),
    }
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::NoClaims;

    fn values(consumer: Option<&str>) -> TemplateValues<'_> {
        TemplateValues {
            consumer,
            product: consumer.map(|_| "starter"),
            operation: "validate",
            claims: &NoClaims,
        }
    }

    fn rules() -> HeaderRules {
        HeaderRules {
            set: vec![(
                "x-consumer-id".into(),
                Template::parse("{consumer}").unwrap(),
            )],
            append: vec![
                (
                    "x-via".into(),
                    Template::parse("tollgate/{operation}").unwrap(),
                ),
                ("x-who".into(), Template::parse("{consumer}").unwrap()),
            ],
            remove: vec!["x-debug".into()],
        }
    }

    #[test]
    fn edits_remove_then_set_then_append() {
        let mut edits = Vec::new();
        rules().push_edits(&values(Some("flow")), &mut edits);
        assert_eq!(
            edits,
            vec![
                HeaderEdit::Remove("x-debug".into()),
                HeaderEdit::Set("x-consumer-id".into(), "flow".into()),
                HeaderEdit::Append("x-via".into(), "tollgate/validate".into()),
                HeaderEdit::Append("x-who".into(), "flow".into()),
            ]
        );
    }

    #[test]
    fn set_without_a_value_removes_the_header() {
        let mut edits = Vec::new();
        rules().push_edits(&values(None), &mut edits);
        assert_eq!(
            edits,
            vec![
                HeaderEdit::Remove("x-debug".into()),
                HeaderEdit::Remove("x-consumer-id".into()),
                HeaderEdit::Append("x-via".into(), "tollgate/validate".into()),
            ]
        );
    }

    fn replace(text: &str) -> Option<PathRewrite> {
        Some(PathRewrite::Replace(text.into()))
    }

    #[test]
    fn exact_rewrite_keeps_query() {
        let to = replace("/api/v1/validate");
        assert_eq!(
            upstream_path("/validate", &Matched::Whole, to.as_ref(), Some("a=1")),
            "/api/v1/validate?a=1"
        );
        assert_eq!(
            upstream_path("/validate", &Matched::Whole, None, None),
            "/validate"
        );
        assert_eq!(upstream_path("/v", &Matched::Whole, None, Some("")), "/v?");
    }

    #[test]
    fn prefix_rewrite_keeps_the_rest() {
        let at = |len| Matched::Prefix(len);
        let up =
            |path, len, to: &str, query| upstream_path(path, &at(len), replace(to).as_ref(), query);
        assert_eq!(up("/v1/items/7", 3, "/api/v1", None), "/api/v1/items/7");
        assert_eq!(up("/v1/items", 3, "/api/", Some("x=1")), "/api/items?x=1");
        assert_eq!(up("/v1", 3, "/api", None), "/api");
        assert_eq!(up("/files/a", 7, "/", None), "/a");
    }

    #[test]
    fn a_template_rewrite_fills_parameters_byte_for_byte() {
        let to =
            PathRewrite::fill("/api/v1/invoices/{id}/files/{name}.pdf", &["id", "name"]).unwrap();
        // "/invoices/INV%201/files/a%2Eb": captures are the segments as received.
        let path = "/invoices/INV%201/files/a%2Eb";
        let matched = Matched::Template(vec![10..17, 24..29]);
        assert_eq!(
            upstream_path(path, &matched, Some(&to), Some("q=1")),
            "/api/v1/invoices/INV%201/files/a%2Eb.pdf?q=1"
        );
        // A parameter may be used twice, or not at all.
        let twice = PathRewrite::fill("/{name}/{name}", &["id", "name"]).unwrap();
        assert_eq!(
            upstream_path(path, &matched, Some(&twice), None),
            "/a%2Eb/a%2Eb"
        );
        let none = PathRewrite::fill("/static", &["id"]).unwrap();
        assert_eq!(upstream_path(path, &matched, Some(&none), None), "/static");
    }

    #[test]
    fn a_template_rewrite_names_only_the_template_parameters() {
        assert_eq!(
            PathRewrite::fill("/api/{invoice}", &["invoice_id"])
                .unwrap_err()
                .to_string(),
            "unknown parameter '{invoice}' (the template has: invoice_id)"
        );
        assert_eq!(
            PathRewrite::fill("/api/{x}", &[]).unwrap_err().to_string(),
            "unknown parameter '{x}' (the template has no parameters)"
        );
        for broken in ["/api/{id", "/api/id}", "/api/{{id}}", "/api/}{id}"] {
            assert_eq!(
                PathRewrite::fill(broken, &["id"]),
                Err(FillError::Unbalanced),
                "{broken}"
            );
        }
        assert_eq!(
            PathRewrite::fill("/a/{id}", &["id"]).unwrap().as_str(),
            "/a/{id}"
        );
    }
}
