//! One `ip_filter` entry read from its text: an address, a CIDR prefix or a `{from, to}` range,
//! as the inclusive range of addresses it names. std parses the addresses. A prefix with host
//! bits set (`10.0.0.1/8`) is refused: it reads as a typo for either an address or a network.
//! An IPv6 entry that lies wholly inside `::ffff:0:0/96` names the IPv4 addresses it maps, as
//! a caller seen as `::ffff:a.b.c.d` is the IPv4 caller `a.b.c.d`.

use super::ranges::low_mask;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The addresses one entry names, inclusive, in one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressRange {
    V4(u32, u32),
    V6(u128, u128),
}

/// Why an entry is refused; `Display` is the operator's text after the entry's path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryError {
    /// Neither an address nor `address/length`.
    NotAnAddress(String),
    /// `address/length` whose address part is no IP address.
    NotAPrefix(String),
    /// A length that is no number, or longer than the family's bits.
    BadPrefixLength { entry: String, max: u32 },
    /// Bits set after the prefix length.
    HostBitsSet { entry: String, network: String },
    /// A range whose `from` comes after its `to`.
    Reversed { from: String, to: String },
    /// A range from an IPv4 to an IPv6 address, or the other way.
    MixedFamilies { from: String, to: String },
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnAddress(text) => write!(f, "{text:?} is not an IP address"),
            Self::NotAPrefix(text) => {
                write!(f, "{text:?} is not a CIDR prefix (<IP address>/<length>)")
            }
            Self::BadPrefixLength { entry, max } => write!(
                f,
                "{entry:?}: the prefix length must be a whole number from 0 to {max}"
            ),
            Self::HostBitsSet { entry, network } => {
                write!(f, "host bits set in {entry} (the network is {network})")
            }
            Self::Reversed { from, to } => write!(f, "'from' {from} is after 'to' {to}"),
            Self::MixedFamilies { from, to } => write!(
                f,
                "'from' {from} and 'to' {to} are not of the same IP version"
            ),
        }
    }
}

impl std::error::Error for EntryError {}

/// An address or a CIDR prefix.
pub(crate) fn parse_text(text: &str) -> Result<AddressRange, EntryError> {
    let Some((address, length)) = text.split_once('/') else {
        let address = parse_address(text)?;
        return Ok(single(address));
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| EntryError::NotAPrefix(text.to_string()))?;
    let (value, bits) = match address {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    // Digits only: `u32::from_str` would take "+8".
    let length = Some(length)
        .filter(|digits| (1..=3).contains(&digits.len()))
        .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u32>().ok())
        .filter(|length| *length <= bits)
        .ok_or_else(|| EntryError::BadPrefixLength {
            entry: text.to_string(),
            max: bits,
        })?;
    let host = low_mask(bits - length);
    if value & host != 0 {
        let network = value & !host;
        let network = match address {
            IpAddr::V4(_) => Ipv4Addr::from(u32::try_from(network).unwrap_or(0)).to_string(),
            IpAddr::V6(_) => Ipv6Addr::from(network).to_string(),
        };
        return Err(EntryError::HostBitsSet {
            entry: text.to_string(),
            network: format!("{network}/{length}"),
        });
    }
    Ok(canonical(match address {
        IpAddr::V4(_) => {
            let first = u32::try_from(value).unwrap_or(0);
            let last = u32::try_from(value | host).unwrap_or(u32::MAX);
            AddressRange::V4(first, last)
        }
        IpAddr::V6(_) => AddressRange::V6(value, value | host),
    }))
}

/// APIM's `address-range`: both ends included.
pub(crate) fn parse_range(from: &str, to: &str) -> Result<AddressRange, EntryError> {
    let range = match (single(parse_address(from)?), single(parse_address(to)?)) {
        (AddressRange::V4(first, _), AddressRange::V4(last, _)) if first <= last => {
            AddressRange::V4(first, last)
        }
        (AddressRange::V6(first, _), AddressRange::V6(last, _)) if first <= last => {
            AddressRange::V6(first, last)
        }
        (AddressRange::V4(..), AddressRange::V4(..))
        | (AddressRange::V6(..), AddressRange::V6(..)) => {
            return Err(EntryError::Reversed {
                from: from.to_string(),
                to: to.to_string(),
            })
        }
        _ => {
            return Err(EntryError::MixedFamilies {
                from: from.to_string(),
                to: to.to_string(),
            })
        }
    };
    Ok(range)
}

fn parse_address(text: &str) -> Result<IpAddr, EntryError> {
    text.parse()
        .map_err(|_| EntryError::NotAnAddress(text.to_string()))
}

fn single(address: IpAddr) -> AddressRange {
    canonical(match address {
        IpAddr::V4(v4) => AddressRange::V4(u32::from(v4), u32::from(v4)),
        IpAddr::V6(v6) => AddressRange::V6(u128::from(v6), u128::from(v6)),
    })
}

/// `::ffff:0:0/96`, the IPv4-mapped block, as numbers.
const MAPPED_FIRST: u128 = 0xffff_0000_0000;
const MAPPED_LAST: u128 = 0xffff_ffff_ffff;

/// An IPv6 range wholly inside the IPv4-mapped block, as the IPv4 range it maps.
fn canonical(range: AddressRange) -> AddressRange {
    match range {
        AddressRange::V6(first, last) if MAPPED_FIRST <= first && last <= MAPPED_LAST => {
            let v4 = |value: u128| u32::try_from(value - MAPPED_FIRST).unwrap_or(u32::MAX);
            AddressRange::V4(v4(first), v4(last))
        }
        other => other,
    }
}

/// The caller as the filter looks it up: an IPv4-mapped IPv6 address is its IPv4 address.
pub(crate) fn canonical_address(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}
