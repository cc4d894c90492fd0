//! Envoy stats for the metric names of `crate::metrics`: defined at configure time, found by
//! name per request. Only dynamic JWT consumers define new series at run time, up to a cap.

use crate::metrics::{self, Series};
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use std::collections::HashMap;

#[derive(Default)]
pub struct Registry {
    ids: HashMap<String, u32>,
    dynamic_left: usize,
}

impl Registry {
    pub fn define(series: Series, dynamic_cap: usize) -> Self {
        let mut registry = Self {
            ids: HashMap::with_capacity(series.counters.len() + series.histograms.len()),
            dynamic_left: dynamic_cap,
        };
        for name in series.counters {
            registry.define_one(MetricType::Counter, name);
        }
        for name in series.histograms {
            registry.define_one(MetricType::Histogram, name);
        }
        registry
    }

    fn define_one(&mut self, kind: MetricType, name: String) -> Option<u32> {
        match hostcalls::define_metric(kind, &name) {
            Ok(id) => {
                self.ids.insert(name, id);
                Some(id)
            }
            Err(_) => {
                log::error!("tollgate: cannot define metric {name}");
                None
            }
        }
    }

    /// Counts one request. A dynamic consumer's first request defines its series while the
    /// cap allows; after that it counts as `jwt:other`.
    pub fn count_request(&mut self, operation: &str, consumer: &str, dynamic: bool, outcome: &str) {
        let name = metrics::request_counter(operation, consumer, outcome);
        let id = match self.ids.get(&name) {
            Some(id) => Some(*id),
            None if dynamic && self.dynamic_left > 0 => {
                self.dynamic_left -= 1;
                self.define_one(MetricType::Counter, name)
            }
            None if dynamic => self
                .ids
                .get(&metrics::request_counter(
                    operation,
                    metrics::OTHER_DYNAMIC,
                    outcome,
                ))
                .copied(),
            None => None,
        };
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    pub fn increment(&self, name: &str) {
        if let Some(id) = self.ids.get(name) {
            let _ = hostcalls::increment_metric(*id, 1);
        }
    }

    pub fn record(&self, name: &str, value: u64) {
        if let Some(id) = self.ids.get(name) {
            let _ = hostcalls::record_metric(*id, value);
        }
    }
}
