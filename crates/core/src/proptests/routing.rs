//! The route table answers as the contract reads, written the slow way: among `path` and
//! `path_prefix` operations (compared with the decoded path) the first match in configuration
//! order; among templates the most specific (a literal beats a parameter at the first segment
//! where they differ), then the first in order; between the two, the path or prefix when it
//! comes before every matching template, else the most specific template. Random operation lists and random
//! paths over a small alphabet (so they collide often), the table against this reference.

use super::config;
use crate::operation::{prefix_len, MethodSet, PathMatch, Route};
use crate::path_template::{decoded, fits_param, raw_len, PathTemplate, Segment};
use crate::route_table::{Matched, RouteTable};
use proptest::prelude::*;
use std::cmp::Ordering;
use std::ops::Range;

const LITERALS: &[&str] = &["a", "b", "export", "", "a:b"];
const REQUEST_SEGMENTS: &[&str] = &[
    "a", "b", "export", "%65xport", "%61", "x", "", ".", "..", "%2e", "x%2Fy", "%zz", "a%3Ab",
    "a:b", "%2", "a%2Fb",
];
const METHODS: &[&str] = &["GET", "POST", "HEAD", "DELETE"];

fn methods() -> impl Strategy<Value = MethodSet> {
    prop_oneof![
        Just(MethodSet::any()),
        proptest::sample::subsequence(vec!["GET", "POST", "DELETE"], 1..=2)
            .prop_map(|m| MethodSet::of(m.into_iter().map(String::from).collect())),
    ]
}

fn literal_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(LITERALS), 1..4)
        .prop_map(|segments| format!("/{}", segments.join("/")))
}

fn template() -> impl Strategy<Value = Option<PathTemplate>> {
    let segment = prop_oneof![
        proptest::sample::select(LITERALS).prop_map(|s| s.to_string()),
        Just("{p}".to_string()),
    ];
    proptest::collection::vec(segment, 1..4).prop_map(|segments| {
        // Names made unique; templates the parser refuses (an empty middle segment) dropped.
        let mut n = 0;
        let text: Vec<String> = segments
            .into_iter()
            .map(|s| {
                if s == "{p}" {
                    n += 1;
                    format!("{{p{n}}}")
                } else {
                    s
                }
            })
            .collect();
        PathTemplate::parse(&format!("/{}", text.join("/"))).ok()
    })
}

fn route() -> impl Strategy<Value = Option<Route>> {
    let path = prop_oneof![
        3 => template().prop_map(|t| t.map(PathMatch::Template)),
        1 => literal_path().prop_map(|p| Some(PathMatch::Exact(p))),
        1 => literal_path().prop_map(|p| Some(PathMatch::Prefix(p))),
    ];
    (methods(), path).prop_map(|(methods, path)| path.map(|path| Route { methods, path }))
}

fn request_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(REQUEST_SEGMENTS), 1..5)
        .prop_map(|segments| format!("/{}", segments.join("/")))
}

/// The parameters' byte ranges when `template` matches `path` as a whole.
fn template_match(template: &PathTemplate, path: &str) -> Option<Vec<Range<usize>>> {
    let rest = path.strip_prefix('/')?;
    let pieces: Vec<&str> = rest.split('/').collect();
    if pieces.len() != template.segments().len() {
        return None;
    }
    let mut at = 1;
    let mut captures = Vec::new();
    for (piece, segment) in pieces.iter().zip(template.segments()) {
        match segment {
            Segment::Literal(text) if decoded(piece) == text.as_str() => {}
            Segment::Param(_) if fits_param(piece) => captures.push(at..at + piece.len()),
            _ => return None,
        }
        at += piece.len() + 1;
    }
    Some(captures)
}

/// Literal beats parameter at the first segment where the two differ (same length: both
/// matched the same path).
fn more_specific(a: &PathTemplate, b: &PathTemplate) -> Ordering {
    for (x, y) in a.segments().iter().zip(b.segments()) {
        match (x, y) {
            (Segment::Literal(_), Segment::Param(_)) => return Ordering::Less,
            (Segment::Param(_), Segment::Literal(_)) => return Ordering::Greater,
            _ => {}
        }
    }
    Ordering::Equal
}

fn reference(routes: &[Route], method: &str, path: &str) -> Option<(usize, Matched)> {
    let plain = decoded(path);
    let other = routes.iter().enumerate().find_map(|(id, route)| {
        if !route.methods.contains(method) {
            return None;
        }
        match &route.path {
            PathMatch::Exact(exact) => (decoded(exact) == plain).then_some((id, Matched::Whole)),
            PathMatch::Prefix(prefix) => prefix_len(&decoded(prefix), &plain)
                .map(|len| (id, Matched::Prefix(raw_len(path, len)))),
            PathMatch::Template(_) => None,
        }
    });
    let matching: Vec<(usize, &PathTemplate, Vec<Range<usize>>)> = routes
        .iter()
        .enumerate()
        .filter(|(_, route)| route.methods.contains(method))
        .filter_map(|(id, route)| match &route.path {
            PathMatch::Template(t) => template_match(t, path).map(|captures| (id, t, captures)),
            _ => None,
        })
        .collect();
    let place = matching.iter().map(|(id, _, _)| *id).min();
    let template = matching
        .into_iter()
        .min_by(|(a, ta, _), (b, tb, _)| more_specific(ta, tb).then(a.cmp(b)))
        .map(|(id, _, captures)| (id, Matched::Template(captures)));
    match (other, template, place) {
        (Some(o), Some(t), Some(place)) => Some(if o.0 < place { o } else { t }),
        (o, t, _) => o.or(t),
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn the_table_answers_like_the_reference(
        routes in proptest::collection::vec(route(), 1..12),
        paths in proptest::collection::vec(request_path(), 1..16),
    ) {
        let routes: Vec<Route> = routes.into_iter().flatten().collect();
        let table = RouteTable::new(&routes);
        for path in &paths {
            for method in METHODS {
                let found = table.lookup(method, path).map(|f| (f.operation, f.matched));
                prop_assert_eq!(found, reference(&routes, method, path), "{} {}", method, path);
            }
        }
    }
}
