//! Limits that hold across replicas and restarts (`"scope": "global"`), counted by a rate-limit
//! service speaking Envoy's RLS v3: the `global_limits` section, what a global limit must be,
//! the `ShouldRateLimit` request for one consumer's limits, and what the answer says. No I/O:
//! the glue makes the call and hands the answer back.

pub(crate) mod proto;

use crate::config::{FailureMode, GlobalLimitsConfig};
use crate::config_error::ConfigError;
use crate::limits::{tightest, Limit, Limits, RateHeaders};
use prost::Message;
use std::fmt;

pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
pub const METHOD: &str = "ShouldRateLimit";
pub const DEFAULT_DOMAIN: &str = "tollgate";
pub const DEFAULT_TIMEOUT_MS: u64 = 50;
pub const MAX_TIMEOUT_MS: u64 = 10_000;
/// tollgate-rls refuses longer domains (and entry keys and values).
pub const MAX_DOMAIN_BYTES: usize = 256;

/// Envoy's `grpcCall` tries the name as a serialized `GrpcService` first and only then as a
/// cluster name; a name whose bytes are valid protobuf parses as a `GrpcService` with no target
/// and Envoy aborts (`PANIC_DUE_TO_PROTO_UNSET`). Any message type accepts any well-formed
/// wire data (unknown fields are kept), so an empty one tells.
fn reads_as_grpc_service(cluster: &str) -> bool {
    #[derive(Clone, PartialEq, prost::Message)]
    struct AnyMessage {}
    AnyMessage::decode(cluster.as_bytes()).is_ok()
}

/// The periods a rate-limit service counts in, with the wire value of their unit
/// (`envoy.type.v3.RateLimitUnit`: SECOND 1, MINUTE 2, HOUR 3, DAY 4, MONTH 5, YEAR 6,
/// WEEK 7; a month is 30 days and a year 365, as envoyproxy/ratelimit and tollgate-rls count).
const UNITS: [(u64, i32); 7] = [
    (1, 1),
    (60, 2),
    (3_600, 3),
    (86_400, 4),
    (604_800, 7),
    (2_592_000, 5),
    (31_536_000, 6),
];

fn unit_of(period_s: u64) -> Option<i32> {
    UNITS
        .iter()
        .find(|(seconds, _)| *seconds == period_s)
        .map(|(_, unit)| *unit)
}

/// The `global_limits` section, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalLimits {
    /// The Envoy cluster (HTTP/2) of the rate-limit service.
    pub cluster: String,
    pub domain: String,
    /// How long a request waits for the answer.
    pub timeout_ms: u64,
    pub failure_mode: FailureMode,
}

impl GlobalLimits {
    pub fn compile(config: GlobalLimitsConfig) -> Result<Self, ConfigError> {
        if config.cluster.is_empty() || !config.cluster.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::rule(
                "global_limits.cluster",
                "must name an Envoy cluster (HTTP/2) of the rate-limit service: printable \
                 ASCII, no spaces",
            ));
        }
        if reads_as_grpc_service(&config.cluster) {
            return Err(ConfigError::rule(
                "global_limits.cluster",
                format!(
                    "'{}' cannot be used: Envoy first reads the name as a serialized \
                     GrpcService, and these bytes parse as one (Envoy would abort on the first \
                     call); rename the cluster (e.g. 'tollgate_rls')",
                    config.cluster
                ),
            ));
        }
        let domain = config.domain.unwrap_or_else(|| DEFAULT_DOMAIN.to_string());
        if domain.is_empty() || domain.len() > MAX_DOMAIN_BYTES {
            return Err(ConfigError::rule(
                "global_limits.domain",
                format!("must be 1 to {MAX_DOMAIN_BYTES} bytes (what the service accepts)"),
            ));
        }
        let timeout_ms = config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(ConfigError::rule(
                "global_limits.timeout_ms",
                format!("must be between 1 and {MAX_TIMEOUT_MS}"),
            ));
        }
        Ok(Self {
            cluster: config.cluster,
            domain,
            timeout_ms,
            failure_mode: config.failure_mode.unwrap_or_default(),
        })
    }
}

/// What a limit must be to be counted by the service (`at`: its configuration path).
pub fn check_limit(at: &str, limit: &Limit) -> Result<(), ConfigError> {
    if unit_of(limit.renewal_period_s).is_none() {
        return Err(ConfigError::rule(
            format!("{at}.renewal_period_s"),
            "a global limit's period must be a unit of the rate-limit service: 1, 60, 3600, \
             86400, 604800, 2592000 (30 days) or 31536000 (365 days)",
        ));
    }
    if u32::try_from(limit.calls).is_err() {
        return Err(ConfigError::rule(
            format!("{at}.calls"),
            format!("a global limit allows at most {} calls", u32::MAX),
        ));
    }
    Ok(())
}

/// Which limit of a product a descriptor counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    RateLimit,
    Quota,
}

impl LimitKind {
    /// The `limit` entry of its descriptor.
    pub fn label(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::Quota => "quota",
        }
    }
}

/// One global limit of the consumer's product, as asked of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub kind: LimitKind,
    pub limit: Limit,
}

/// The global limits of a product, in the order they are asked (rate limit first).
pub fn asked(global: &Limits) -> Vec<Asked> {
    let rate = global.rate.map(|limit| Asked {
        kind: LimitKind::RateLimit,
        limit,
    });
    let quota = global.quota.map(|limit| Asked {
        kind: LimitKind::Quota,
        limit,
    });
    rate.into_iter().chain(quota).collect()
}

/// Back from the asked limits to `Limits`, for counting them locally.
pub fn as_limits(asked: &[Asked]) -> Limits {
    let find = |kind| asked.iter().find(|a| a.kind == kind).map(|a| a.limit);
    Limits {
        rate: find(LimitKind::RateLimit),
        quota: find(LimitKind::Quota),
    }
}

/// The serialized `RateLimitRequest` for one request of `consumer`: one descriptor per
/// limit, entries `consumer=<id>` and `limit=rate_limit|quota`, the limit as an override,
/// `hits_addend` 1.
pub fn request(domain: &str, consumer: &str, asked: &[Asked]) -> Vec<u8> {
    let descriptors = asked
        .iter()
        .map(|a| proto::RateLimitDescriptor {
            entries: vec![
                proto::Entry {
                    key: "consumer".to_string(),
                    value: consumer.to_string(),
                },
                proto::Entry {
                    key: "limit".to_string(),
                    value: a.kind.label().to_string(),
                },
            ],
            limit: Some(proto::RateLimitOverride {
                // Checked at load: a global limit fits in u32 and has a unit.
                requests_per_unit: u32::try_from(a.limit.calls).unwrap_or(u32::MAX),
                unit: unit_of(a.limit.renewal_period_s).unwrap_or_default(),
            }),
        })
        .collect();
    proto::RateLimitRequest {
        domain: domain.to_string(),
        descriptors,
        hits_addend: 1,
    }
    .encode_to_vec()
}

/// What came back for a `ShouldRateLimit` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RlsAnswer<'a> {
    /// gRPC status OK, with this message.
    Message(&'a [u8]),
    /// The call ended with this gRPC status (4 when `timeout_ms` passed, 14 unavailable).
    Status(u32),
    /// The host would not make the call (no such cluster).
    NotDispatched,
}

/// What the service counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Counted in every limit; the tightest one's report.
    Admitted(Option<RateHeaders>),
    /// Refused by this limit (the first one over, rate limit before quota).
    Over { kind: LimitKind, retry_after_s: u64 },
}

/// Why the service's answer cannot be used; the failure mode then decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceFailure {
    /// The host would not make the call (no such cluster).
    NotDispatched,
    /// The call ended with this gRPC status.
    Status(u32),
    /// The answer is not a `RateLimitResponse`.
    Undecodable,
    /// The answer's codes or statuses do not fit the request.
    Mismatched,
}

impl fmt::Display for ServiceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotDispatched => {
                f.write_str("call not made (no such cluster, or no healthy endpoint)")
            }
            Self::Status(status) => {
                write!(f, "gRPC status {status} ({})", grpc_status_name(*status))
            }
            Self::Undecodable => f.write_str("answer is not a RateLimitResponse"),
            Self::Mismatched => f.write_str("answer does not match the request"),
        }
    }
}

fn grpc_status_name(status: u32) -> &'static str {
    match status {
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        16 => "UNAUTHENTICATED",
        _ => "other",
    }
}

/// Reads the answer to a request that asked `asked`, at `now_ms`.
pub fn interpret(
    asked: &[Asked],
    answer: RlsAnswer,
    now_ms: u64,
) -> Result<Counted, ServiceFailure> {
    let message = match answer {
        RlsAnswer::Message(message) => message,
        RlsAnswer::Status(status) => return Err(ServiceFailure::Status(status)),
        RlsAnswer::NotDispatched => return Err(ServiceFailure::NotDispatched),
    };
    let response =
        proto::RateLimitResponse::decode(message).map_err(|_| ServiceFailure::Undecodable)?;
    if response.statuses.len() != asked.len() {
        return Err(ServiceFailure::Mismatched);
    }
    let statuses = asked.iter().zip(&response.statuses);
    match response.overall_code {
        proto::CODE_OK => Ok(Counted::Admitted(
            statuses.fold(None, |best, (asked, status)| {
                tightest(best, Some(report(asked, status, now_ms)))
            }),
        )),
        proto::CODE_OVER_LIMIT => statuses
            .filter(|(_, status)| status.code == proto::CODE_OVER_LIMIT)
            .map(|(asked, status)| Counted::Over {
                kind: asked.kind,
                retry_after_s: reset_s(asked, status, now_ms),
            })
            .next()
            .ok_or(ServiceFailure::Mismatched),
        _ => Err(ServiceFailure::Mismatched),
    }
}

/// One descriptor's status as rate-limit headers.
fn report(asked: &Asked, status: &proto::DescriptorStatus, now_ms: u64) -> RateHeaders {
    let limit = status
        .current_limit
        .as_ref()
        .map(|current| u64::from(current.requests_per_unit))
        .filter(|calls| *calls > 0)
        .unwrap_or(asked.limit.calls);
    RateHeaders {
        limit,
        remaining: u64::from(status.limit_remaining).min(limit),
        reset_s: reset_s(asked, status, now_ms),
    }
}

/// Seconds until the descriptor's window resets: its `duration_until_reset` rounded up, or,
/// without one, the end of the epoch-aligned window; at least 1, at most the window.
fn reset_s(asked: &Asked, status: &proto::DescriptorStatus, now_ms: u64) -> u64 {
    let period = asked.limit.renewal_period_s.max(1);
    let seconds = match &status.duration_until_reset {
        Some(duration) => {
            let whole = u64::try_from(duration.seconds).unwrap_or(0);
            whole.saturating_add(u64::from(duration.nanos > 0))
        }
        None => period - (now_ms / 1000) % period,
    };
    seconds.clamp(1, period)
}

/// At most one log line a second (per VM) about a failing service.
#[derive(Debug, Default)]
pub struct LogThrottle {
    last_ms: Option<u64>,
}

impl LogThrottle {
    /// Whether a line may be logged at `now_ms`.
    pub fn allow(&mut self, now_ms: u64) -> bool {
        if self
            .last_ms
            .is_some_and(|last| now_ms < last.saturating_add(1000))
        {
            return false;
        }
        self.last_ms = Some(now_ms);
        true
    }
}

#[cfg(test)]
mod tests;
