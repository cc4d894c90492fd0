//! Origin matching as the contract reads it, written the slow way: an exact entry allows the
//! same scheme, host and port (scheme and host in any case, a default port the same as none);
//! `scheme://*.domain` allows hosts that end in `.domain` label for label, one label or more
//! deeper. Origins and entries from a small alphabet (so they collide often) rendered in mixed
//! case with and without default ports, the compiled matcher against this reference; and no
//! input string makes it panic.

use super::config;
use crate::cors::origin::{AllowedOrigins, OriginPattern};
use proptest::prelude::*;

const SCHEMES: &[&str] = &["https", "http"];
const LABELS: &[&str] = &["a", "b", "powerapps", "com", "evilpowerapps", "xa"];
const PORTS: &[Option<u16>] = &[None, Some(80), Some(443), Some(8443)];

#[derive(Debug, Clone)]
struct Origin {
    scheme: &'static str,
    labels: Vec<&'static str>,
    port: Option<u16>,
}

impl Origin {
    fn port_or_default(&self) -> u16 {
        self.port
            .unwrap_or(if self.scheme == "https" { 443 } else { 80 })
    }

    fn text(&self, upper: bool, host_prefix: &str) -> String {
        let mut text = format!("{}://{host_prefix}{}", self.scheme, self.labels.join("."));
        if let Some(port) = self.port {
            text.push_str(&format!(":{port}"));
        }
        if upper {
            text.to_ascii_uppercase()
        } else {
            text
        }
    }
}

fn origin() -> impl Strategy<Value = Origin> {
    (
        proptest::sample::select(SCHEMES),
        proptest::collection::vec(proptest::sample::select(LABELS), 1..4),
        proptest::sample::select(PORTS),
    )
        .prop_map(|(scheme, labels, port)| Origin {
            scheme,
            labels,
            port,
        })
}

/// An entry: an origin, exact or with `*.` in front of its host.
fn entry() -> impl Strategy<Value = (Origin, bool)> {
    (origin(), any::<bool>()).prop_filter("a wildcard needs two labels under it", |(o, wild)| {
        !*wild || o.labels.len() >= 2
    })
}

/// Entries, and an origin that is either anything or, mostly under the same scheme and port,
/// the first entry's host with up to two labels in front (so matches are as common as misses).
fn case() -> impl Strategy<Value = (Vec<(Origin, bool)>, Origin)> {
    proptest::collection::vec(entry(), 1..5).prop_flat_map(|entries| {
        let first = entries[0].0.clone();
        let place = prop_oneof![
            3 => Just((first.scheme, first.port)),
            1 => (proptest::sample::select(SCHEMES), proptest::sample::select(PORTS)),
        ];
        let near = (
            proptest::collection::vec(proptest::sample::select(LABELS), 0..3),
            place,
        )
            .prop_map(move |(mut labels, (scheme, port))| {
                labels.extend(first.labels.iter().copied());
                Origin {
                    scheme,
                    labels,
                    port,
                }
            });
        (Just(entries), prop_oneof![1 => origin(), 3 => near])
    })
}

fn reference(entries: &[(Origin, bool)], origin: &Origin) -> bool {
    entries.iter().any(|(entry, wildcard)| {
        let same_place =
            entry.scheme == origin.scheme && entry.port_or_default() == origin.port_or_default();
        let host = if *wildcard {
            origin.labels.len() > entry.labels.len() && origin.labels.ends_with(&entry.labels)
        } else {
            origin.labels == entry.labels
        };
        same_place && host
    })
}

/// The cases reach both answers, so the property above is not vacuous.
#[test]
fn the_generator_reaches_matches_and_misses() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut matched, mut missed) = (0, 0);
    for _ in 0..500 {
        let (entries, asked) = case().new_tree(&mut runner).unwrap().current();
        if reference(&entries, &asked) {
            matched += 1;
        } else {
            missed += 1;
        }
    }
    assert!(
        matched > 100 && missed > 100,
        "matched {matched}, missed {missed}"
    );
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn the_matcher_agrees_with_the_reference((entries, asked) in case(), upper in any::<bool>()) {
        let patterns = entries.iter().map(|(entry, wildcard)| {
            OriginPattern::parse(&entry.text(!upper, if *wildcard { "*." } else { "" }))
        });
        let patterns: Vec<OriginPattern> = patterns.collect::<Result<_, _>>()
            .map_err(|err| TestCaseError::fail(format!("{err}")))?;
        let allowed = AllowedOrigins::listed(patterns);
        prop_assert_eq!(
            allowed.allows(&asked.text(upper, "")),
            reference(&entries, &asked),
            "{:?} asked by {:?}", entries, asked
        );
    }

    #[test]
    fn no_origin_header_makes_it_panic(text in "\\PC{0,40}|https?://[a-z.*:\\[\\]0-9@/]{0,30}") {
        let allowed = AllowedOrigins::listed([
            OriginPattern::parse("https://*.powerapps.com").unwrap(),
            OriginPattern::parse("https://a.example:8443").unwrap(),
        ]);
        let _ = allowed.allows(&text);
        let _ = AllowedOrigins::Any.allows(&text);
        let _ = OriginPattern::parse(&text);
    }
}
