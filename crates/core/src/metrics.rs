//! Metric names: APIM's analytics as Envoy stats. Labels are encoded in the stat name
//! (`tollgate_requests_total.op=validate.consumer=invoice-flow.outcome=allowed`) and pulled out
//! by the `stats_tags` of the shipped Envoy configs, so `/stats/prometheus` shows
//! `tollgate_requests_total{operation="validate",consumer="invoice-flow",outcome="allowed"}`.
//!
//! The series are fixed at configure time from operations, consumers and outcomes; only dynamic
//! JWT consumers add series at run time, up to a cap per VM (then they count as `jwt:*`).

use crate::config::FailureMode;
use crate::plan::Plan;
use crate::verdict::Trace;
use std::collections::HashMap;

pub const REQUESTS: &str = "tollgate_requests_total";
pub const UPSTREAM_LATENCY: &str = "tollgate_upstream_latency_ms";
pub const UPSTREAM_RESPONSES: &str = "tollgate_upstream_responses_total";
pub const LIMIT_SERVICE_FAILURES: &str = "tollgate_rate_limit_service_failures_total";
/// The bytes the response cache's entries take in this Envoy process (a gauge).
pub const CACHE_BYTES: &str = "tollgate_cache_bytes";
/// 5xx answers whose body `mask_backend_errors` replaced, per operation.
pub const MASKED_ERRORS: &str = "tollgate_masked_errors_total";
/// 2xx answers a response transform could not be applied to (answered 502), per operation.
pub const RESPONSE_TRANSFORM_FAILURES: &str = "tollgate_response_transform_failures_total";

/// The label value when there is no operation or no consumer.
pub use crate::checks::NO_LABEL as NONE;
/// Dynamic JWT consumers past the per-VM cap of their own series.
/// A label no consumer can have: `label` never keeps a `*`, so no client id maps onto it.
pub const OTHER_DYNAMIC: &str = "jwt:*";

pub const ALLOWED: &str = "allowed";
/// A body over `max_request_body_bytes`: refused at the edge, before any consumer is known (and
/// a streamed body refused mid-way counts here too, beside the `allowed` of its headers).
pub const TOO_LARGE: &str = "too_large";
/// A request body a transform refused: not JSON (415, 400), or the transform failed on it.
pub const BAD_BODY: &str = "bad_body";
/// A CORS preflight tollgate answered itself (allowed or not), never a consumer's call.
pub const PREFLIGHT: &str = "preflight";

/// Outcomes a request with a known consumer can have: a valid key or token, then `forbidden`,
/// throttling, or (`auth: both`) a valid key with a bad token.
const WITH_CONSUMER: [&str; 5] = [
    ALLOWED,
    "forbidden",
    "rate_limited",
    "quota_exceeded",
    "invalid_credential",
];

/// Outcomes without a consumer: open operations, missing or invalid credentials, and an
/// unknown JWT client.
const WITHOUT_CONSUMER: [&str; 4] = [
    ALLOWED,
    "missing_credential",
    "invalid_credential",
    "forbidden",
];

/// With `failure_mode: deny`, a consumer's request can also end in 503 when the rate-limit
/// service fails.
const UNAVAILABLE: &str = "unavailable";

/// The outcomes a request with a known consumer can have under this plan (on some operation).
fn consumer_outcomes(plan: &Plan) -> Vec<&'static str> {
    let mut outcomes = WITH_CONSUMER.to_vec();
    if plan
        .global_limits()
        .is_some_and(|global| global.failure_mode == FailureMode::Deny)
    {
        outcomes.push(UNAVAILABLE);
    }
    if plan.operations.iter().any(|op| op.request_body.is_some()) {
        outcomes.extend([BAD_BODY, TOO_LARGE]);
    }
    outcomes
}

/// Whether a consumer's request on `operation` can end in `outcome`.
fn possible_on(operation: &crate::plan::Operation, outcome: &str) -> bool {
    operation.request_body.is_some() || !matches!(outcome, BAD_BODY | TOO_LARGE)
}

/// Upstream response classes counted per operation.
pub const STATUS_CLASSES: [&str; 2] = ["4xx", "5xx"];

pub use crate::checks::metric_label as label;

pub fn request_counter(operation: &str, consumer: &str, outcome: &str) -> String {
    format!(
        "{REQUESTS}.op={}.consumer={}.outcome={}",
        label(operation),
        label(consumer),
        outcome
    )
}

/// The counter of dynamic consumers past the per-VM cap: its consumer label is written as is
/// (`label` would turn the `*` that keeps it apart into `_`).
pub fn overflow_counter(operation: &str, outcome: &str) -> String {
    format!(
        "{REQUESTS}.op={}.consumer={OTHER_DYNAMIC}.outcome={outcome}",
        label(operation)
    )
}

pub fn latency_histogram(operation: &str) -> String {
    format!("{UPSTREAM_LATENCY}.op={}", label(operation))
}

pub fn upstream_status_counter(operation: &str, class: &str) -> String {
    format!("{UPSTREAM_RESPONSES}.op={}.class={class}", label(operation))
}

pub fn masked_errors_counter(operation: &str) -> String {
    format!("{MASKED_ERRORS}.op={}", label(operation))
}

pub fn response_transform_failures_counter(operation: &str) -> String {
    format!("{RESPONSE_TRANSFORM_FAILURES}.op={}", label(operation))
}

/// Series a dynamic consumer may add, per VM, before it counts as `jwt:*`.
pub fn dynamic_series_cap(plan: &Plan) -> usize {
    plan.dynamic.map_or(0, |dynamic| {
        dynamic
            .pool_size
            .saturating_mul(consumer_outcomes(plan).len())
    })
}

/// What a series counts, by index, so the request path finds it without building its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeriesKey {
    /// Operation and configured consumer by index (`None`: `-`), outcome by label.
    Requests {
        operation: Option<usize>,
        consumer: Option<usize>,
        outcome: &'static str,
    },
    /// A dynamic consumer past the per-VM cap, per operation and outcome.
    OtherDynamic {
        operation: usize,
        outcome: &'static str,
    },
    UpstreamLatency(usize),
    UpstreamStatus(usize, &'static str),
    /// Calls to the rate-limit service that failed (no answer in time, an error, no cluster).
    LimitServiceFailures,
    /// 5xx bodies masked, per operation (`None`: requests no operation matched).
    MaskedErrors(Option<usize>),
    /// 2xx answers a response transform refused, per operation.
    ResponseTransformFailures(usize),
    /// What the response cache did for an operation.
    Cache(usize, CacheEvent),
    CacheBytes,
}

/// What the response cache does with a request or an answer, counted per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheEvent {
    /// Answered from the cache.
    Hit,
    /// Sent upstream (no entry, an expired one, or `Cache-Control: no-cache`).
    Miss,
    /// An upstream answer kept.
    Store,
    /// An unexpired entry of another key replaced to make room.
    Eviction,
}

impl CacheEvent {
    pub const ALL: [CacheEvent; 4] = [Self::Hit, Self::Miss, Self::Store, Self::Eviction];

    pub fn counter_name(self) -> &'static str {
        match self {
            Self::Hit => "tollgate_cache_hits_total",
            Self::Miss => "tollgate_cache_misses_total",
            Self::Store => "tollgate_cache_stores_total",
            Self::Eviction => "tollgate_cache_evictions_total",
        }
    }
}

pub fn cache_counter(operation: &str, event: CacheEvent) -> String {
    format!("{}.op={}", event.counter_name(), label(operation))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    Counter,
    Histogram,
    /// A value set or moved up and down (Envoy adds every VM's changes to one stat).
    Gauge,
}

/// A series defined at configure time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub key: SeriesKey,
    pub kind: SeriesKind,
    pub name: String,
}

fn counter(key: SeriesKey, name: String) -> Series {
    Series {
        key,
        kind: SeriesKind::Counter,
        name,
    }
}

/// Which (operation, consumer, outcome) combinations can happen, so they exist (at 0) from the
/// start: a consumer's `allowed`, `forbidden`, `rate_limited`, `quota_exceeded` and
/// `invalid_credential` (a valid key with a bad token under `auth: both`); without a
/// consumer, `allowed` (open operations), `missing_credential`, `invalid_credential` and
/// `forbidden` (an unknown JWT client); `no_operation` once; `preflight` without a consumer
/// wherever a `cors` section has tollgate answer preflights; and `ip_forbidden` (without a
/// consumer) wherever an `ip_filter` applies, unmatched requests included.
pub fn configured_series(plan: &Plan) -> Vec<Series> {
    let requests = |operation, consumer, outcome: &'static str, name| {
        counter(
            SeriesKey::Requests {
                operation,
                consumer,
                outcome,
            },
            name,
        )
    };
    let mut series = vec![requests(
        None,
        None,
        "no_operation",
        request_counter(NONE, NONE, "no_operation"),
    )];
    if plan.unmatched == crate::config::Unmatched::Pass {
        series.push(requests(
            None,
            None,
            ALLOWED,
            request_counter(NONE, NONE, ALLOWED),
        ));
        if plan.mask_backend_errors {
            series.push(counter(
                SeriesKey::MaskedErrors(None),
                masked_errors_counter(NONE),
            ));
        }
        if plan.body_limit.is_some() {
            series.push(requests(
                None,
                None,
                TOO_LARGE,
                request_counter(NONE, NONE, TOO_LARGE),
            ));
        }
    }
    if plan.answers_preflights(None) {
        series.push(requests(
            None,
            None,
            PREFLIGHT,
            request_counter(NONE, NONE, PREFLIGHT),
        ));
    }
    let ip_forbidden = crate::deny::Outcome::IpForbidden.as_str();
    if plan.caller_filter(None).is_some() {
        series.push(requests(
            None,
            None,
            ip_forbidden,
            request_counter(NONE, NONE, ip_forbidden),
        ));
    }
    if plan.global_limits().is_some() {
        series.push(counter(
            SeriesKey::LimitServiceFailures,
            LIMIT_SERVICE_FAILURES.to_string(),
        ));
    }
    let dynamic = plan.dynamic.is_some();
    let with_consumer = consumer_outcomes(plan);
    for (op_index, operation) in plan.operations.iter().enumerate() {
        let op = operation.name.as_str();
        let identifies = operation.auth != crate::config::AuthMode::None;
        for (consumer_index, consumer) in plan.consumers.iter().enumerate() {
            if !identifies {
                break;
            }
            for &outcome in &with_consumer {
                if !possible_on(operation, outcome) {
                    continue;
                }
                series.push(requests(
                    Some(op_index),
                    Some(consumer_index),
                    outcome,
                    request_counter(op, &consumer.id, outcome),
                ));
            }
        }
        let mut without_consumer = WITHOUT_CONSUMER.to_vec();
        if operation.request_body.is_some() {
            without_consumer.push(BAD_BODY);
        }
        if operation.body_limit.is_some() || operation.request_body.is_some() {
            without_consumer.push(TOO_LARGE);
        }
        for outcome in without_consumer {
            series.push(requests(
                Some(op_index),
                None,
                outcome,
                request_counter(op, NONE, outcome),
            ));
        }
        if plan.answers_preflights(Some(op_index)) {
            series.push(requests(
                Some(op_index),
                None,
                PREFLIGHT,
                request_counter(op, NONE, PREFLIGHT),
            ));
        }
        // The filter refuses before any credential is read: no consumer.
        if plan.caller_filter(Some(operation)).is_some() {
            series.push(requests(
                Some(op_index),
                None,
                ip_forbidden,
                request_counter(op, NONE, ip_forbidden),
            ));
        }
        if dynamic && identifies {
            for &outcome in with_consumer.iter().filter(|o| possible_on(operation, o)) {
                series.push(counter(
                    SeriesKey::OtherDynamic {
                        operation: op_index,
                        outcome,
                    },
                    overflow_counter(op, outcome),
                ));
            }
        }
        if operation.mask_backend_errors {
            series.push(counter(
                SeriesKey::MaskedErrors(Some(op_index)),
                masked_errors_counter(op),
            ));
        }
        if operation.response_body.is_some() {
            series.push(counter(
                SeriesKey::ResponseTransformFailures(op_index),
                response_transform_failures_counter(op),
            ));
        }
        for class in STATUS_CLASSES {
            series.push(counter(
                SeriesKey::UpstreamStatus(op_index, class),
                upstream_status_counter(op, class),
            ));
        }
        series.push(Series {
            key: SeriesKey::UpstreamLatency(op_index),
            kind: SeriesKind::Histogram,
            name: latency_histogram(op),
        });
        if operation.cache.is_some() {
            for event in CacheEvent::ALL {
                series.push(counter(
                    SeriesKey::Cache(op_index, event),
                    cache_counter(op, event),
                ));
            }
        }
    }
    if plan.cache.is_some() {
        series.push(Series {
            key: SeriesKey::CacheBytes,
            kind: SeriesKind::Gauge,
            name: CACHE_BYTES.to_string(),
        });
    }
    series
}

/// One label a series name encodes (`.op=validate`): its key in the name, and the tag it
/// becomes on `/stats/prometheus` (the `stats_tags` of the shipped Envoy configs turn
/// `.op=validate` into `operation="validate"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    pub key: &'static str,
    pub tag: &'static str,
}

const OPERATION: Label = Label {
    key: "op",
    tag: "operation",
};
const CONSUMER: Label = Label {
    key: "consumer",
    tag: "consumer",
};
const OUTCOME: Label = Label {
    key: "outcome",
    tag: "outcome",
};
const CLASS: Label = Label {
    key: "class",
    tag: "class",
};

/// A metric family: every series tollgate defines is one of these, its name the family's
/// followed by `.key=value` for each label, in this order. A host whose metrics take labels
/// apart from the name (Envoy's dynamic modules) defines the families once and takes each
/// series name apart with `parse_series`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub kind: SeriesKind,
    pub labels: &'static [Label],
}

/// Every metric family, so a host can define them all before it knows any series.
pub const FAMILIES: [Family; 11] = [
    Family {
        name: REQUESTS,
        kind: SeriesKind::Counter,
        labels: &[OPERATION, CONSUMER, OUTCOME],
    },
    Family {
        name: UPSTREAM_LATENCY,
        kind: SeriesKind::Histogram,
        labels: &[OPERATION],
    },
    Family {
        name: UPSTREAM_RESPONSES,
        kind: SeriesKind::Counter,
        labels: &[OPERATION, CLASS],
    },
    Family {
        name: LIMIT_SERVICE_FAILURES,
        kind: SeriesKind::Counter,
        labels: &[],
    },
    Family {
        name: CACHE_BYTES,
        kind: SeriesKind::Gauge,
        labels: &[],
    },
    Family {
        name: MASKED_ERRORS,
        kind: SeriesKind::Counter,
        labels: &[OPERATION],
    },
    Family {
        name: RESPONSE_TRANSFORM_FAILURES,
        kind: SeriesKind::Counter,
        labels: &[OPERATION],
    },
    Family {
        name: "tollgate_cache_hits_total",
        kind: SeriesKind::Counter,
        labels: &[OPERATION],
    },
    Family {
        name: "tollgate_cache_misses_total",
        kind: SeriesKind::Counter,
        labels: &[OPERATION],
    },
    Family {
        name: "tollgate_cache_stores_total",
        kind: SeriesKind::Counter,
        labels: &[OPERATION],
    },
    Family {
        name: "tollgate_cache_evictions_total",
        kind: SeriesKind::Counter,
        labels: &[OPERATION],
    },
];

/// A series name taken apart: the index of its family in `FAMILIES` and its label values in
/// the family's order. `None` for a name that is not one of tollgate's, or whose labels are
/// not its family's (in its order). Label values never hold a `.` (`label` replaces it).
pub fn parse_series(name: &str) -> Option<(usize, Vec<&str>)> {
    let mut parts = name.split('.');
    let family_name = parts.next()?;
    let index = FAMILIES.iter().position(|f| f.name == family_name)?;
    let family = FAMILIES.get(index)?;
    let mut values = Vec::with_capacity(family.labels.len());
    let mut expected = family.labels.iter();
    for part in parts {
        let (key, value) = part.split_once('=')?;
        if expected.next()?.key != key {
            return None;
        }
        values.push(value);
    }
    if expected.next().is_some() {
        return None;
    }
    Some((index, values))
}

/// The class an upstream `:status` is counted under, if any (`4xx`, `5xx`).
pub fn status_class(status: Option<&[u8]>) -> Option<&'static str> {
    match status.and_then(|status| status.first()) {
        Some(b'4') => Some("4xx"),
        Some(b'5') => Some("5xx"),
        _ => None,
    }
}

/// The host's handle of each series, found by index on the request path. Configured series are
/// defined up front; a dynamic consumer's series is defined on its first request while the
/// per-VM cap lasts, and counts under `jwt:*` after that.
#[derive(Debug)]
pub struct SeriesIds<Id> {
    configured: HashMap<SeriesKey, Id>,
    /// Series of dynamic consumers, by name.
    dynamic: HashMap<String, Id>,
    dynamic_left: usize,
}

impl<Id: Copy> SeriesIds<Id> {
    /// Defines every configured series through `define` (the host); one it refuses is left
    /// out, and its requests go uncounted.
    pub fn define(
        series: Vec<Series>,
        dynamic_cap: usize,
        mut define: impl FnMut(SeriesKind, &str) -> Option<Id>,
    ) -> Self {
        let configured = series
            .into_iter()
            .filter_map(|s| define(s.kind, &s.name).map(|id| (s.key, id)))
            .collect();
        Self {
            configured,
            dynamic: HashMap::new(),
            dynamic_left: dynamic_cap,
        }
    }

    /// The counter of one request, by operation, consumer and outcome; `define` is called for
    /// a dynamic consumer's first request (within the cap).
    pub fn request(
        &mut self,
        trace: &Trace,
        operation_name: &str,
        outcome: &'static str,
        define: impl FnOnce(SeriesKind, &str) -> Option<Id>,
    ) -> Option<Id> {
        if !trace.dynamic_consumer {
            let key = SeriesKey::Requests {
                operation: trace.operation,
                consumer: trace.configured_consumer,
                outcome,
            };
            return self.configured.get(&key).copied();
        }
        let consumer = trace.consumer.as_deref().unwrap_or(NONE);
        let name = request_counter(operation_name, consumer, outcome);
        if let Some(id) = self.dynamic.get(&name) {
            return Some(*id);
        }
        if self.dynamic_left > 0 {
            self.dynamic_left -= 1;
            let id = define(SeriesKind::Counter, &name);
            if let Some(id) = id {
                self.dynamic.insert(name, id);
            }
            return id;
        }
        trace.operation.and_then(|operation| {
            self.configured
                .get(&SeriesKey::OtherDynamic { operation, outcome })
                .copied()
        })
    }

    pub fn limit_service_failures(&self) -> Option<Id> {
        self.configured
            .get(&SeriesKey::LimitServiceFailures)
            .copied()
    }

    pub fn masked_errors(&self, operation: Option<usize>) -> Option<Id> {
        self.configured
            .get(&SeriesKey::MaskedErrors(operation))
            .copied()
    }

    pub fn response_transform_failures(&self, operation: usize) -> Option<Id> {
        self.configured
            .get(&SeriesKey::ResponseTransformFailures(operation))
            .copied()
    }

    pub fn upstream_latency(&self, operation: usize) -> Option<Id> {
        self.configured
            .get(&SeriesKey::UpstreamLatency(operation))
            .copied()
    }

    pub fn cache(&self, operation: usize, event: CacheEvent) -> Option<Id> {
        self.configured
            .get(&SeriesKey::Cache(operation, event))
            .copied()
    }

    pub fn cache_bytes(&self) -> Option<Id> {
        self.configured.get(&SeriesKey::CacheBytes).copied()
    }

    pub fn upstream_status(&self, operation: usize, class: &'static str) -> Option<Id> {
        self.configured
            .get(&SeriesKey::UpstreamStatus(operation, class))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn no_client_id_lands_in_the_overflow_series() {
        assert_eq!(
            overflow_counter("op", ALLOWED),
            "tollgate_requests_total.op=op.consumer=jwt:*.outcome=allowed"
        );
        for client in ["*", "other", "_", "%2A"] {
            assert_ne!(
                request_counter("op", &format!("jwt:{client}"), ALLOWED),
                overflow_counter("op", ALLOWED),
                "{client}"
            );
        }
    }

    #[test]
    fn labels_never_carry_the_separator() {
        assert_eq!(label("invoice-flow"), "invoice-flow");
        assert_eq!(label("jwt:6f1d-aa"), "jwt:6f1d-aa");
        assert_eq!(label("a.b c=d/e"), "a_b_c_d_e");
        assert_eq!(label("ü"), "_");
    }

    #[test]
    fn names_encode_their_labels() {
        assert_eq!(
            request_counter("validate", "invoice-flow", "allowed"),
            "tollgate_requests_total.op=validate.consumer=invoice-flow.outcome=allowed"
        );
        assert_eq!(
            latency_histogram("v.1"),
            "tollgate_upstream_latency_ms.op=v_1"
        );
        assert_eq!(
            upstream_status_counter("validate", "5xx"),
            "tollgate_upstream_responses_total.op=validate.class=5xx"
        );
    }

    #[test]
    fn configured_series_are_bounded_by_operations_and_consumers() {
        let hash = crate::subscription::KeyHash::of(b"k").to_config_string();
        let hash2 = crate::subscription::KeyHash::of(b"k2").to_config_string();
        let config = json!({
            "products": { "p": {} },
            "consumers": [
                { "id": "a", "product": "p", "keys": [hash] },
                { "id": "b", "product": "p", "keys": [hash2] }
            ],
            "operations": [
                { "name": "one", "path": "/1" },
                { "name": "two", "path": "/2", "auth": "none" }
            ]
        });
        let plan = Plan::from_json(config.to_string().as_bytes()).unwrap();
        let series = configured_series(&plan);
        let counters: Vec<&Series> = series
            .iter()
            .filter(|s| s.kind == SeriesKind::Counter)
            .collect();
        // 1 no_operation + per operation (2 consumers x 5 + 4 without consumer + 2 classes),
        // but no consumer series on the open operation.
        assert_eq!(counters.len(), 1 + (2 * 5 + 4 + 2) + (4 + 2));
        assert_eq!(
            series.len() - counters.len(),
            2,
            "one latency histogram per operation"
        );
        let names: std::collections::BTreeSet<&String> = series.iter().map(|s| &s.name).collect();
        assert_eq!(names.len(), series.len());
        let keys: std::collections::HashSet<SeriesKey> = series.iter().map(|s| s.key).collect();
        assert_eq!(keys.len(), series.len());
        let rate_limited = series
            .iter()
            .find(|s| {
                s.key
                    == SeriesKey::Requests {
                        operation: Some(0),
                        consumer: Some(0),
                        outcome: "rate_limited",
                    }
            })
            .unwrap();
        assert_eq!(
            rate_limited.name,
            request_counter("one", "a", "rate_limited")
        );
    }

    fn dynamic_plan() -> Plan {
        let config = json!({
            "products": { "p": { "rate_limit": { "calls": 5, "renewal_period_s": 60 } } },
            "jwt": {
                "jwks": { "keys": [{ "kty": "oct", "kid": "h", "k": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE" }] },
                "algorithms": ["HS256"],
                "default_product": "p",
                "max_dynamic_consumers": 1
            },
            "operations": [{ "name": "op", "path": "/", "auth": "jwt" }]
        });
        Plan::from_json(config.to_string().as_bytes()).unwrap()
    }

    fn dynamic_trace(client: &str) -> Trace {
        Trace {
            operation: Some(0),
            consumer: Some(format!("jwt:{client}")),
            configured_consumer: None,
            dynamic_consumer: true,
        }
    }

    #[test]
    fn series_ids_find_configured_series_and_cap_dynamic_ones() {
        let plan = dynamic_plan();
        let mut defined = Vec::new();
        let mut next = 0u32;
        let mut ids = SeriesIds::define(
            configured_series(&plan),
            dynamic_series_cap(&plan),
            |_, name| {
                defined.push(name.to_string());
                next += 1;
                Some(next)
            },
        );
        assert_eq!(dynamic_series_cap(&plan), 5, "one client x five outcomes");
        let no_consumer = Trace {
            operation: Some(0),
            ..Trace::default()
        };
        let missing = ids.request(&no_consumer, "op", "missing_credential", |_, _| None);
        let position = defined
            .iter()
            .position(|n| n == &request_counter("op", NONE, "missing_credential"))
            .unwrap();
        assert_eq!(missing, Some(u32::try_from(position).unwrap() + 1));

        let mut dynamic_names = Vec::new();
        let first = ids.request(&dynamic_trace("a"), "op", ALLOWED, |_, name| {
            dynamic_names.push(name.to_string());
            Some(100)
        });
        assert_eq!(first, Some(100));
        assert_eq!(dynamic_names, vec![request_counter("op", "jwt:a", ALLOWED)]);
        assert_eq!(
            ids.request(&dynamic_trace("a"), "op", ALLOWED, |_, _| panic!(
                "defined twice"
            )),
            Some(100)
        );
        for outcome in &WITH_CONSUMER[1..] {
            assert!(ids
                .request(&dynamic_trace("a"), "op", outcome, |_, _| Some(101))
                .is_some());
        }
        // The cap is spent: a newcomer counts as jwt:*.
        let other = ids.request(&dynamic_trace("b"), "op", ALLOWED, |_, _| {
            panic!("defined past the cap")
        });
        let other_name = overflow_counter("op", ALLOWED);
        let position = defined.iter().position(|n| n == &other_name).unwrap();
        assert_eq!(other, Some(u32::try_from(position).unwrap() + 1));
        assert!(ids.upstream_latency(0).is_some());
        assert!(ids.upstream_status(0, "5xx").is_some());
        assert_eq!(ids.upstream_latency(1), None);
    }

    #[test]
    fn a_series_the_host_refuses_goes_uncounted() {
        let plan = dynamic_plan();
        let mut ids: SeriesIds<u32> = SeriesIds::define(configured_series(&plan), 0, |_, _| None);
        assert_eq!(
            ids.request(&dynamic_trace("a"), "op", ALLOWED, |_, _| Some(1)),
            None
        );
        assert_eq!(ids.upstream_latency(0), None);
    }

    #[test]
    fn every_series_name_parses_into_its_family() {
        let hash = crate::subscription::KeyHash::of(b"k").to_config_string();
        let config = json!({
            "products": { "p": { "rate_limit": { "calls": 2, "renewal_period_s": 60, "scope": "global" } } },
            "consumers": [{ "id": "a.b", "product": "p", "keys": [hash] }],
            "global_limits": { "cluster": "rls", "failure_mode": "deny" },
            "mask_backend_errors": true,
            "cors": { "allowed_origins": ["https://x.example"] },
            "ip_filter": { "allow": ["127.0.0.1"] },
            "jwt": {
                "jwks": { "keys": [{ "kty": "oct", "kid": "h", "k": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE" }] },
                "algorithms": ["HS256"],
                "default_product": "p",
                "max_dynamic_consumers": 1
            },
            "operations": [
                { "name": "one", "methods": ["GET"], "path": "/1", "cache": { "ttl_s": 5 } },
                { "name": "v.2", "path": "/2", "auth": "jwt",
                  "response_body": { "transform": "body" } }
            ],
            "unmatched": "pass"
        });
        let plan = Plan::from_json(config.to_string().as_bytes()).unwrap();
        let series = configured_series(&plan);
        let mut families = std::collections::BTreeSet::new();
        for s in &series {
            let (index, values) = parse_series(&s.name).unwrap_or_else(|| panic!("{}", s.name));
            let family = FAMILIES[index];
            assert_eq!(family.kind, s.kind, "{}", s.name);
            let mut rebuilt = family.name.to_string();
            for (label, value) in family.labels.iter().zip(&values) {
                rebuilt.push_str(&format!(".{}={value}", label.key));
            }
            assert_eq!(rebuilt, s.name);
            families.insert(family.name);
        }
        assert_eq!(
            families.len(),
            FAMILIES.len(),
            "a family no series uses: {families:?}"
        );
        let overflow = overflow_counter("v.2", ALLOWED);
        let (_, values) = parse_series(&overflow).unwrap();
        assert_eq!(values, ["v_2", OTHER_DYNAMIC, ALLOWED]);
    }

    #[test]
    fn other_names_are_not_series() {
        for name in [
            "",
            "tollgate_requests_total",
            "tollgate_requests_total.op=a.consumer=b",
            "tollgate_requests_total.consumer=b.op=a.outcome=c",
            "tollgate_requests_total.op=a.consumer=b.outcome=c.extra=d",
            "tollgate_requests_total.op.consumer=b.outcome=c",
            "tollgate_cache_bytes.op=a",
            "unknown_total.op=a",
        ] {
            assert_eq!(parse_series(name), None, "{name}");
        }
        assert_eq!(parse_series(LIMIT_SERVICE_FAILURES), Some((3, Vec::new())));
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(Some(b"404")), Some("4xx"));
        assert_eq!(status_class(Some(b"503")), Some("5xx"));
        assert_eq!(status_class(Some(b"200")), None);
        assert_eq!(status_class(Some(b"")), None);
        assert_eq!(status_class(None), None);
    }
}
