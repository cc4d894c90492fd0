//! The compiled caller IP filter answers as a scan of its list would, written the slow way:
//! each entry's own arithmetic (mask compare, inclusive range) against the caller, an
//! IPv4-mapped caller or entry taken as IPv4. Random lists of addresses, prefixes and ranges
//! around a few bases (so entries overlap, touch and nest) and random callers around the same
//! bases, IPv4, IPv6 and mapped. And the prefixes `tollgate service-tags` prints cover exactly
//! the union of their inputs, in order, with no two that one prefix could replace.

use super::config;
use crate::config::{IpEntryConfig, IpFilterConfig};
use crate::ip_filter::{IpFilter, PrefixUnion};
use proptest::prelude::*;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const V4_BASES: &[u32] = &[0, 0x0a00_0000, 0xc000_0200, 0xffff_ff00];
const V6_BASES: &[u128] = &[
    0,
    0x2001_0db8_0000_0000_0000_0000_0000_0000,
    0xffff_ffff_ffff_ffff_ffff_ffff_ffff_ff00,
    // ::ffff:10.0.0.0, inside the IPv4-mapped block.
    0xffff_0a00_0000,
];

#[derive(Debug, Clone, Copy)]
enum Family {
    V4,
    V6,
}

/// One entry as the test means it.
#[derive(Debug, Clone)]
enum Entry {
    Prefix(Family, u128, u32),
    Range(Family, u128, u128),
}

fn bits(family: Family) -> u32 {
    match family {
        Family::V4 => 32,
        Family::V6 => 128,
    }
}

fn v4_address() -> impl Strategy<Value = u128> {
    (proptest::sample::select(V4_BASES), 0u32..600)
        .prop_map(|(base, offset)| u128::from(base.wrapping_add(offset)))
}

fn v6_address() -> impl Strategy<Value = u128> {
    (proptest::sample::select(V6_BASES), 0u128..600)
        .prop_map(|(base, offset)| base.wrapping_add(offset))
}

fn length(family: Family) -> impl Strategy<Value = u32> {
    let max = bits(family);
    prop_oneof![
        4 => (max - 12)..=max,
        1 => 0..=16u32,
        1 => (max.saturating_sub(32))..=max,
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    let prefix = |family: Family, address: BoxedStrategy<u128>| {
        (address, length(family)).prop_map(move |(address, length)| {
            let host = host_mask(family, length);
            Entry::Prefix(family, address & !host, length)
        })
    };
    let range = |family: Family, address: BoxedStrategy<u128>| {
        (address, 0u128..700).prop_map(move |(from, span)| {
            let max = if bits(family) == 32 {
                u128::from(u32::MAX)
            } else {
                u128::MAX
            };
            Entry::Range(family, from, from.saturating_add(span).min(max))
        })
    };
    prop_oneof![
        prefix(Family::V4, v4_address().boxed()),
        range(Family::V4, v4_address().boxed()),
        prefix(Family::V6, v6_address().boxed()),
        range(Family::V6, v6_address().boxed()),
    ]
}

fn host_mask(family: Family, length: u32) -> u128 {
    let host_bits = bits(family) - length;
    if host_bits == 0 {
        0
    } else {
        u128::MAX >> (128 - host_bits)
    }
}

fn text(family: Family, value: u128) -> String {
    match family {
        Family::V4 => Ipv4Addr::from(value as u32).to_string(),
        Family::V6 => Ipv6Addr::from(value).to_string(),
    }
}

fn config_entry(entry: &Entry) -> IpEntryConfig {
    match *entry {
        Entry::Prefix(family, network, length) => {
            IpEntryConfig::Text(format!("{}/{length}", text(family, network)))
        }
        Entry::Range(family, from, to) => IpEntryConfig::Range {
            from: text(family, from),
            to: text(family, to),
        },
    }
}

const MAPPED: u128 = 0xffff_0000_0000;

/// The entry's addresses as (family, first, last), an IPv6 one wholly inside the IPv4-mapped
/// block moved to IPv4.
fn span(entry: &Entry) -> (Family, u128, u128) {
    let (family, first, last) = match *entry {
        Entry::Prefix(family, network, length) => {
            (family, network, network | host_mask(family, length))
        }
        Entry::Range(family, from, to) => (family, from, to),
    };
    match family {
        Family::V6 if first >> 32 == MAPPED >> 32 && last >> 32 == MAPPED >> 32 => {
            (Family::V4, first - MAPPED, last - MAPPED)
        }
        _ => (family, first, last),
    }
}

/// The slow way: does any entry hold the caller?
fn listed(entries: &[Entry], caller: IpAddr) -> bool {
    let (family, value) = match caller {
        IpAddr::V4(v4) => (Family::V4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) if u128::from(v6) >> 32 == MAPPED >> 32 => {
            (Family::V4, u128::from(v6) - MAPPED)
        }
        IpAddr::V6(v6) => (Family::V6, u128::from(v6)),
    };
    entries.iter().any(|entry| {
        let (entry_family, first, last) = span(entry);
        matches!(
            (entry_family, family),
            (Family::V4, Family::V4) | (Family::V6, Family::V6)
        ) && first <= value
            && value <= last
    })
}

fn caller() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        v4_address().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a as u32))),
        v6_address().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        v4_address().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a as u32).to_ipv6_mapped())),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn the_compiled_filter_answers_as_a_scan_of_its_list(
        entries in proptest::collection::vec(entry(), 1..40),
        callers in proptest::collection::vec(caller(), 1..64),
        forbid in any::<bool>(),
    ) {
        let list: Vec<IpEntryConfig> = entries.iter().map(config_entry).collect();
        let section = if forbid {
            IpFilterConfig { allow: None, forbid: Some(list) }
        } else {
            IpFilterConfig { allow: Some(list), forbid: None }
        };
        let filter = IpFilter::compile("ip_filter", section).unwrap();
        // Every entry's own first and last address, and the ones just outside, besides the
        // random callers.
        let mut probes = callers;
        for entry in &entries {
            let (family, first, last) = span(entry);
            for value in [first.wrapping_sub(1), first, last, last.wrapping_add(1)] {
                probes.push(match family {
                    Family::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
                    Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
                });
            }
        }
        for caller in probes {
            prop_assert_eq!(filter.admits(caller), listed(&entries, caller) != forbid, "{}", caller);
        }
    }

    #[test]
    fn service_tag_prefixes_cover_the_union_and_are_fewest(
        entries in proptest::collection::vec(entry(), 1..40),
        callers in proptest::collection::vec(caller(), 1..64),
    ) {
        // Tags hold prefixes only: ranges become the prefix of their first address.
        let prefixes: Vec<Entry> = entries
            .into_iter()
            .map(|entry| match entry {
                Entry::Range(family, from, _) => Entry::Prefix(family, from, bits(family)),
                prefix => prefix,
            })
            .collect();
        let mut union = PrefixUnion::default();
        for entry in &prefixes {
            if let IpEntryConfig::Text(text) = config_entry(entry) {
                union.insert(&text).unwrap();
            }
        }
        let printed = union.into_prefixes();
        let reread: Vec<Entry> = printed
            .iter()
            .map(|text| {
                let (address, length) = text.split_once('/').unwrap();
                let length: u32 = length.parse().unwrap();
                match address.parse::<IpAddr>().unwrap() {
                    IpAddr::V4(v4) => Entry::Prefix(Family::V4, u128::from(u32::from(v4)), length),
                    IpAddr::V6(v6) => Entry::Prefix(Family::V6, u128::from(v6), length),
                }
            })
            .collect();
        for caller in callers {
            prop_assert_eq!(listed(&reread, caller), listed(&prefixes, caller), "{}", caller);
        }
        // In order, IPv4 first, and no two disjoint blocks that are one block's halves
        // (the minimal cover of a union of aligned blocks has no such pair).
        let spans: Vec<(u32, u128, u128)> = reread
            .iter()
            .map(|entry| {
                let (family, first, last) = span(entry);
                (bits(family), first, last)
            })
            .collect();
        for pair in spans.windows(2) {
            let ((family_a, _, last_a), (family_b, first_b, _)) = (pair[0], pair[1]);
            prop_assert!(family_a < family_b || last_a < first_b, "{:?}", printed);
        }
        let blocks: HashSet<(u32, u128, u32)> = reread
            .iter()
            .filter_map(|entry| match *entry {
                Entry::Prefix(family, network, length) => Some((bits(family), network, length)),
                Entry::Range(..) => None,
            })
            .collect();
        for &(family_bits, network, length) in &blocks {
            if length > 0 {
                let sibling = network ^ (1u128 << (family_bits - length));
                prop_assert!(!blocks.contains(&(family_bits, sibling, length)), "{:?}", printed);
            }
        }
    }
}
