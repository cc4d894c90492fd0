//! `tollgate service-tags` as an operator runs it: the built binary on the test file, its
//! stdout fed to `ip_filter.allow` exactly as printed, its stderr and exit status.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};
use tollgate_core::Plan;

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/service-tags/ServiceTags_Public_20261130.json"
);

fn tollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn prints_a_json_array_that_ip_filter_takes_as_is() {
    let out = tollgate(&[
        "service-tags",
        FILE,
        "--tag",
        "AzureConnectors.WestEurope",
        "--tag",
        "AzureConnectors.NorthEurope",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prefixes: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(prefixes.len(), 10);
    assert_eq!(
        prefixes.first().map(String::as_str),
        Some("13.69.227.208/28")
    );
    assert_eq!(
        prefixes.last().map(String::as_str),
        Some("2603:1020:206:40::/64")
    );

    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("AzureConnectors.WestEurope: 10 prefixes, changeNumber 12\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("AzureConnectors.NorthEurope: 5 prefixes, changeNumber 7\n"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("cloud Public, changeNumber 345; 10 prefixes after merging (7 IPv4, 3 IPv6)"),
        "{stderr}"
    );

    let config = serde_json::json!({
        "ip_filter": { "allow": prefixes },
        "operations": [{ "name": "op", "path": "/", "auth": "none" }]
    });
    Plan::from_json(config.to_string().as_bytes()).unwrap();
}

#[test]
fn an_unknown_tag_fails_with_the_closest_names() {
    let out = tollgate(&["service-tags", FILE, "--tag", "AzureConnectors.WestEuropa"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing half-printed on stdout");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "tollgate service-tags: {FILE}: unknown tag 'AzureConnectors.WestEuropa'; the closest names in the file: AzureConnectors.WestEurope, "
        )),
        "{stderr}"
    );
}

#[test]
fn usage_errors_fail() {
    for args in [
        &["service-tags", FILE][..],
        &["service-tags", "--tag", "AzureConnectors"],
        &["service-tags", FILE, "--tag"],
        &[
            "service-tags",
            FILE,
            "--tag",
            "AzureConnectors",
            "--tags",
            "x",
        ],
        &[
            "service-tags",
            "/nonexistent/ServiceTags_Public.json",
            "--tag",
            "AzureConnectors",
        ],
    ] {
        let out = tollgate(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}
