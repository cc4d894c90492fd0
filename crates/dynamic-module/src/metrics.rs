//! tollgate's metrics on Envoy's dynamic-module ABI.
//!
//! The glue defines each series by its full stat name, labels inside
//! (`tollgate_requests_total.op=validate.consumer=invoice-flow.outcome=allowed`), at any time:
//! when the plugin loads its configuration, and on the request path for a dynamic JWT consumer.
//! The wasm filter gives Envoy that name as it is, and the Envoy configuration's `stats_tags`
//! take the labels out. The ABI works otherwise: a metric is defined with its label *names*
//! only while Envoy creates the filter configuration (`on_http_filter_config_new`, main thread;
//! a later definition is refused, `Frozen`), and each increment, from a stream, names the label
//! *values*; Envoy then makes the series `<namespace>.<name>.<label>.<value>...` with those
//! labels as tags.
//!
//! So each family of `tollgate_core::metrics::FAMILIES` is defined once per configuration, its
//! label names the tags the shipped `stats_tags` give (`operation`, `consumer`, `outcome`,
//! `class`), and a series the glue defines is a family and its label values (`Series`).
//! `/stats/prometheus` then shows the same names and labels as the wasm filter's when Envoy
//! strips the metrics namespace (docs/operations.md, "Metrics of the native module").

use crate::abi::{ConfigHandle, MetricKind, MetricOp, MetricsResult, Stream};
use std::collections::HashMap;
use tollgate_core::metrics::{configured_series, parse_series, SeriesKind, FAMILIES};
use tollgate_core::Plan;

/// Envoy's id of each family (in `FAMILIES` order) on one configuration; `None` for one Envoy
/// refused (its series go uncounted, as a refused `define_metric` in the wasm filter).
#[derive(Debug, Clone)]
pub struct Families {
    ids: [Option<usize>; FAMILIES.len()],
}

impl Families {
    /// Defines every family (`on_http_filter_config_new` only).
    pub fn define(config: &ConfigHandle) -> Self {
        let mut ids = [None; FAMILIES.len()];
        for (id, family) in ids.iter_mut().zip(FAMILIES.iter()) {
            let tags: Vec<&str> = family.labels.iter().map(|label| label.tag).collect();
            match config.define(kind(family.kind), family.name, &tags) {
                Ok(defined) => *id = Some(defined),
                Err(result) => log::error!(
                    "tollgate: cannot define metric {} ({})",
                    family.name,
                    describe(result)
                ),
            }
        }
        Self { ids }
    }

    /// Makes every labelled counter series `plan` defines exist at 0 now
    /// (`on_http_filter_config_new` only), as the wasm filter's series do from the start:
    /// Envoy creates a labelled series only when it is first recorded, and the workers' plugins
    /// define theirs on each worker's first request. (A histogram cannot be created without a
    /// sample; the others have no labels, and exist from their definition.)
    pub fn create_at_zero(&self, config: &ConfigHandle, plan: &Plan) {
        let mut refused = 0usize;
        for series in configured_series(plan) {
            if series.kind != SeriesKind::Counter {
                continue;
            }
            let Some((family, values)) = parse_series(&series.name) else {
                refused += 1;
                continue;
            };
            let Some(id) = self.id(family) else {
                continue;
            };
            if values.is_empty() {
                continue;
            }
            let labels: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
            if config.increment_counter(id, &labels, 0) != MetricsResult::SUCCESS {
                refused += 1;
            }
        }
        if refused > 0 {
            log::error!("tollgate: {refused} metric series could not be created at 0");
        }
    }

    fn id(&self, family: usize) -> Option<usize> {
        self.ids.get(family).copied().flatten()
    }
}

fn kind(kind: SeriesKind) -> MetricKind {
    match kind {
        SeriesKind::Counter => MetricKind::Counter,
        SeriesKind::Gauge => MetricKind::Gauge,
        SeriesKind::Histogram => MetricKind::Histogram,
    }
}

pub fn describe(result: MetricsResult) -> &'static str {
    match result {
        MetricsResult::SUCCESS => "success",
        MetricsResult::METRIC_NOT_FOUND => "metric not found",
        MetricsResult::INVALID_LABELS => "invalid labels",
        MetricsResult::FROZEN => "definitions frozen",
        _ => "unknown result",
    }
}

/// One series the glue defined: its family's Envoy id and its label values.
#[derive(Debug)]
struct Series {
    envoy_id: usize,
    kind: SeriesKind,
    labels: Vec<Vec<u8>>,
}

/// The series one plugin (one configuration on one worker) defined, by the ids the glue
/// holds (their index here).
#[derive(Debug, Default)]
pub struct SeriesTable {
    series: Vec<Series>,
    by_name: HashMap<String, u32>,
}

/// Why a series could not be defined or recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesError {
    /// Not one of tollgate's series names, or another kind than its family's.
    Unknown,
    /// Its family could not be defined.
    Undefined,
    /// Envoy refused the record.
    Refused,
}

impl SeriesTable {
    /// The id of series `name` (defined once; the same id after that). Nothing is created in
    /// Envoy: a labelled series comes to exist when it is first recorded (the configured ones
    /// at 0, `Families::create_at_zero`).
    pub fn define(
        &mut self,
        families: &Families,
        series_kind: SeriesKind,
        name: &str,
    ) -> Result<u32, SeriesError> {
        if let Some(id) = self.by_name.get(name) {
            return Ok(*id);
        }
        let (family, values) = parse_series(name).ok_or(SeriesError::Unknown)?;
        if FAMILIES.get(family).map(|f| f.kind) != Some(series_kind) {
            return Err(SeriesError::Unknown);
        }
        let envoy_id = families.id(family).ok_or(SeriesError::Undefined)?;
        let id = u32::try_from(self.series.len()).map_err(|_| SeriesError::Refused)?;
        self.series.push(Series {
            envoy_id,
            kind: series_kind,
            labels: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
        });
        self.by_name.insert(name.to_string(), id);
        Ok(id)
    }

    /// Records into series `id` through `stream` (any stream of the configuration: the
    /// series is the configuration's, not the stream's). For a gauge, `delta` moves it up or
    /// down; for a counter it adds; for a histogram it is a sample.
    pub fn record(&self, stream: &Stream, id: u32, delta: i64) -> Result<(), SeriesError> {
        let series = usize::try_from(id)
            .ok()
            .and_then(|id| self.series.get(id))
            .ok_or(SeriesError::Unknown)?;
        let (op, value) = match series.kind {
            SeriesKind::Counter => (MetricOp::IncrementCounter, delta.unsigned_abs()),
            SeriesKind::Histogram => (MetricOp::RecordHistogram, delta.unsigned_abs()),
            SeriesKind::Gauge if delta < 0 => (MetricOp::DecrementGauge, delta.unsigned_abs()),
            SeriesKind::Gauge => (MetricOp::IncrementGauge, delta.unsigned_abs()),
        };
        let labels: Vec<&[u8]> = series.labels.iter().map(Vec::as_slice).collect();
        match stream.record_metric(op, series.envoy_id, &labels, value) {
            MetricsResult::SUCCESS => Ok(()),
            _ => Err(SeriesError::Refused),
        }
    }
}
