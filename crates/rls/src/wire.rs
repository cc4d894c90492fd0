//! The request limits, checked on the protobuf encoding before prost decodes it.
//!
//! Decoding allocates per element: an empty descriptor is 2 bytes on the wire and 56 in memory,
//! so a message within the size bound could still decode into megabytes before `request::plan`
//! refused it. Counting descriptors and entries and measuring strings on the wire first means a
//! request over the limits costs no more memory than its own bytes. What this lets through
//! decodes into at most 16 descriptors of 16 entries of 256-byte strings: prost keeps no unknown
//! fields, and the other fields are scalars or messages of scalars.

use crate::request::{RequestError, MAX_DESCRIPTORS, MAX_ENTRIES, MAX_TEXT_BYTES};

// Field numbers (envoy.service.ratelimit.v3.RateLimitRequest,
// envoy.extensions.common.ratelimit.v3.RateLimitDescriptor and its Entry).
const REQUEST_DOMAIN: u64 = 1;
const REQUEST_DESCRIPTORS: u64 = 2;
const DESCRIPTOR_ENTRIES: u64 = 1;
const ENTRY_KEY: u64 = 1;
const ENTRY_VALUE: u64 = 2;

/// Checks an encoded `RateLimitRequest` against the limits `request::plan` enforces on sizes
/// and counts, in the same order of precedence (domain, descriptor count, then descriptors).
pub fn check(message: &[u8]) -> Result<(), RequestError> {
    let mut domain_too_long = false;
    let mut descriptors = 0_usize;
    let mut first_descriptor_error = None;
    for_each_field(message, |number, bytes| {
        match (number, bytes) {
            (REQUEST_DOMAIN, Some(domain)) => {
                // The last occurrence is the one decoded; any may be too long to allocate.
                domain_too_long |= domain.len() > MAX_TEXT_BYTES;
            }
            (REQUEST_DESCRIPTORS, Some(descriptor)) => {
                // Past the limit the rest are only counted, for the error message.
                if descriptors < MAX_DESCRIPTORS && first_descriptor_error.is_none() {
                    first_descriptor_error = check_descriptor(descriptors, descriptor).err();
                }
                descriptors = descriptors.saturating_add(1);
            }
            _ => {}
        }
        Ok(())
    })?;
    if domain_too_long {
        return Err(RequestError::DomainTooLong);
    }
    if descriptors > MAX_DESCRIPTORS {
        return Err(RequestError::TooManyDescriptors(descriptors));
    }
    first_descriptor_error.map_or(Ok(()), Err)
}

fn check_descriptor(descriptor: usize, message: &[u8]) -> Result<(), RequestError> {
    let mut entries = 0_usize;
    for_each_field(message, |number, bytes| {
        if let (DESCRIPTOR_ENTRIES, Some(entry)) = (number, bytes) {
            entries = entries.saturating_add(1);
            if entries > MAX_ENTRIES {
                return Err(RequestError::TooManyEntries { descriptor });
            }
            check_entry(descriptor, entry)?;
        }
        Ok(())
    })
}

fn check_entry(descriptor: usize, message: &[u8]) -> Result<(), RequestError> {
    for_each_field(message, |number, bytes| match (number, bytes) {
        (ENTRY_KEY | ENTRY_VALUE, Some(text)) if text.len() > MAX_TEXT_BYTES => {
            Err(RequestError::EntryTooLong { descriptor })
        }
        _ => Ok(()),
    })
}

/// Calls `visit` with each field's number and, for a length-delimited field, its bytes.
fn for_each_field<'a, F>(mut message: &'a [u8], mut visit: F) -> Result<(), RequestError>
where
    F: FnMut(u64, Option<&'a [u8]>) -> Result<(), RequestError>,
{
    while !message.is_empty() {
        let key = varint(&mut message).ok_or(malformed("a field key"))?;
        let number = key >> 3;
        let bytes = match key & 7 {
            // Varint, 64-bit, length-delimited, 32-bit. Groups (3, 4) appear in none of these
            // messages, and 6 and 7 do not exist.
            0 => varint(&mut message).map(|_| None),
            1 => take(&mut message, 8).map(|_| None),
            2 => varint(&mut message)
                .and_then(|len| usize::try_from(len).ok())
                .and_then(|len| take(&mut message, len))
                .map(Some),
            5 => take(&mut message, 4).map(|_| None),
            _ => None,
        }
        .ok_or(malformed("a field"))?;
        visit(number, bytes)?;
    }
    Ok(())
}

fn malformed(what: &str) -> RequestError {
    RequestError::Malformed(format!("{what} is truncated or of an unknown wire type"))
}

/// Reads a base-128 varint (at most 10 bytes); `None` if it runs past the end.
fn varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0_u64;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn take<'a>(input: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
    let (head, rest) = input.split_at_checked(len)?;
    *input = rest;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
        Entry, RateLimitOverride,
    };
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
    use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
    use envoy_types::pb::google::protobuf::UInt64Value;
    use prost::Message;

    fn descriptor(entries: usize, text: usize) -> RateLimitDescriptor {
        RateLimitDescriptor {
            entries: (0..entries)
                .map(|_| Entry {
                    key: "k".repeat(text),
                    value: "v".repeat(text),
                })
                .collect(),
            limit: Some(RateLimitOverride {
                requests_per_unit: u32::MAX,
                unit: 7,
            }),
            hits_addend: Some(UInt64Value { value: 1 }),
            is_negative_hits: false,
        }
    }

    fn encoded(domain: usize, descriptors: Vec<RateLimitDescriptor>) -> Vec<u8> {
        RateLimitRequest {
            domain: "d".repeat(domain),
            descriptors,
            hits_addend: u32::MAX,
        }
        .encode_to_vec()
    }

    #[test]
    fn the_largest_request_within_the_limits_passes() {
        let bytes = encoded(
            MAX_TEXT_BYTES,
            vec![descriptor(MAX_ENTRIES, MAX_TEXT_BYTES); MAX_DESCRIPTORS],
        );
        assert_eq!(check(&bytes), Ok(()));
        assert_eq!(check(&[]), Ok(()), "the empty message is a valid encoding");
    }

    #[test]
    fn counts_and_sizes_over_the_limits_are_refused() {
        let flood = encoded(8, vec![RateLimitDescriptor::default(); 100_000]);
        assert_eq!(
            check(&flood),
            Err(RequestError::TooManyDescriptors(100_000))
        );
        let bytes = encoded(MAX_TEXT_BYTES + 1, vec![]);
        assert_eq!(check(&bytes), Err(RequestError::DomainTooLong));
        let bytes = encoded(8, vec![descriptor(1, 1), descriptor(MAX_ENTRIES + 1, 0)]);
        assert_eq!(
            check(&bytes),
            Err(RequestError::TooManyEntries { descriptor: 1 })
        );
        let bytes = encoded(8, vec![descriptor(2, MAX_TEXT_BYTES + 1)]);
        assert_eq!(
            check(&bytes),
            Err(RequestError::EntryTooLong { descriptor: 0 })
        );
        // As in `request::plan`: the domain first, then the count, then each descriptor.
        let bytes = encoded(
            MAX_TEXT_BYTES + 1,
            vec![descriptor(MAX_ENTRIES + 1, 0); MAX_DESCRIPTORS + 1],
        );
        assert_eq!(check(&bytes), Err(RequestError::DomainTooLong));
        let bytes = encoded(8, vec![descriptor(MAX_ENTRIES + 1, 0); MAX_DESCRIPTORS + 1]);
        assert_eq!(
            check(&bytes),
            Err(RequestError::TooManyDescriptors(MAX_DESCRIPTORS + 1))
        );
    }

    #[test]
    fn the_checks_agree_with_plan() {
        let requests = [
            encoded(MAX_TEXT_BYTES + 1, vec![descriptor(1, 1)]),
            encoded(8, vec![descriptor(1, 1); MAX_DESCRIPTORS + 1]),
            encoded(8, vec![descriptor(MAX_ENTRIES + 1, 1)]),
            encoded(8, vec![descriptor(1, 1), descriptor(1, MAX_TEXT_BYTES + 1)]),
        ];
        for bytes in requests {
            let decoded = RateLimitRequest::decode(bytes.as_slice()).unwrap();
            let planned = crate::request::plan(&decoded, 0, u64::MAX).unwrap_err();
            assert_eq!(check(&bytes), Err(planned));
        }
    }

    #[test]
    fn truncated_or_unknown_encodings_are_malformed() {
        let good = encoded(8, vec![descriptor(2, 4)]);
        for cut in 1..good.len() {
            // A cut between two fields leaves a shorter, valid message; inside one, it does not.
            let partial = good.get(..cut).unwrap();
            assert_eq!(
                check(partial).is_ok(),
                RateLimitRequest::decode(partial).is_ok(),
                "cut at {cut}"
            );
        }
        // A length running past the end; a varint that never ends; a group.
        for bad in [&[0x12, 0x05, 0x00][..], &[0x18, 0xff, 0xff], &[0x13, 0x14]] {
            assert!(
                matches!(check(bad), Err(RequestError::Malformed(_))),
                "{bad:?}"
            );
        }
        let eleven = [
            0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(matches!(check(&eleven), Err(RequestError::Malformed(_))));
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let mut bytes = encoded(8, vec![descriptor(1, 1)]);
        // Field 15 as varint, 64-bit, length-delimited and 32-bit.
        bytes.extend_from_slice(&[0x78, 0x01]);
        bytes.extend_from_slice(&[0x79, 1, 2, 3, 4, 5, 6, 7, 8]);
        bytes.extend_from_slice(&[0x7a, 0x02, 0xaa, 0xbb]);
        bytes.extend_from_slice(&[0x7d, 1, 2, 3, 4]);
        assert_eq!(check(&bytes), Ok(()));
        assert!(RateLimitRequest::decode(bytes.as_slice()).is_ok());
    }
}
