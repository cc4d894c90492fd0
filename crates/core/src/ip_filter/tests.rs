use super::ranges::RangeSet;
use super::*;
use crate::config::Override;
use crate::deny::Outcome;
use crate::pipeline::{decide, RequestEnv};
use crate::plan::Plan;
use crate::subscription::KeyHash;
use crate::testing::{FixedClock, MemoryStore};
use crate::verdict::Verdict;
use serde_json::{json, Value};
use std::cell::Cell;

fn filter(section: Value) -> Result<IpFilter, ConfigError> {
    IpFilter::compile("ip_filter", serde_json::from_value(section).unwrap())
}

fn allow(entries: Value) -> IpFilter {
    filter(json!({ "allow": entries })).unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The refusal `Plan::from_json` gives for a configuration with these extra sections.
fn refusal(top_level: Option<Value>, operation_filter: Option<Value>) -> String {
    let mut operation = json!({ "name": "op", "path": "/op", "auth": "none" });
    if let Some(section) = operation_filter {
        operation["ip_filter"] = section;
    }
    let mut config =
        json!({ "operations": [{ "name": "first", "path": "/first", "auth": "none" }, operation] });
    if let Some(section) = top_level {
        config["ip_filter"] = section;
    }
    Plan::from_json(config.to_string().as_bytes())
        .unwrap_err()
        .to_string()
}

#[test]
fn the_contract_example_loads_and_reads_as_written() {
    let f = allow(json!([
        "13.66.201.169",
        "13.66.140.128/28",
        "2603:1030::/48",
        { "from": "20.1.2.0", "to": "20.1.2.9" }
    ]));
    for admitted in [
        "13.66.201.169",
        "13.66.140.128",
        "13.66.140.143",
        "2603:1030::",
        "2603:1030:0:ffff:ffff:ffff:ffff:ffff",
        "20.1.2.0",
        "20.1.2.9",
    ] {
        assert!(f.admits(ip(admitted)), "{admitted}");
    }
    for refused in [
        "13.66.201.168",
        "13.66.201.170",
        "13.66.140.127",
        "13.66.140.144",
        "2603:1030:1::",
        "2603:102f:ffff:ffff:ffff:ffff:ffff:ffff",
        "20.1.2.10",
        "20.1.1.255",
        "127.0.0.1",
        "::1",
    ] {
        assert!(!f.admits(ip(refused)), "{refused}");
    }
    assert_eq!(f.range_count(), 4);
}

#[test]
fn forbid_refuses_the_list_and_lets_the_rest_in() {
    let f = filter(json!({ "forbid": ["10.0.0.0/8", "fd00::/8"] })).unwrap();
    assert!(!f.admits(ip("10.1.2.3")));
    assert!(!f.admits(ip("fd12::1")));
    assert!(f.admits(ip("11.0.0.0")));
    assert!(f.admits(ip("9.255.255.255")));
    assert!(f.admits(ip("fe80::1")));
}

#[test]
fn whole_spaces_and_single_addresses() {
    let everything_v4 = allow(json!(["0.0.0.0/0"]));
    assert!(everything_v4.admits(ip("0.0.0.0")));
    assert!(everything_v4.admits(ip("255.255.255.255")));
    assert!(
        !everything_v4.admits(ip("::1")),
        "an IPv4 list holds no IPv6 caller"
    );
    let everything_v6 = allow(json!(["::/0"]));
    assert!(everything_v6.admits(ip("::")));
    assert!(everything_v6.admits(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
    assert!(
        !everything_v6.admits(ip("127.0.0.1")),
        "::/0 is every IPv6 caller, not the IPv4 ones"
    );

    let one_v4 = allow(json!(["192.0.2.7/32"]));
    assert!(one_v4.admits(ip("192.0.2.7")));
    assert!(!one_v4.admits(ip("192.0.2.6")));
    assert!(!one_v4.admits(ip("192.0.2.8")));
    let one_v6 = allow(json!(["2001:db8::7/128"]));
    assert!(one_v6.admits(ip("2001:db8::7")));
    assert!(!one_v6.admits(ip("2001:db8::6")));
    assert!(!one_v6.admits(ip("2001:db8::8")));

    let edges = allow(json!([
        "255.255.255.255",
        "0.0.0.0",
        "::",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    ]));
    for address in [
        "255.255.255.255",
        "0.0.0.0",
        "::",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ] {
        assert!(edges.admits(ip(address)), "{address}");
    }
    assert!(!edges.admits(ip("255.255.255.254")));
    assert!(!edges.admits(ip("0.0.0.1")));
    assert!(!edges.admits(ip("::1")));
}

#[test]
fn ranges_include_both_ends_and_may_be_one_address() {
    let f = allow(json!([
        { "from": "10.0.0.5", "to": "10.0.1.4" },
        { "from": "2001:db8::ffff", "to": "2001:db8::1:0" },
        { "from": "192.0.2.1", "to": "192.0.2.1" }
    ]));
    for admitted in [
        "10.0.0.5",
        "10.0.0.255",
        "10.0.1.0",
        "10.0.1.4",
        "2001:db8::ffff",
        "2001:db8::1:0",
        "192.0.2.1",
    ] {
        assert!(f.admits(ip(admitted)), "{admitted}");
    }
    for refused in [
        "10.0.0.4",
        "10.0.1.5",
        "2001:db8::fffe",
        "2001:db8::1:1",
        "192.0.2.0",
        "192.0.2.2",
    ] {
        assert!(!f.admits(ip(refused)), "{refused}");
    }
}

#[test]
fn ipv4_mapped_callers_and_entries_are_ipv4() {
    let f = allow(json!(["203.0.113.0/24"]));
    assert!(f.admits(ip("::ffff:203.0.113.9")));
    assert!(!f.admits(ip("::ffff:203.0.114.0")));
    // An entry written in the mapped form names the IPv4 addresses.
    let mapped = allow(
        json!(["::ffff:198.51.100.0/120", { "from": "::ffff:192.0.2.1", "to": "192.0.2.3" }]),
    );
    assert!(mapped.admits(ip("198.51.100.255")));
    assert!(mapped.admits(ip("::ffff:198.51.100.0")));
    assert!(!mapped.admits(ip("198.51.101.0")));
    assert!(mapped.admits(ip("192.0.2.3")));
    assert!(!mapped.admits(ip("192.0.2.4")));
    // The IPv4-compatible form (deprecated, ::a.b.c.d) is an IPv6 address like any other.
    assert!(!f.admits(ip("::203.0.113.9")));
}

#[test]
fn overlapping_and_adjacent_entries_merge_into_few_ranges() {
    let f = allow(json!([
        "10.0.0.0/25",
        "10.0.0.128/25",
        "10.0.0.64/26",
        { "from": "10.0.1.0", "to": "10.0.1.9" },
        "10.0.0.0",
        "2001:db8::/64",
        "2001:db8:0:1::/64"
    ]));
    assert_eq!(f.range_count(), 2, "10.0.0.0-10.0.1.9 and 2001:db8::/63");
    assert!(f.admits(ip("10.0.1.9")));
    assert!(!f.admits(ip("10.0.1.10")));
    assert!(f.admits(ip("2001:db8:0:1:ffff:ffff:ffff:ffff")));
    assert!(!f.admits(ip("2001:db8:0:2::")));
}

#[test]
fn each_malformed_entry_is_refused_with_its_path() {
    let cases = [
        (json!("10.0.0.1/8"), "ip_filter.allow[0]: host bits set in 10.0.0.1/8 (the network is 10.0.0.0/8)"),
        (json!("2603:1030::1/48"), "ip_filter.allow[0]: host bits set in 2603:1030::1/48 (the network is 2603:1030::/48)"),
        (json!("10.0.0.0/33"), "ip_filter.allow[0]: \"10.0.0.0/33\": the prefix length must be a whole number from 0 to 32"),
        (json!("::/129"), "ip_filter.allow[0]: \"::/129\": the prefix length must be a whole number from 0 to 128"),
        (json!("10.0.0.0/+8"), "ip_filter.allow[0]: \"10.0.0.0/+8\": the prefix length must be a whole number from 0 to 32"),
        (json!("10.0.0.0/"), "ip_filter.allow[0]: \"10.0.0.0/\": the prefix length must be a whole number from 0 to 32"),
        (json!("10.0.0.0/0008"), "ip_filter.allow[0]: \"10.0.0.0/0008\": the prefix length must be a whole number from 0 to 32"),
        (json!("10.0.0/8"), "ip_filter.allow[0]: \"10.0.0/8\" is not a CIDR prefix (<IP address>/<length>)"),
        (json!("10.0.0.256"), "ip_filter.allow[0]: \"10.0.0.256\" is not an IP address"),
        (json!("010.0.0.1"), "ip_filter.allow[0]: \"010.0.0.1\" is not an IP address"),
        (json!(" 10.0.0.1"), "ip_filter.allow[0]: \" 10.0.0.1\" is not an IP address"),
        (json!("fe80::1%eth0"), "ip_filter.allow[0]: \"fe80::1%eth0\" is not an IP address"),
        (json!("example.com"), "ip_filter.allow[0]: \"example.com\" is not an IP address"),
        (json!(""), "ip_filter.allow[0]: \"\" is not an IP address"),
        (json!({ "from": "10.0.0.9", "to": "10.0.0.1" }), "ip_filter.allow[0]: 'from' 10.0.0.9 is after 'to' 10.0.0.1"),
        (json!({ "from": "2001:db8::2", "to": "2001:db8::1" }), "ip_filter.allow[0]: 'from' 2001:db8::2 is after 'to' 2001:db8::1"),
        (json!({ "from": "10.0.0.1", "to": "2001:db8::1" }), "ip_filter.allow[0]: 'from' 10.0.0.1 and 'to' 2001:db8::1 are not of the same IP version"),
        (json!({ "from": "10.0.0.0/8", "to": "10.0.0.9" }), "ip_filter.allow[0]: \"10.0.0.0/8\" is not an IP address"),
    ];
    for (entry, expected) in cases {
        assert_eq!(
            refusal(Some(json!({ "allow": ["192.0.2.1", entry] })), None)
                .replace("allow[1]", "allow[0]"),
            expected
        );
    }
}

#[test]
fn the_section_needs_exactly_one_non_empty_list() {
    assert_eq!(
        refusal(
            Some(json!({ "allow": ["10.0.0.0/8"], "forbid": ["10.1.0.0/16"] })),
            None
        ),
        "ip_filter: give one of 'allow' or 'forbid', not both"
    );
    assert_eq!(
        refusal(Some(json!({})), None),
        "ip_filter: needs one of 'allow' or 'forbid'"
    );
    assert!(refusal(Some(json!({ "forbid": [] })), None)
        .starts_with("ip_filter.forbid: must not be empty"));
    assert_eq!(
        refusal(None, Some(json!({ "forbid": ["10.0.0.0/8", "10.0.0.1/8"] }))),
        "operations[1].ip_filter.forbid[1]: host bits set in 10.0.0.1/8 (the network is 10.0.0.0/8)"
    );
    assert_eq!(
        refusal(None, Some(json!({ "allow": [], "forbid": [] }))),
        "operations[1].ip_filter: give one of 'allow' or 'forbid', not both"
    );
}

#[test]
fn shapes_serde_refuses_name_their_path() {
    let shape = |section: Value| refusal(Some(section), None);
    assert!(shape(json!({ "allow": ["10.0.0.0/8"], "deny": [] }))
        .starts_with("ip_filter.deny: unknown field `deny`"));
    assert!(shape(json!({ "allow": [42] }))
        .starts_with("ip_filter.allow[0]: must be an IP address, a CIDR prefix or {"));
    assert!(shape(json!({ "allow": [{ "from": "10.0.0.1" }] }))
        .starts_with("ip_filter.allow[0]: missing field `to`"));
    assert!(
        shape(json!({ "allow": [{ "from": "10.0.0.1", "to": "10.0.0.2", "via": "x" }] }))
            .starts_with("ip_filter.allow[0]: unknown field `via`")
    );
    assert!(shape(json!({ "allow": "10.0.0.0/8" })).starts_with("ip_filter.allow: invalid type"));
    let no_filter =
        json!({ "ip_filter": null, "operations": [{ "name": "op", "path": "/", "auth": "none" }] });
    let plan = Plan::from_json(no_filter.to_string().as_bytes()).unwrap();
    assert!(
        plan.caller_filter(None).is_none(),
        "a top-level null is no filter"
    );
}

#[test]
fn an_operation_inherits_replaces_or_switches_off_the_top_level_filter() {
    let config = json!({
        "ip_filter": { "allow": ["10.0.0.0/8"] },
        "operations": [
            { "name": "inherits", "path": "/a", "auth": "none" },
            { "name": "replaces", "path": "/b", "auth": "none", "ip_filter": { "forbid": ["10.1.0.0/16"] } },
            { "name": "off", "path": "/c", "auth": "none", "ip_filter": null }
        ]
    });
    let plan = Plan::from_json(config.to_string().as_bytes()).unwrap();
    let [inherits, replaces, off] = [0, 1, 2].map(|i| plan.operations.get(i).unwrap());
    assert_eq!(inherits.ip_filter, Override::Inherit);
    assert_eq!(off.ip_filter, Override::Off);
    let top = plan.caller_filter(None).unwrap();
    assert_eq!(plan.caller_filter(Some(inherits)), Some(top));
    assert_eq!(plan.caller_filter(Some(off)), None);
    let own = plan.caller_filter(Some(replaces)).unwrap();
    assert!(own.admits(ip("192.0.2.1")) && !own.admits(ip("10.1.2.3")));
}

#[test]
fn the_source_address_is_read_as_envoy_writes_it() {
    assert_eq!(caller_ip(b"127.0.0.1:54321"), Some(ip("127.0.0.1")));
    assert_eq!(caller_ip(b"[::1]:54321"), Some(ip("::1")));
    assert_eq!(
        caller_ip(b"[::ffff:10.1.2.3]:80"),
        Some(ip("::ffff:10.1.2.3"))
    );
    assert_eq!(caller_ip(b"203.0.113.7"), Some(ip("203.0.113.7")));
    assert_eq!(caller_ip(b"2001:db8::1"), Some(ip("2001:db8::1")));
    for unusable in [
        &b""[..],
        b"/var/run/envoy.sock",
        b"@abstract",
        b"127.0.0.1:",
        b"\xff\xfe",
        b"localhost:80",
    ] {
        assert_eq!(caller_ip(unusable), None, "{unusable:?}");
    }
}

/// A host that says `address` and counts how often it was asked.
struct Source {
    address: Option<&'static str>,
    reads: Cell<usize>,
}

impl Source {
    fn new(address: Option<&'static str>) -> Self {
        Self {
            address,
            reads: Cell::new(0),
        }
    }
}

impl SourceAddress for Source {
    fn source_address(&self) -> Option<Vec<u8>> {
        self.reads.set(self.reads.get() + 1);
        self.address.map(|text| text.as_bytes().to_vec())
    }
}

#[test]
fn the_stage_reads_the_address_only_when_a_filter_applies_and_fails_closed() {
    let f = allow(json!(["127.0.0.0/8"]));
    let source = Source::new(Some("10.0.0.1:1"));
    assert_eq!(admit_caller(None, Some(&source)), Ok(()));
    assert_eq!(source.reads.get(), 0, "no filter, no host call");

    let inside = Source::new(Some("127.0.0.1:40000"));
    assert_eq!(admit_caller(Some(&f), Some(&inside)), Ok(()));
    assert_eq!(inside.reads.get(), 1);
    for source in [
        Source::new(Some("10.0.0.1:1")),
        Source::new(None),
        Source::new(Some("not an address")),
    ] {
        let denial = admit_caller(Some(&f), Some(&source)).unwrap_err();
        assert_eq!((denial.status, denial.outcome), (403, Outcome::IpForbidden));
    }
    assert!(
        admit_caller(Some(&f), None).is_err(),
        "no host to ask: refused"
    );
    // Fail closed holds for `forbid` too: an unknown caller is not "outside the list".
    let forbid = filter(json!({ "forbid": ["10.0.0.0/8"] })).unwrap();
    assert!(admit_caller(Some(&forbid), Some(&Source::new(None))).is_err());
}

fn hash(key: &str) -> String {
    KeyHash::of(key.as_bytes()).to_config_string()
}

fn pipeline_plan(unmatched: &str) -> Plan {
    let config = json!({
        "ip_filter": { "allow": ["192.0.2.0/24"] },
        "products": { "starter": {} },
        "consumers": [{ "id": "flow", "product": "starter", "keys": [hash("key")] }],
        "operations": [
            { "name": "keyed", "path": "/keyed" },
            { "name": "partners", "path": "/partners", "ip_filter": { "allow": ["198.51.100.7"] } },
            { "name": "public", "path": "/public", "auth": "none", "ip_filter": null }
        ],
        "unmatched": unmatched
    });
    Plan::from_json(config.to_string().as_bytes()).unwrap()
}

fn decide_from(
    plan: &Plan,
    path: &str,
    key: Option<&str>,
    address: &'static str,
) -> crate::verdict::Decision {
    let mut headers = vec![
        (":method".to_string(), b"GET".to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"api.example".to_vec()),
    ];
    if let Some(key) = key {
        headers.push((
            "ocp-apim-subscription-key".to_string(),
            key.as_bytes().to_vec(),
        ));
    }
    let mut tokens = crate::jwt::token_cache::TokenCache::new(4, [1; 16]);
    let counters = MemoryStore::default();
    let source = Source::new(Some(address));
    let mut env = RequestEnv::new(&FixedClock(1_800_000_000_000), &mut tokens, &counters);
    env.source_address = Some(&source);
    decide(plan, &headers, &mut env)
}

fn status(decision: &crate::verdict::Decision) -> u32 {
    match &decision.verdict {
        Verdict::Deny(denial) => denial.status,
        _ => 200,
    }
}

#[test]
fn in_the_pipeline_the_filter_comes_before_credentials() {
    let plan = pipeline_plan("reject");
    // A refused caller gets 403 whether or not it brought a key, and whichever key: the
    // credentials are never looked at.
    for key in [None, Some("key"), Some("wrong")] {
        let refused = decide_from(&plan, "/keyed", key, "203.0.113.1:5000");
        let Verdict::Deny(denial) = &refused.verdict else {
            panic!("{key:?} forwarded")
        };
        assert_eq!((denial.status, denial.outcome), (403, Outcome::IpForbidden));
        assert_eq!(denial.body(), r#"{"statusCode":403,"message":"Forbidden"}"#);
        assert_eq!(
            refused.trace.operation,
            Some(0),
            "counted under its operation"
        );
        assert_eq!(refused.trace.consumer, None);
    }
    assert_eq!(
        status(&decide_from(&plan, "/keyed", None, "192.0.2.9:5000")),
        401
    );
    assert_eq!(
        status(&decide_from(&plan, "/keyed", Some("key"), "192.0.2.9:5000")),
        200
    );
    assert_eq!(
        status(&decide_from(
            &plan,
            "/keyed",
            Some("key"),
            "[::ffff:192.0.2.9]:5000"
        )),
        200
    );
    // The operation's own list replaces the top level's whole.
    assert_eq!(
        status(&decide_from(
            &plan,
            "/partners",
            Some("key"),
            "198.51.100.7:1"
        )),
        200
    );
    assert_eq!(
        status(&decide_from(&plan, "/partners", Some("key"), "192.0.2.9:1")),
        403
    );
    // `null`: no filter at all.
    assert_eq!(
        status(&decide_from(&plan, "/public", None, "203.0.113.1:1")),
        200
    );
}

#[test]
fn unmatched_requests_meet_the_top_level_filter_first() {
    let reject = pipeline_plan("reject");
    let refused = decide_from(&reject, "/nowhere", None, "203.0.113.1:1");
    assert_eq!(status(&refused), 403);
    assert_eq!(refused.trace.operation, None);
    assert_eq!(
        status(&decide_from(&reject, "/nowhere", None, "192.0.2.1:1")),
        404
    );
    let pass = pipeline_plan("pass");
    assert_eq!(
        status(&decide_from(&pass, "/nowhere", None, "203.0.113.1:1")),
        403
    );
    assert!(matches!(
        decide_from(&pass, "/nowhere", None, "192.0.2.1:1").verdict,
        Verdict::PassThrough(_)
    ));
}

#[test]
fn ip_forbidden_series_exist_where_a_filter_applies() {
    use crate::metrics::{configured_series, request_counter, NONE};
    let names: Vec<String> = configured_series(&pipeline_plan("reject"))
        .into_iter()
        .map(|series| series.name)
        .collect();
    for (operation, expected) in [
        (NONE, true),
        ("keyed", true),
        ("partners", true),
        ("public", false),
    ] {
        assert_eq!(
            names.contains(&request_counter(operation, NONE, "ip_forbidden")),
            expected,
            "{operation}"
        );
    }
    let unfiltered =
        Plan::from_json(br#"{"operations": [{"name": "op", "path": "/", "auth": "none"}]}"#)
            .unwrap();
    assert!(configured_series(&unfiltered)
        .iter()
        .all(|series| !series.name.contains("ip_forbidden")));
}

#[test]
fn a_range_splits_into_the_fewest_aligned_prefixes() {
    let set = RangeSet::new(vec![(0x0a00_0001_u32, 0x0a00_0006)]);
    assert_eq!(
        set.prefixes(),
        vec![
            (0x0a00_0001, 32),
            (0x0a00_0002, 31),
            (0x0a00_0004, 31),
            (0x0a00_0006, 32)
        ]
    );
    assert_eq!(
        RangeSet::new(vec![(0_u32, u32::MAX)]).prefixes(),
        vec![(0, 0)]
    );
    assert_eq!(
        RangeSet::new(vec![(0_u128, u128::MAX)]).prefixes(),
        vec![(0, 0)]
    );
    assert_eq!(
        RangeSet::new(vec![(u32::MAX, u32::MAX)]).prefixes(),
        vec![(u32::MAX, 32)]
    );
    assert_eq!(
        RangeSet::new(vec![(1_u128, u128::MAX)]).prefixes().len(),
        128,
        "one block per bit"
    );
}

#[test]
fn a_prefix_union_merges_overlaps_and_neighbours() {
    let mut union = PrefixUnion::default();
    for entry in [
        "2603:1020:206::/59",
        "13.69.227.192/28",
        "13.69.227.208/28",
        "13.69.227.208/29",
        "2603:1020:206:20::/59",
        "10.0.0.1",
        "10.0.0.0",
        "10.0.0.3",
    ] {
        union.insert(entry).unwrap();
    }
    assert_eq!(
        union.into_prefixes(),
        vec![
            "10.0.0.0/31",
            "10.0.0.3/32",
            "13.69.227.192/27",
            "2603:1020:206::/58",
        ]
    );
    let mut bad = PrefixUnion::default();
    assert_eq!(
        bad.insert("13.69.227.209/28"),
        Err(EntryError::HostBitsSet {
            entry: "13.69.227.209/28".into(),
            network: "13.69.227.208/28".into()
        })
    );
    assert!(PrefixUnion::default().into_prefixes().is_empty());
}

#[test]
fn a_preflight_meets_the_ip_filter_of_the_operation_it_asks_about_first() {
    let config = json!({
        "ip_filter": { "allow": ["192.0.2.0/24"] },
        "cors": { "allowed_origins": ["https://make.powerautomate.com"] },
        "products": { "starter": {} },
        "consumers": [{ "id": "flow", "product": "starter", "keys": [hash("key")] }],
        "operations": [
            { "name": "keyed", "methods": ["POST"], "path": "/keyed" },
            { "name": "partners", "methods": ["POST"], "path": "/partners",
              "ip_filter": { "allow": ["198.51.100.7"] } }
        ]
    });
    let plan = Plan::from_json(config.to_string().as_bytes()).unwrap();
    let preflight = |path: &str, address: &'static str| {
        let headers = vec![
            (":method".to_string(), b"OPTIONS".to_vec()),
            (":path".to_string(), path.as_bytes().to_vec()),
            (
                "origin".to_string(),
                b"https://make.powerautomate.com".to_vec(),
            ),
            (
                "access-control-request-method".to_string(),
                b"POST".to_vec(),
            ),
        ];
        let mut tokens = crate::jwt::token_cache::TokenCache::new(4, [1; 16]);
        let counters = MemoryStore::default();
        let source = Source::new(Some(address));
        let mut env = RequestEnv::new(&FixedClock(1_800_000_000_000), &mut tokens, &counters);
        env.source_address = Some(&source);
        decide(&plan, &headers, &mut env)
    };
    assert!(matches!(
        preflight("/keyed", "192.0.2.1:1").verdict,
        Verdict::Preflight(_)
    ));
    let refused = preflight("/keyed", "203.0.113.1:1");
    assert_eq!(status(&refused), 403);
    // The browser can read why: the 403 carries the CORS headers of the operation.
    assert!(!refused.cors.is_empty(), "{:?}", refused.cors);
    // The operation's own list decides for its preflights.
    assert_eq!(status(&preflight("/partners", "192.0.2.1:1")), 403);
    assert!(matches!(
        preflight("/partners", "198.51.100.7:1").verdict,
        Verdict::Preflight(_)
    ));
}
