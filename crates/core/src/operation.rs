//! Which operation a request is: method plus path, first match in configuration order wins.

/// How an operation's path is compared with the request path (query string already removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// Matches the prefix itself and anything below it on a segment boundary: `/api` matches
    /// `/api`, `/api/x` and `/api?q`, never `/apix`. A prefix ending in `/` matches whatever
    /// follows it.
    Prefix(String),
}

impl PathMatch {
    /// Length of the matched part of `path`, if it matches.
    pub fn matched_len(&self, path: &str) -> Option<usize> {
        match self {
            PathMatch::Exact(exact) => (path == exact).then_some(exact.len()),
            PathMatch::Prefix(prefix) => {
                let rest = path.strip_prefix(prefix.as_str())?;
                (rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'))
                    .then_some(prefix.len())
            }
        }
    }
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

impl Route {
    /// Length of the matched part of `path` when method and path both match.
    pub fn matched_len(&self, method: &str, path: &str) -> Option<usize> {
        if self.methods.contains(method) {
            self.path.matched_len(path)
        } else {
            None
        }
    }
}

/// The first route (in configuration order) that matches, with the matched path length.
pub fn first_match<'a>(
    routes: impl IntoIterator<Item = &'a Route>,
    method: &str,
    path: &str,
) -> Option<(OperationId, usize)> {
    routes
        .into_iter()
        .enumerate()
        .find_map(|(id, route)| route.matched_len(method, path).map(|len| (id, len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_path_matches_only_itself() {
        let m = PathMatch::Exact("/validate".into());
        assert_eq!(m.matched_len("/validate"), Some(9));
        assert_eq!(m.matched_len("/validate/"), None);
        assert_eq!(m.matched_len("/validatex"), None);
        assert_eq!(m.matched_len("/Validate"), None);
    }

    #[test]
    fn prefix_respects_segment_boundaries() {
        let m = PathMatch::Prefix("/api".into());
        assert_eq!(m.matched_len("/api"), Some(4));
        assert_eq!(m.matched_len("/api/"), Some(4));
        assert_eq!(m.matched_len("/api/v1/x"), Some(4));
        assert_eq!(m.matched_len("/apix"), None);
        assert_eq!(m.matched_len("/ap"), None);
        let slash = PathMatch::Prefix("/files/".into());
        assert_eq!(slash.matched_len("/files/a"), Some(7));
        assert_eq!(slash.matched_len("/files"), None);
        let root = PathMatch::Prefix("/".into());
        assert_eq!(root.matched_len("/anything"), Some(1));
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

    #[test]
    fn first_match_wins_and_method_filters() {
        let post_v = Route {
            methods: MethodSet::of(vec!["POST".into()]),
            path: PathMatch::Exact("/v".into()),
        };
        let anything = Route {
            methods: MethodSet::any(),
            path: PathMatch::Prefix("/".into()),
        };
        let routes = [post_v.clone(), anything];
        assert_eq!(first_match(&routes, "POST", "/v"), Some((0, 2)));
        assert_eq!(first_match(&routes, "GET", "/v"), Some((1, 1)));
        assert_eq!(first_match([&post_v], "GET", "/v"), None);
    }
}
