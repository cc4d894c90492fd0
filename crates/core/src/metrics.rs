//! Metric names: APIM's analytics as Envoy stats. Labels are encoded in the stat name
//! (`tollgate_requests_total.op=validate.consumer=invoice-flow.outcome=allowed`) and pulled out
//! by the `stats_tags` of the shipped Envoy configs, so `/stats/prometheus` shows
//! `tollgate_requests_total{operation="validate",consumer="invoice-flow",outcome="allowed"}`.
//!
//! The series are fixed at configure time from operations, consumers and outcomes; only dynamic
//! JWT consumers add series at run time, up to a cap per VM (then they count as `jwt:other`).

use crate::plan::Plan;

pub const REQUESTS: &str = "tollgate_requests_total";
pub const UPSTREAM_LATENCY: &str = "tollgate_upstream_latency_ms";
pub const UPSTREAM_RESPONSES: &str = "tollgate_upstream_responses_total";

/// The label value when there is no operation or no consumer.
pub const NONE: &str = "-";
/// Dynamic JWT consumers past the per-VM cap of their own series.
pub const OTHER_DYNAMIC: &str = "jwt:other";

pub const ALLOWED: &str = "allowed";

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

/// Upstream response classes counted per operation.
pub const STATUS_CLASSES: [&str; 2] = ["4xx", "5xx"];

/// A label value fit for a stat name: letters, digits and `_ - : @` kept, anything else
/// (dots above all, which separate the name's parts) becomes `_`.
pub fn label(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn request_counter(operation: &str, consumer: &str, outcome: &str) -> String {
    format!(
        "{REQUESTS}.op={}.consumer={}.outcome={}",
        label(operation),
        label(consumer),
        outcome
    )
}

pub fn latency_histogram(operation: &str) -> String {
    format!("{UPSTREAM_LATENCY}.op={}", label(operation))
}

pub fn upstream_status_counter(operation: &str, class: &str) -> String {
    format!("{UPSTREAM_RESPONSES}.op={}.class={class}", label(operation))
}

/// Series a dynamic consumer may add, per VM, before it counts as `jwt:other`.
pub fn dynamic_series_cap(plan: &Plan) -> usize {
    plan.dynamic.map_or(0, |dynamic| {
        dynamic.pool_size.saturating_mul(WITH_CONSUMER.len())
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    Counter,
    Histogram,
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
/// `forbidden` (an unknown JWT client); and `no_operation` once.
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
    }
    let dynamic = plan.dynamic.is_some();
    for (op_index, operation) in plan.operations.iter().enumerate() {
        let op = operation.name.as_str();
        let identifies = operation.auth != crate::config::AuthMode::None;
        for (consumer_index, consumer) in plan.consumers.iter().enumerate() {
            if !identifies {
                break;
            }
            for outcome in WITH_CONSUMER {
                series.push(requests(
                    Some(op_index),
                    Some(consumer_index),
                    outcome,
                    request_counter(op, &consumer.id, outcome),
                ));
            }
        }
        for outcome in WITHOUT_CONSUMER {
            series.push(requests(
                Some(op_index),
                None,
                outcome,
                request_counter(op, NONE, outcome),
            ));
        }
        if dynamic && identifies {
            for outcome in WITH_CONSUMER {
                series.push(counter(
                    SeriesKey::OtherDynamic {
                        operation: op_index,
                        outcome,
                    },
                    request_counter(op, OTHER_DYNAMIC, outcome),
                ));
            }
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
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
