//! Which operation a request is, decided from a table built once at load.
//!
//! - `path` and `path_prefix` operations: the first that matches, in configuration order.
//! - `path_template` operations: the most specific template that matches — compared segment by
//!   segment from the left, a literal beats a parameter, whatever the order they are written
//!   in (`/invoices/export` beats `/invoices/{id}`, as in APIM); among templates of one shape,
//!   the first in configuration order whose methods match.
//! - Between the two: the templates that match stand where the first of them stands in the
//!   configuration; a `path` or prefix before that place wins, otherwise the most specific
//!   template does. (So adding a template never hands a request from a template to a `path`.)
//!
//! Paths and prefixes are compared with the request path percent-decoded, as templates'
//! literals are, and as the backend routes: an encoded spelling of a configured path
//! (`/admin%3Astats`) is that path, never a template parameter's value under another policy.
//!
//! Cost per request: exact paths are one hash lookup and templates one walk down a segment
//! trie (the literal child first, the parameter child only when that branch finds nothing),
//! so neither grows with the number of operations. Prefixes are scanned in order, stopping at
//! the first match or at an operation later than one already found.

use crate::operation::{prefix_len, MethodSet, OperationId, PathMatch, Route};
use crate::path_template::{decoded, fits_param, raw_len, Segment};
use std::collections::HashMap;
use std::ops::Range;

/// The operation a request is, and what of its path the operation matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub operation: OperationId,
    pub matched: Matched,
}

/// What of the request path an operation matched: the rewrite replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matched {
    /// The whole path (`path`).
    Whole,
    /// The first bytes of the path (`path_prefix`).
    Prefix(usize),
    /// The whole path; where in it each parameter's segment is, in template order.
    Template(Vec<Range<usize>>),
}

#[derive(Debug, Default)]
pub struct RouteTable {
    /// Per operation.
    methods: Vec<MethodSet>,
    /// Exact path (decoded) → its operations in configuration order.
    exact: HashMap<String, Vec<OperationId>>,
    /// In configuration order, decoded.
    prefixes: Vec<(OperationId, String)>,
    templates: Node,
}

/// A trie node: one level per path segment.
#[derive(Debug, Default)]
struct Node {
    literals: HashMap<String, Node>,
    param: Option<Box<Node>>,
    /// Templates that end here, in configuration order.
    ends: Vec<OperationId>,
}

impl RouteTable {
    /// The table of `routes`, operation ids being their positions.
    pub fn new<'a>(routes: impl IntoIterator<Item = &'a Route>) -> Self {
        let mut table = Self::default();
        for (id, route) in routes.into_iter().enumerate() {
            table.methods.push(route.methods.clone());
            match &route.path {
                PathMatch::Exact(path) => table
                    .exact
                    .entry(decoded(path).into_owned())
                    .or_default()
                    .push(id),
                PathMatch::Prefix(prefix) => {
                    table.prefixes.push((id, decoded(prefix).into_owned()))
                }
                PathMatch::Template(template) => {
                    let mut node = &mut table.templates;
                    for segment in template.segments() {
                        node = match segment {
                            Segment::Literal(text) => {
                                node.literals.entry(text.clone()).or_default()
                            }
                            Segment::Param(_) => node.param.get_or_insert_with(Box::default),
                        };
                    }
                    node.ends.push(id);
                }
            }
        }
        table
    }

    /// The operation `method` and `path` (without query) are, if any.
    pub fn lookup(&self, method: &str, path: &str) -> Option<RouteMatch> {
        let answers = |id: &OperationId| self.answers(*id, method);
        let plain = decoded(path);
        let mut found = self
            .exact
            .get(plain.as_ref())
            .and_then(|ids| ids.iter().find(|id| answers(id)))
            .map(|&operation| RouteMatch {
                operation,
                matched: Matched::Whole,
            });
        for (id, prefix) in &self.prefixes {
            if found.as_ref().is_some_and(|f| f.operation < *id) {
                break;
            }
            if let Some(len) = prefix_len(prefix, &plain).filter(|_| answers(id)) {
                found = Some(RouteMatch {
                    operation: *id,
                    matched: Matched::Prefix(raw_len(path, len)),
                });
                break;
            }
        }
        let Some(first) = path.starts_with('/').then_some(1) else {
            return found;
        };
        let mut captures = Vec::new();
        let Some(template) = self
            .templates
            .find(self, method, path, Some(first), &mut captures)
        else {
            return found;
        };
        // The templates stand where the first matching one does (only worth finding when a
        // path or prefix competes).
        let place = match &found {
            Some(other) if other.operation < template => {
                self.templates.first_match(self, method, path, Some(first))
            }
            _ => template,
        };
        match found {
            Some(other) if other.operation < place => Some(other),
            _ => Some(RouteMatch {
                operation: template,
                matched: Matched::Template(captures),
            }),
        }
    }

    fn answers(&self, operation: OperationId, method: &str) -> bool {
        self.methods
            .get(operation)
            .is_some_and(|methods| methods.contains(method))
    }
}

impl Node {
    /// The most specific template under this node matching the rest of `path` from byte
    /// `start` (`None`: no segment left), its parameters' segments pushed onto `captures`.
    /// Recursion is as deep as the longest template, whatever the request.
    fn find(
        &self,
        table: &RouteTable,
        method: &str,
        path: &str,
        start: Option<usize>,
        captures: &mut Vec<Range<usize>>,
    ) -> Option<OperationId> {
        let Some(start) = start else {
            return self
                .ends
                .iter()
                .copied()
                .find(|&id| table.answers(id, method));
        };
        let (segment, end, next) = next_segment(path, start)?;
        if !self.literals.is_empty() {
            if let Some(child) = self.literals.get(decoded(segment).as_ref()) {
                if let Some(found) = child.find(table, method, path, next, captures) {
                    return Some(found);
                }
            }
        }
        if let Some(child) = &self.param {
            if fits_param(segment) {
                captures.push(start..end);
                if let Some(found) = child.find(table, method, path, next, captures) {
                    return Some(found);
                }
                captures.pop();
            }
        }
        None
    }

    /// The lowest operation id among every template under this node that matches the rest of
    /// `path` from `start` for `method` (each branch walked, not only the most specific).
    fn first_match(
        &self,
        table: &RouteTable,
        method: &str,
        path: &str,
        start: Option<usize>,
    ) -> OperationId {
        let Some(start) = start else {
            return self
                .ends
                .iter()
                .copied()
                .find(|&id| table.answers(id, method))
                .unwrap_or(OperationId::MAX);
        };
        let Some((segment, _, next)) = next_segment(path, start) else {
            return OperationId::MAX;
        };
        let literal = self
            .literals
            .get(decoded(segment).as_ref())
            .map_or(OperationId::MAX, |child| {
                child.first_match(table, method, path, next)
            });
        let param = match &self.param {
            Some(child) if fits_param(segment) => child.first_match(table, method, path, next),
            _ => OperationId::MAX,
        };
        literal.min(param)
    }
}

/// The segment of `path` that starts at byte `start`, where it ends, and where the next one
/// starts (`None`: it is the last).
fn next_segment(path: &str, start: usize) -> Option<(&str, usize, Option<usize>)> {
    let rest = path.get(start..)?;
    let (end, next) = match rest.find('/') {
        Some(at) => (start + at, Some(start + at + 1)),
        None => (path.len(), None),
    };
    Some((path.get(start..end)?, end, next))
}

/// An operation no request can reach, and the one that takes its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreachable {
    pub operation: OperationId,
    pub taken_by: OperationId,
}

/// The first template operation that no request can reach, or `path` operation that a
/// template makes unreachable (a `path` shadowed by an earlier `path` or prefix is allowed, as
/// it always was). Each operation is tried on its least specific path (a template's witness,
/// or the exact path) with each method it answers: any request it matches matches that one
/// too, so if it loses there it loses everywhere.
pub fn first_unreachable(table: &RouteTable, routes: &[Route]) -> Option<Unreachable> {
    let every_method = representative_methods(routes);
    for (id, route) in routes.iter().enumerate() {
        let (path, is_template) = match &route.path {
            PathMatch::Template(template) => (template.witness(), true),
            PathMatch::Exact(path) => (path.clone(), false),
            PathMatch::Prefix(_) => continue,
        };
        let methods = route.methods.listed().unwrap_or(&every_method);
        let winners: Vec<OperationId> = methods
            .iter()
            .filter_map(|method| table.lookup(method, &path))
            .map(|found| found.operation)
            .collect();
        if winners.contains(&id) {
            continue;
        }
        let by_template = |other: &OperationId| {
            routes
                .get(*other)
                .is_some_and(|r| matches!(r.path, PathMatch::Template(_)))
        };
        let taken_by = if is_template {
            winners.first()
        } else {
            winners.iter().find(|other| by_template(other))
        };
        if let Some(&taken_by) = taken_by {
            return Some(Unreachable {
                operation: id,
                taken_by,
            });
        }
    }
    None
}

/// One method of each kind an operation without `methods` answers: every method some
/// operation names, HEAD (which GET operations take), and one that none names.
fn representative_methods(routes: &[Route]) -> Vec<String> {
    let mut methods: Vec<String> = routes
        .iter()
        .filter_map(|route| route.methods.listed())
        .flatten()
        .cloned()
        .collect();
    methods.push("HEAD".to_string());
    let mut unnamed = String::from("TOLLGATE-UNNAMED");
    while methods.contains(&unnamed) {
        unnamed.push('X');
    }
    methods.push(unnamed);
    methods.sort_unstable();
    methods.dedup();
    methods
}

#[cfg(test)]
mod tests;
