//! What an operation answers: its methods and how its path is compared. Which operation a
//! request is, is the route table's to say (`route_table.rs`).

use crate::path_template::PathTemplate;

/// How an operation's path is compared with the request path (query string already removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// Matches the prefix itself and anything below it on a segment boundary: `/api` matches
    /// `/api`, `/api/x` and `/api?q`, never `/apix`. A prefix ending in `/` matches whatever
    /// follows it.
    Prefix(String),
    /// Literal and `{name}` segments (`/invoices/{invoice_id}`), the whole path.
    Template(PathTemplate),
}

impl PathMatch {
    /// The path as configured.
    pub fn as_str(&self) -> &str {
        match self {
            PathMatch::Exact(path) | PathMatch::Prefix(path) => path,
            PathMatch::Template(template) => template.as_str(),
        }
    }
}

/// Length of the part of `path` that `prefix` matches, if it does (see `PathMatch::Prefix`).
pub fn prefix_len(prefix: &str, path: &str) -> Option<usize> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/')).then_some(prefix.len())
}

/// Methods an operation answers; `None` = any method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodSet(Option<Vec<String>>);

impl MethodSet {
    pub fn any() -> Self {
        Self(None)
    }

    /// Methods are compared upper-cased, as HTTP methods are case-sensitive tokens that
    /// everyone writes in upper case.
    pub fn of(methods: Vec<String>) -> Self {
        Self(Some(
            methods
                .into_iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
        ))
    }

    /// The methods as listed (upper-cased); `None` = any method.
    pub fn listed(&self) -> Option<&[String]> {
        self.0.as_deref()
    }

    /// A list that holds GET also holds HEAD: HTTP servers (FastAPI among them) answer HEAD
    /// with the GET handler, so HEAD must not slip past a GET operation's auth and limits.
    pub fn contains(&self, method: &str) -> bool {
        match &self.0 {
            None => true,
            Some(methods) => methods
                .iter()
                .any(|m| m == method || (method == "HEAD" && m == "GET")),
        }
    }
}

/// Index of an operation in the plan.
pub type OperationId = usize;

/// Where an operation lives: its methods and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub methods: MethodSet,
    pub path: PathMatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_respects_segment_boundaries() {
        assert_eq!(prefix_len("/api", "/api"), Some(4));
        assert_eq!(prefix_len("/api", "/api/"), Some(4));
        assert_eq!(prefix_len("/api", "/api/v1/x"), Some(4));
        assert_eq!(prefix_len("/api", "/apix"), None);
        assert_eq!(prefix_len("/api", "/ap"), None);
        assert_eq!(prefix_len("/files/", "/files/a"), Some(7));
        assert_eq!(prefix_len("/files/", "/files"), None);
        assert_eq!(prefix_len("/", "/anything"), Some(1));
    }

    #[test]
    fn methods_compare_upper_cased() {
        let set = MethodSet::of(vec!["post".into(), "GET".into()]);
        assert!(set.contains("POST"));
        assert!(set.contains("GET"));
        assert!(!set.contains("DELETE"));
        assert!(MethodSet::any().contains("PATCH"));
    }

    #[test]
    fn a_get_operation_also_answers_head() {
        assert!(MethodSet::of(vec!["GET".into()]).contains("HEAD"));
        assert!(!MethodSet::of(vec!["POST".into()]).contains("HEAD"));
        assert!(!MethodSet::of(vec!["HEAD".into()]).contains("GET"));
    }
}
