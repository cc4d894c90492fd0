//! Envoy stats for the series of `tollgate_core::metrics`: defined at configure time and found by
//! index per request, without building names. Only dynamic JWT consumers define new series at
//! run time, up to a cap per VM; past it they count as `jwt:other`.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use std::collections::HashMap;
use tollgate_core::metrics::{self, Series, SeriesKey, SeriesKind};
use tollgate_core::pipeline::Trace;

#[derive(Default)]
pub struct Registry {
    configured: HashMap<SeriesKey, u32>,
    /// Series of dynamic consumers, by name.
    dynamic: HashMap<String, u32>,
    dynamic_left: usize,
}

fn define(kind: SeriesKind, name: &str) -> Option<u32> {
    let kind = match kind {
        SeriesKind::Counter => MetricType::Counter,
        SeriesKind::Histogram => MetricType::Histogram,
    };
    match hostcalls::define_metric(kind, name) {
        Ok(id) => Some(id),
        Err(_) => {
            log::error!("tollgate: cannot define metric {name}");
            None
        }
    }
}

impl Registry {
    pub fn define(series: Vec<Series>, dynamic_cap: usize) -> Self {
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

    fn increment_id(id: Option<u32>) {
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    /// Counts one request under its operation, consumer and outcome.
    pub fn count_request(&mut self, trace: &Trace, operation_name: &str, outcome: &'static str) {
        if !trace.dynamic_consumer {
            let key = SeriesKey::Requests {
                operation: trace.operation,
                consumer: trace.configured_consumer,
                outcome,
            };
            return Self::increment_id(self.configured.get(&key).copied());
        }
        let consumer = trace.consumer.as_deref().unwrap_or(metrics::NONE);
        let name = metrics::request_counter(operation_name, consumer, outcome);
        let id = match self.dynamic.get(&name) {
            Some(id) => Some(*id),
            None if self.dynamic_left > 0 => {
                self.dynamic_left -= 1;
                let id = define(SeriesKind::Counter, &name);
                if let Some(id) = id {
                    self.dynamic.insert(name, id);
                }
                id
            }
            None => trace.operation.and_then(|operation| {
                self.configured
                    .get(&SeriesKey::OtherDynamic { operation, outcome })
                    .copied()
            }),
        };
        Self::increment_id(id);
    }

    pub fn upstream_response(
        &self,
        operation: usize,
        elapsed_ms: u64,
        status_class: Option<&'static str>,
    ) {
        if let Some(id) = self.configured.get(&SeriesKey::UpstreamLatency(operation)) {
            let _ = hostcalls::record_metric(*id, elapsed_ms);
        }
        if let Some(class) = status_class {
            Self::increment_id(
                self.configured
                    .get(&SeriesKey::UpstreamStatus(operation, class))
                    .copied(),
            );
        }
    }
}
