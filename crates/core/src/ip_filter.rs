//! The caller IP filter (APIM's `ip-filter` policy; docs/configuration.md, "Caller IP filter"): the
//! first stage of the pipeline, before any credential is looked at. A list of addresses, prefixes
//! and ranges is compiled at load into two `RangeSet`s (IPv4, IPv6), so a lookup costs one binary
//! search whatever the list's length. The caller is Envoy's `source.address`, read from the host
//! only when a filter applies; tollgate never reads `X-Forwarded-For` itself (Envoy's connection
//! manager decides how far to trust it).

mod entry;
mod ranges;

pub use entry::EntryError;

use crate::config::{IpEntryConfig, IpFilterConfig, Override};
use crate::config_error::ConfigError;
use crate::deny::Denial;
use entry::{canonical_address, AddressRange};
use ranges::RangeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where the caller's address comes from: the host (proxy-wasm property `source.address`).
pub trait SourceAddress {
    /// The address as the host gives it (`127.0.0.1:54321`, `[::1]:54321`); `None` when it
    /// cannot be read.
    fn source_address(&self) -> Option<Vec<u8>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Callers outside the list are refused.
    Allow,
    /// Callers inside the list are refused.
    Forbid,
}

/// One `ip_filter` section, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpFilter {
    action: Action,
    v4: RangeSet<u32>,
    v6: RangeSet<u128>,
}

impl IpFilter {
    /// The section at `at` (`ip_filter`, `operations[1].ip_filter`), checked and compiled.
    pub(crate) fn compile(at: &str, config: IpFilterConfig) -> Result<Self, ConfigError> {
        let (action, list, entries) = match (config.allow, config.forbid) {
            (Some(entries), None) => (Action::Allow, "allow", entries),
            (None, Some(entries)) => (Action::Forbid, "forbid", entries),
            (Some(_), Some(_)) => {
                return Err(ConfigError::rule(
                    at,
                    "give one of 'allow' or 'forbid', not both",
                ))
            }
            (None, None) => return Err(ConfigError::rule(at, "needs one of 'allow' or 'forbid'")),
        };
        if entries.is_empty() {
            return Err(ConfigError::rule(
                format!("{at}.{list}"),
                "must not be empty (leave 'ip_filter' out, or set an operation's to null, \
                 for no filter)",
            ));
        }
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (index, entry) in entries.iter().enumerate() {
            let range = match entry {
                IpEntryConfig::Text(text) => entry::parse_text(text),
                IpEntryConfig::Range { from, to } => entry::parse_range(from, to),
            }
            .map_err(|err| ConfigError::rule(format!("{at}.{list}[{index}]"), err))?;
            match range {
                AddressRange::V4(first, last) => v4.push((first, last)),
                AddressRange::V6(first, last) => v6.push((first, last)),
            }
        }
        Ok(Self {
            action,
            v4: RangeSet::new(v4),
            v6: RangeSet::new(v6),
        })
    }

    /// Whether a caller at `address` may go on.
    pub(crate) fn admits(&self, address: IpAddr) -> bool {
        let listed = match canonical_address(address) {
            IpAddr::V4(v4) => self.v4.contains(u32::from(v4)),
            IpAddr::V6(v6) => self.v6.contains(u128::from(v6)),
        };
        match self.action {
            Action::Allow => listed,
            Action::Forbid => !listed,
        }
    }

    /// How many disjoint ranges the list became (what a lookup searches).
    #[cfg(test)]
    pub(crate) fn range_count(&self) -> usize {
        self.v4.ranges().len() + self.v6.ranges().len()
    }
}

/// An operation's own `ip_filter`, compiled (absent inherits, `null` switches it off).
pub(crate) fn compile_override(
    at: &str,
    section: Override<IpFilterConfig>,
) -> Result<Override<IpFilter>, ConfigError> {
    Ok(match section {
        Override::Inherit => Override::Inherit,
        Override::Off => Override::Off,
        Override::Set(config) => {
            Override::Set(IpFilter::compile(&format!("{at}.ip_filter"), config)?)
        }
    })
}

/// The pipeline's first stage: lets the caller on, or refuses it (403, `ip_forbidden`). The
/// address is read only when a filter applies; one that cannot be read or parsed is refused
/// (fail closed).
pub(crate) fn admit_caller(
    filter: Option<&IpFilter>,
    source: Option<&dyn SourceAddress>,
) -> Result<(), Denial> {
    let Some(filter) = filter else {
        return Ok(());
    };
    let caller = source
        .and_then(|source| source.source_address())
        .and_then(|text| caller_ip(&text));
    match caller {
        Some(address) if filter.admits(address) => Ok(()),
        _ => Err(Denial::ip_forbidden()),
    }
}

/// The IP address in Envoy's `source.address`: `1.2.3.4:5678`, `[2001:db8::1]:5678`, or an
/// address without a port. `None` for anything else (a Unix socket path, say).
pub(crate) fn caller_ip(source: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(source).ok()?;
    text.parse::<SocketAddr>()
        .map(|socket| socket.ip())
        .or_else(|_| text.parse::<IpAddr>())
        .ok()
}

/// A union of addresses and CIDR prefixes, given back as the fewest prefixes that cover it:
/// what `tollgate service-tags` prints from the tags' `addressPrefixes`.
#[derive(Debug, Default)]
pub struct PrefixUnion {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl PrefixUnion {
    /// Adds an address or a CIDR prefix, read as `ip_filter` reads it.
    pub fn insert(&mut self, entry: &str) -> Result<(), EntryError> {
        match entry::parse_text(entry)? {
            AddressRange::V4(first, last) => self.v4.push((first, last)),
            AddressRange::V6(first, last) => self.v6.push((first, last)),
        }
        Ok(())
    }

    /// The fewest CIDR prefixes covering the union: IPv4 first, each family in address order,
    /// overlapping and adjacent prefixes merged.
    pub fn into_prefixes(self) -> Vec<String> {
        let v4 = RangeSet::new(self.v4)
            .prefixes()
            .into_iter()
            .map(|(network, length)| format!("{}/{length}", Ipv4Addr::from(network)));
        let v6 = RangeSet::new(self.v6)
            .prefixes()
            .into_iter()
            .map(|(network, length)| format!("{}/{length}", Ipv6Addr::from(network)));
        v4.chain(v6).collect()
    }
}

#[cfg(test)]
mod tests;
