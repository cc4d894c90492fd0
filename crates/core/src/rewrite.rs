//! Header and path rewrites: the edits an admitted request (or its response) gets.

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

/// The upstream `:path`: `rewrite` replaces the first `matched_len` bytes of `path` (the whole
/// path for an exact match, the prefix for a prefix match); the query follows unchanged.
pub fn upstream_path(
    path: &str,
    matched_len: usize,
    rewrite: Option<&str>,
    query: Option<&str>,
) -> String {
    let mut out = String::with_capacity(path.len() + 16);
    match rewrite {
        Some(replacement) => {
            out.push_str(replacement);
            let rest = path.get(matched_len..).unwrap_or_default();
            // "/v1" + "/x" under rewrite "/api/" must not become "/api//x".
            if replacement.ends_with('/') {
                out.push_str(rest.strip_prefix('/').unwrap_or(rest));
            } else {
                out.push_str(rest);
            }
        }
        None => out.push_str(path),
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

    #[test]
    fn exact_rewrite_keeps_query() {
        assert_eq!(
            upstream_path("/validate", 9, Some("/api/v1/validate"), Some("a=1")),
            "/api/v1/validate?a=1"
        );
        assert_eq!(upstream_path("/validate", 9, None, None), "/validate");
        assert_eq!(upstream_path("/v", 2, None, Some("")), "/v?");
    }

    #[test]
    fn prefix_rewrite_keeps_the_rest() {
        assert_eq!(
            upstream_path("/v1/items/7", 3, Some("/api/v1"), None),
            "/api/v1/items/7"
        );
        assert_eq!(
            upstream_path("/v1/items", 3, Some("/api/"), Some("x=1")),
            "/api/items?x=1"
        );
        assert_eq!(upstream_path("/v1", 3, Some("/api"), None), "/api");
        assert_eq!(upstream_path("/files/a", 7, Some("/"), None), "/a");
    }
}
