#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::single_range_in_vec_init
)]

use super::*;
use crate::path_template::PathTemplate;

fn route(methods: &[&str], path: PathMatch) -> Route {
    Route {
        methods: if methods.is_empty() {
            MethodSet::any()
        } else {
            MethodSet::of(methods.iter().map(|m| m.to_string()).collect())
        },
        path,
    }
}

fn template(methods: &[&str], text: &str) -> Route {
    route(
        methods,
        PathMatch::Template(PathTemplate::parse(text).unwrap()),
    )
}

fn exact(methods: &[&str], text: &str) -> Route {
    route(methods, PathMatch::Exact(text.into()))
}

fn prefix(methods: &[&str], text: &str) -> Route {
    route(methods, PathMatch::Prefix(text.into()))
}

fn winner(routes: &[Route], method: &str, path: &str) -> Option<OperationId> {
    RouteTable::new(routes)
        .lookup(method, path)
        .map(|found| found.operation)
}

#[test]
fn a_literal_beats_a_parameter_whatever_the_order() {
    for routes in [
        vec![
            template(&[], "/invoices/{id}"),
            template(&[], "/invoices/export"),
        ],
        vec![
            template(&[], "/invoices/export"),
            template(&[], "/invoices/{id}"),
        ],
    ] {
        let literal = routes
            .iter()
            .position(|r| r.path.as_str() == "/invoices/export")
            .unwrap();
        assert_eq!(winner(&routes, "GET", "/invoices/export"), Some(literal));
        assert_eq!(winner(&routes, "GET", "/invoices/INV-1"), Some(1 - literal));
    }
}

#[test]
fn specificity_is_decided_from_the_left() {
    // "/a/{x}/c" and "/{y}/b/c" both match "/a/b/c": the first differing segment decides.
    let routes = vec![template(&[], "/{y}/b/c"), template(&[], "/a/{x}/c")];
    assert_eq!(winner(&routes, "GET", "/a/b/c"), Some(1));
    assert_eq!(winner(&routes, "GET", "/z/b/c"), Some(0));
    // A literal branch that finds nothing deeper gives way to the parameter branch.
    let routes = vec![template(&[], "/a/x/only"), template(&[], "/{p}/x/other")];
    assert_eq!(winner(&routes, "GET", "/a/x/other"), Some(1));
}

#[test]
fn methods_choose_among_templates_of_one_shape() {
    let routes = vec![
        template(&["GET"], "/invoices/{id}"),
        template(&["DELETE"], "/invoices/{invoice_id}"),
        template(&["GET"], "/invoices/export"),
    ];
    assert_eq!(winner(&routes, "GET", "/invoices/1"), Some(0));
    assert_eq!(winner(&routes, "HEAD", "/invoices/1"), Some(0));
    assert_eq!(winner(&routes, "DELETE", "/invoices/1"), Some(1));
    assert_eq!(winner(&routes, "POST", "/invoices/1"), None);
    // The literal does not answer DELETE, so the parameter does.
    assert_eq!(winner(&routes, "DELETE", "/invoices/export"), Some(1));
    assert_eq!(winner(&routes, "GET", "/invoices/export"), Some(2));
}

#[test]
fn a_template_matches_the_whole_path_one_segment_per_parameter() {
    let routes = vec![template(&[], "/invoices/{id}")];
    for path in [
        "/invoices/a/b",
        "/invoices/",
        "/invoices",
        "/invoices/a/",
        "/invoices//",
        "invoices/a",
        "",
        "*",
    ] {
        assert_eq!(winner(&routes, "GET", path), None, "{path:?}");
    }
    let found = RouteTable::new(&routes)
        .lookup("GET", "/invoices/INV%2D1")
        .unwrap();
    assert_eq!(found.matched, Matched::Template(vec![10..17]));
}

#[test]
fn parameters_never_take_dots_empty_segments_or_encoded_slashes() {
    let routes = vec![template(&[], "/a/{x}/b")];
    for path in [
        "/a/./b",
        "/a/../b",
        "/a//b",
        "/a/%2e/b",
        "/a/%2E%2E/b",
        "/a/x%2Fy/b",
        "/a/x%5cy/b",
    ] {
        assert_eq!(winner(&routes, "GET", path), None, "{path}");
    }
    assert_eq!(winner(&routes, "GET", "/a/.x/b"), Some(0));
    assert_eq!(winner(&routes, "GET", "/a/%20/b"), Some(0));
}

#[test]
fn literals_are_compared_with_the_decoded_segment() {
    // FastAPI routes "/invoices/%65xport" as "/invoices/export": so does tollgate.
    let routes = vec![
        template(&["GET"], "/invoices/{id}"),
        template(&["GET"], "/invoices/export"),
    ];
    assert_eq!(winner(&routes, "GET", "/invoices/%65xport"), Some(1));
    // A "%" that is no escape fits no parameter.
    assert_eq!(winner(&routes, "GET", "/invoices/%65xport%"), None);
    let found = RouteTable::new(&routes)
        .lookup("GET", "/invoices/a%20b")
        .unwrap();
    assert_eq!(found.matched, Matched::Template(vec![10..15]));
}

#[test]
fn trailing_slash_and_root_templates_are_literal_segments() {
    let routes = vec![template(&[], "/items/"), template(&[], "/")];
    assert_eq!(winner(&routes, "GET", "/items/"), Some(0));
    assert_eq!(winner(&routes, "GET", "/items"), None);
    assert_eq!(winner(&routes, "GET", "/"), Some(1));
}

#[test]
fn paths_and_prefixes_keep_first_match_against_templates() {
    let routes = vec![
        exact(&["GET"], "/invoices/export"),
        template(&["GET"], "/invoices/{id}"),
        prefix(&[], "/invoices"),
        template(&["POST"], "/invoices/{id}/attachments"),
    ];
    assert_eq!(winner(&routes, "GET", "/invoices/export"), Some(0));
    assert_eq!(winner(&routes, "GET", "/invoices/1"), Some(1));
    // The prefix comes before the POST template, so it takes POSTs below /invoices.
    assert_eq!(winner(&routes, "POST", "/invoices/1/attachments"), Some(2));
    assert_eq!(winner(&routes, "DELETE", "/invoices/1"), Some(2));
    let found = RouteTable::new(&routes)
        .lookup("PUT", "/invoices/x")
        .unwrap();
    assert_eq!(found.matched, Matched::Prefix(9));
    assert_eq!(
        RouteTable::new(&routes)
            .lookup("GET", "/invoices/export")
            .unwrap()
            .matched,
        Matched::Whole
    );
}

#[test]
fn hundreds_of_templates_answer_as_written() {
    let routes: Vec<Route> = (0..300)
        .map(|n| template(&["GET"], &format!("/r{}/{{id}}/s{}", n % 30, n / 30)))
        .collect();
    let table = RouteTable::new(&routes);
    for n in 0..300 {
        let path = format!("/r{}/x{n}/s{}", n % 30, n / 30);
        let found = table.lookup("GET", &path).unwrap();
        assert_eq!(found.operation, n);
    }
}

fn unreachable(routes: &[Route]) -> Option<Unreachable> {
    first_unreachable(&RouteTable::new(routes), routes)
}

#[test]
fn a_template_behind_one_of_the_same_shape_is_unreachable() {
    let routes = vec![
        template(&["GET"], "/invoices/{x}"),
        template(&["GET"], "/invoices/{id}"),
    ];
    assert_eq!(
        unreachable(&routes),
        Some(Unreachable {
            operation: 1,
            taken_by: 0
        })
    );
    // Other methods: both reachable.
    let routes = vec![
        template(&["GET"], "/invoices/{x}"),
        template(&["POST"], "/invoices/{id}"),
    ];
    assert_eq!(unreachable(&routes), None);
    // Some methods of the later one still reach it.
    let routes = vec![
        template(&["GET"], "/invoices/{x}"),
        template(&["GET", "PUT"], "/invoices/{id}"),
    ];
    assert_eq!(unreachable(&routes), None);
    // Any method behind any method.
    let routes = vec![template(&[], "/i/{x}"), template(&[], "/i/{id}")];
    assert_eq!(unreachable(&routes).map(|u| u.operation), Some(1));
    // Only GET behind any method.
    let routes = vec![template(&[], "/i/{x}"), template(&["GET"], "/i/{id}")];
    assert_eq!(unreachable(&routes).map(|u| u.operation), Some(1));
    // Any method behind GET: the rest of the methods reach it.
    let routes = vec![template(&["GET"], "/i/{x}"), template(&[], "/i/{id}")];
    assert_eq!(unreachable(&routes), None);
    // A more specific template later is reachable: it wins where it matches.
    let routes = vec![template(&[], "/i/{x}"), template(&[], "/i/export")];
    assert_eq!(unreachable(&routes), None);
}

#[test]
fn a_template_behind_a_prefix_that_takes_it_all_is_unreachable() {
    let routes = vec![
        prefix(&[], "/invoices"),
        template(&["GET"], "/invoices/{id}"),
    ];
    assert_eq!(
        unreachable(&routes),
        Some(Unreachable {
            operation: 1,
            taken_by: 0
        })
    );
    // A prefix that takes only some of its paths leaves it reachable.
    let routes = vec![
        prefix(&[], "/invoices/a"),
        template(&["GET"], "/invoices/{id}"),
    ];
    assert_eq!(unreachable(&routes), None);
}

#[test]
fn a_path_a_template_takes_is_unreachable_but_not_one_a_prefix_takes() {
    let routes = vec![
        template(&["GET"], "/invoices/{id}"),
        exact(&["GET"], "/invoices/export"),
    ];
    assert_eq!(
        unreachable(&routes),
        Some(Unreachable {
            operation: 1,
            taken_by: 0
        })
    );
    // Before the template, the path wins.
    let routes = vec![
        exact(&["GET"], "/invoices/export"),
        template(&["GET"], "/invoices/{id}"),
    ];
    assert_eq!(unreachable(&routes), None);
    // A path behind a prefix or a path was always allowed.
    let routes = vec![
        prefix(&[], "/invoices"),
        exact(&["GET"], "/invoices/export"),
    ];
    assert_eq!(unreachable(&routes), None);
    let routes = vec![exact(&["GET"], "/v"), exact(&["GET"], "/v")];
    assert_eq!(unreachable(&routes), None);
}

#[test]
fn a_head_template_before_a_get_one_keeps_both_reachable() {
    let routes = vec![
        template(&["HEAD"], "/i/{id}"),
        template(&["GET"], "/i/{id}"),
    ];
    assert_eq!(unreachable(&routes), None);
    assert_eq!(winner(&routes, "HEAD", "/i/1"), Some(0));
    // After a GET one, HEAD is always taken.
    let routes = vec![
        template(&["GET"], "/i/{id}"),
        template(&["HEAD"], "/i/{id}"),
    ];
    assert_eq!(unreachable(&routes).map(|u| u.operation), Some(1));
}

#[test]
fn an_encoded_spelling_of_a_path_or_prefix_is_that_path() {
    // FastAPI routes "/v1/admin%3Astats" as "/v1/admin:stats": it must not pass as a value
    // of the template's parameter, under the template's policy.
    let routes = vec![
        exact(&["GET"], "/v1/admin:stats"),
        template(&["GET"], "/v1/{name}"),
        prefix(&[], "/ops:x"),
        template(&[], "/{section}/{id}"),
    ];
    let table = RouteTable::new(&routes);
    assert_eq!(winner(&routes, "GET", "/v1/admin%3Astats"), Some(0));
    assert_eq!(winner(&routes, "GET", "/v1/admin%3astats"), Some(0));
    assert_eq!(winner(&routes, "GET", "/v1/other"), Some(1));
    let found = table.lookup("GET", "/ops%3Ax/7").unwrap();
    assert_eq!((found.operation, found.matched), (2, Matched::Prefix(8)));
    // A configured path written encoded is compared decoded too.
    let routes = vec![exact(&["GET"], "/files/my%20doc")];
    assert_eq!(winner(&routes, "GET", "/files/my%20doc"), Some(0));
    assert_eq!(winner(&routes, "GET", "/files/my doc"), Some(0));
}

#[test]
fn templates_stand_where_their_first_match_stands() {
    // "/a/b" as a path behind "/{s}/{x}" is unreachable, and stays so when a more specific
    // template comes after it: adding a template never hands requests to a path.
    let routes = vec![
        template(&[], "/{s}/{x}"),
        exact(&["GET"], "/a/b"),
        template(&["GET"], "/a/{y}"),
    ];
    assert_eq!(winner(&routes, "GET", "/a/b"), Some(2));
    assert_eq!(winner(&routes, "POST", "/a/b"), Some(0));
    assert_eq!(
        unreachable(&routes),
        Some(Unreachable {
            operation: 1,
            taken_by: 2
        })
    );
    // A path before every template that matches wins.
    let routes = vec![
        exact(&["GET"], "/a/b"),
        template(&[], "/{s}/{x}"),
        template(&["GET"], "/a/{y}"),
    ];
    assert_eq!(winner(&routes, "GET", "/a/b"), Some(0));
    assert_eq!(winner(&routes, "GET", "/a/c"), Some(2));
}
