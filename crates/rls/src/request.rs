//! What one `ShouldRateLimit` request asks to count: input checks, and one plan entry per descriptor.
//!
//! Kept apart from the gRPC glue and from Redis so that every refusal and every counted key can be
//! tested as a pure function of the request and the clock.

use std::fmt;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;

use crate::counting::{counter_key, Unit, Window};

/// Descriptors per request. tollgate sends one per global limit of a product (two today).
pub const MAX_DESCRIPTORS: usize = 16;
/// Entries per descriptor.
pub const MAX_ENTRIES: usize = 16;
/// Bytes in the domain, and in each entry key and value: bounds the size of a Redis key.
pub const MAX_TEXT_BYTES: usize = 256;
/// Bytes in one encoded request; larger messages are refused before they are read. The largest
/// request within the limits above is ~134 KB (16 descriptors of 16 entries of 256-byte keys
/// and values); twice that leaves room for fields this service ignores, and tollgate sends
/// under 1 KB. tonic's default, 4 MiB, let one call grow the process by ~115 MB.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// A descriptor that carries a `limit` override, made ready for the counting script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counted {
    /// The Redis key of this descriptor's counter in the current window.
    pub key: String,
    /// `requests_per_unit` of the override; 0 refuses every request.
    pub limit: u32,
    pub unit: Unit,
    /// How much this request adds to the counter if admitted.
    pub addend: u64,
    pub window: Window,
}

/// One entry per request descriptor, in request order: `None` where the descriptor has no
/// `limit` override and is therefore not counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub descriptors: Vec<Option<Counted>>,
}

impl Plan {
    /// The descriptors to count, in request order.
    pub fn counted(&self) -> impl Iterator<Item = &Counted> {
        self.descriptors.iter().flatten()
    }
}

/// Why a request was refused with `INVALID_ARGUMENT`. `descriptor` is the 0-based position in
/// `descriptors`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// Not a protobuf encoding of `RateLimitRequest`.
    Malformed(String),
    EmptyDomain,
    DomainTooLong,
    TooManyDescriptors(usize),
    TooManyEntries {
        descriptor: usize,
    },
    EntryTooLong {
        descriptor: usize,
    },
    EmptyEntryKey {
        descriptor: usize,
    },
    LimitWithoutEntries {
        descriptor: usize,
    },
    UnknownUnit {
        descriptor: usize,
        unit: i32,
    },
    NegativeHits {
        descriptor: usize,
    },
    /// A hits_addend above `--max-hits-addend`; `descriptor` is `None` for the request's own.
    AddendTooLarge {
        descriptor: Option<usize>,
        addend: u64,
        max: u64,
    },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Malformed(why) => write!(f, "malformed request: {why}"),
            RequestError::EmptyDomain => f.write_str("domain must not be empty"),
            RequestError::DomainTooLong => {
                write!(f, "domain is longer than {MAX_TEXT_BYTES} bytes")
            }
            RequestError::TooManyDescriptors(n) => {
                write!(f, "{n} descriptors, at most {MAX_DESCRIPTORS} are accepted")
            }
            RequestError::TooManyEntries { descriptor } => write!(
                f,
                "descriptors[{descriptor}] has more than {MAX_ENTRIES} entries"
            ),
            RequestError::EntryTooLong { descriptor } => write!(
                f,
                "descriptors[{descriptor}] has an entry key or value longer than {MAX_TEXT_BYTES} bytes"
            ),
            RequestError::EmptyEntryKey { descriptor } => {
                write!(f, "descriptors[{descriptor}] has an entry with an empty key")
            }
            RequestError::LimitWithoutEntries { descriptor } => write!(
                f,
                "descriptors[{descriptor}] has a limit but no entries to count it under"
            ),
            RequestError::UnknownUnit { descriptor, unit } => write!(
                f,
                "descriptors[{descriptor}].limit.unit {unit} is not a known unit (SECOND..YEAR, WEEK)"
            ),
            RequestError::NegativeHits { descriptor } => write!(
                f,
                "descriptors[{descriptor}].is_negative_hits is not supported"
            ),
            RequestError::AddendTooLarge {
                descriptor,
                addend,
                max,
            } => {
                if let Some(descriptor) = descriptor {
                    write!(f, "descriptors[{descriptor}].")?;
                }
                write!(
                    f,
                    "hits_addend {addend} is more than this service accepts ({max}, --max-hits-addend)"
                )
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// Checks `request` and plans its counting at `now_ms` (Unix milliseconds, the service's clock).
/// No hits_addend, the request's or a descriptor's, may exceed `max_addend`: whoever reaches
/// the service could otherwise spend any consumer's quota in one call.
pub fn plan(
    request: &RateLimitRequest,
    now_ms: u64,
    max_addend: u64,
) -> Result<Plan, RequestError> {
    if request.domain.is_empty() {
        return Err(RequestError::EmptyDomain);
    }
    if request.domain.len() > MAX_TEXT_BYTES {
        return Err(RequestError::DomainTooLong);
    }
    if request.descriptors.len() > MAX_DESCRIPTORS {
        return Err(RequestError::TooManyDescriptors(request.descriptors.len()));
    }
    // Envoy's protocol: a request-level hits_addend of 0 means 1.
    let request_addend = match request.hits_addend {
        0 => 1,
        n => u64::from(n),
    };
    if request_addend > max_addend {
        return Err(RequestError::AddendTooLarge {
            descriptor: None,
            addend: request_addend,
            max: max_addend,
        });
    }
    let descriptors = request
        .descriptors
        .iter()
        .enumerate()
        .map(|(position, descriptor)| {
            plan_descriptor(
                &request.domain,
                position,
                descriptor,
                (request_addend, max_addend),
                now_ms,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Plan { descriptors })
}

fn plan_descriptor(
    domain: &str,
    descriptor: usize,
    d: &RateLimitDescriptor,
    (request_addend, max_addend): (u64, u64),
    now_ms: u64,
) -> Result<Option<Counted>, RequestError> {
    if d.entries.len() > MAX_ENTRIES {
        return Err(RequestError::TooManyEntries { descriptor });
    }
    for entry in &d.entries {
        if entry.key.len() > MAX_TEXT_BYTES || entry.value.len() > MAX_TEXT_BYTES {
            return Err(RequestError::EntryTooLong { descriptor });
        }
        if entry.key.is_empty() {
            return Err(RequestError::EmptyEntryKey { descriptor });
        }
    }
    // A descriptor's own hits_addend, when set, wins over the request's, and may be 0 (a check
    // that counts nothing). Checked on every descriptor, counted or not: one rule to explain.
    let addend = d.hits_addend.map_or(request_addend, |own| own.value);
    if addend > max_addend {
        return Err(RequestError::AddendTooLarge {
            descriptor: Some(descriptor),
            addend,
            max: max_addend,
        });
    }
    let Some(limit) = d.limit else {
        return Ok(None);
    };
    if d.entries.is_empty() {
        return Err(RequestError::LimitWithoutEntries { descriptor });
    }
    let unit = Unit::from_wire(limit.unit).ok_or(RequestError::UnknownUnit {
        descriptor,
        unit: limit.unit,
    })?;
    if d.is_negative_hits {
        return Err(RequestError::NegativeHits { descriptor });
    }
    let window = Window::at(now_ms, unit);
    let key = counter_key(
        domain,
        d.entries.iter().map(|e| (e.key.as_str(), e.value.as_str())),
        unit,
        &window,
    );
    Ok(Some(Counted {
        key,
        limit: limit.requests_per_unit,
        unit,
        addend,
        window,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
        Entry, RateLimitOverride,
    };
    use envoy_types::pb::google::protobuf::UInt64Value;

    fn descriptor(entries: &[(&str, &str)], limit: Option<(u32, i32)>) -> RateLimitDescriptor {
        RateLimitDescriptor {
            entries: entries
                .iter()
                .map(|(k, v)| Entry {
                    key: (*k).to_string(),
                    value: (*v).to_string(),
                })
                .collect(),
            limit: limit.map(|(requests_per_unit, unit)| RateLimitOverride {
                requests_per_unit,
                unit,
            }),
            hits_addend: None,
            is_negative_hits: false,
        }
    }

    fn request(descriptors: Vec<RateLimitDescriptor>, hits_addend: u32) -> RateLimitRequest {
        RateLimitRequest {
            domain: "tollgate".to_string(),
            descriptors,
            hits_addend,
        }
    }

    #[test]
    fn counted_and_uncounted_descriptors_keep_request_order() {
        let r = request(
            vec![
                descriptor(
                    &[("consumer", "a"), ("limit", "rate_limit")],
                    Some((100, 2)),
                ),
                descriptor(&[("path", "/x")], None),
                descriptor(&[("consumer", "a"), ("limit", "quota")], Some((5, 5))),
            ],
            0,
        );
        let plan = plan(&r, 61_500, 1).unwrap();
        assert_eq!(plan.descriptors.len(), 3);
        let first = plan.descriptors[0].as_ref().unwrap();
        assert_eq!(
            first.key,
            "tollgate-rls:tollgate:consumer=a|limit=rate_limit:60:1"
        );
        assert_eq!(first.limit, 100);
        assert_eq!(first.unit, Unit::Minute);
        assert_eq!(first.addend, 1, "hits_addend 0 means 1");
        assert!(plan.descriptors[1].is_none());
        let third = plan.descriptors[2].as_ref().unwrap();
        assert_eq!(third.unit, Unit::Month);
        assert_eq!(plan.counted().count(), 2);
    }

    #[test]
    fn descriptor_addend_wins_over_request_addend() {
        let mut own = descriptor(&[("k", "v")], Some((10, 1)));
        own.hits_addend = Some(UInt64Value { value: 0 });
        let mut two = descriptor(&[("k", "w")], Some((10, 1)));
        two.hits_addend = Some(UInt64Value { value: 2 });
        let plain = descriptor(&[("k", "x")], Some((10, 1)));
        let plan = plan(&request(vec![own, two, plain], 3), 0, 3).unwrap();
        let addends: Vec<u64> = plan.counted().map(|c| c.addend).collect();
        assert_eq!(addends, vec![0, 2, 3]);
    }

    #[test]
    fn addends_above_the_maximum_are_refused() {
        let counted = || descriptor(&[("k", "v")], Some((10, 1)));
        // The request's own addend; 0 means 1, so it passes a maximum of 1.
        assert!(plan(&request(vec![counted()], 0), 0, 1).is_ok());
        assert!(plan(&request(vec![counted()], 1), 0, 1).is_ok());
        assert_eq!(
            plan(&request(vec![counted()], u32::MAX), 0, 1),
            Err(RequestError::AddendTooLarge {
                descriptor: None,
                addend: u64::from(u32::MAX),
                max: 1
            })
        );
        // Even a request that counts nothing.
        assert!(plan(&request(vec![], 2), 0, 1).is_err());
        assert!(plan(&request(vec![], 2), 0, 2).is_ok());

        // A descriptor's addend, counted or not.
        let mut big = counted();
        big.hits_addend = Some(UInt64Value { value: u64::MAX });
        let mut uncounted = descriptor(&[("path", "/")], None);
        uncounted.hits_addend = Some(UInt64Value { value: 6 });
        assert_eq!(
            plan(&request(vec![counted(), big], 1), 0, u64::from(u32::MAX)),
            Err(RequestError::AddendTooLarge {
                descriptor: Some(1),
                addend: u64::MAX,
                max: u64::from(u32::MAX)
            })
        );
        let err = plan(&request(vec![uncounted.clone()], 1), 0, 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "descriptors[0].hits_addend 6 is more than this service accepts (5, --max-hits-addend)"
        );
        assert!(plan(&request(vec![uncounted], 1), 0, 6).is_ok());
    }

    #[test]
    fn invalid_requests_are_refused() {
        let ok = || descriptor(&[("k", "v")], Some((1, 1)));
        let mut r = request(vec![ok()], 0);
        r.domain.clear();
        assert_eq!(plan(&r, 0, 1), Err(RequestError::EmptyDomain));

        let mut r = request(vec![ok()], 0);
        r.domain = "d".repeat(MAX_TEXT_BYTES + 1);
        assert_eq!(plan(&r, 0, 1), Err(RequestError::DomainTooLong));

        let r = request(vec![ok(); MAX_DESCRIPTORS + 1], 0);
        assert_eq!(
            plan(&r, 0, 1),
            Err(RequestError::TooManyDescriptors(MAX_DESCRIPTORS + 1))
        );

        let r = request(vec![ok(), descriptor(&[], Some((1, 1)))], 0);
        assert_eq!(
            plan(&r, 0, 1),
            Err(RequestError::LimitWithoutEntries { descriptor: 1 })
        );

        let long = "v".repeat(MAX_TEXT_BYTES + 1);
        let r = request(vec![descriptor(&[("k", &long)], None)], 0);
        assert_eq!(
            plan(&r, 0, 1),
            Err(RequestError::EntryTooLong { descriptor: 0 })
        );

        let r = request(vec![descriptor(&[("", "v")], Some((1, 1)))], 0);
        assert_eq!(
            plan(&r, 0, 1),
            Err(RequestError::EmptyEntryKey { descriptor: 0 })
        );

        let many: Vec<(&str, &str)> = vec![("k", "v"); MAX_ENTRIES + 1];
        let r = request(vec![descriptor(&many, Some((1, 1)))], 0);
        assert_eq!(
            plan(&r, 0, 1),
            Err(RequestError::TooManyEntries { descriptor: 0 })
        );

        for unit in [0, 8, -3] {
            let r = request(vec![descriptor(&[("k", "v")], Some((1, unit)))], 0);
            assert_eq!(
                plan(&r, 0, 1),
                Err(RequestError::UnknownUnit {
                    descriptor: 0,
                    unit
                })
            );
        }

        let mut negative = ok();
        negative.is_negative_hits = true;
        let r = request(vec![negative], 0);
        assert_eq!(
            plan(&r, 0, 1),
            Err(RequestError::NegativeHits { descriptor: 0 })
        );
    }

    #[test]
    fn limits_at_the_bounds_are_accepted() {
        let text = "x".repeat(MAX_TEXT_BYTES);
        let entries: Vec<(&str, &str)> = vec![(&text, &text); MAX_ENTRIES];
        let mut r = request(vec![descriptor(&entries, Some((0, 7))); MAX_DESCRIPTORS], 0);
        r.domain = text.clone();
        let plan = plan(&r, 0, 1).unwrap();
        assert_eq!(plan.counted().count(), MAX_DESCRIPTORS);
        assert!(plan.counted().all(|c| c.limit == 0 && c.unit == Unit::Week));
    }

    #[test]
    fn a_request_without_limits_counts_nothing() {
        let r = request(
            vec![descriptor(&[], None), descriptor(&[("a", "b")], None)],
            0,
        );
        let plan = plan(&r, 0, 1).unwrap();
        assert_eq!(plan.counted().count(), 0);
        assert_eq!(plan.descriptors.len(), 2);
    }
}
