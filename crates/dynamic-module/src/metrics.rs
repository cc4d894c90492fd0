//! tollgate's metrics on Envoy's dynamic-module ABI.
//!
//! The glue defines each series by its full stat name, labels inside
//! (`tollgate_requests_total.op=validate.consumer=invoice-flow.outcome=allowed`), at any time:
//! when the plugin loads its configuration, and on the request path for a dynamic JWT consumer.
//! The wasm filter gives Envoy that name as it is, and the Envoy configuration's `stats_tags`
//! take the labels out. The ABI defines metrics only while Envoy creates the filter
//! configuration (`on_http_filter_config_new`, main thread; a later definition is refused,
//! `Frozen`), either plain (recorded by id) or with label *names* (each record then names the
//! label *values*, and Envoy makes the series `<namespace>.<name>.<label>.<value>...` with
//! those labels as tags).
//!
//! So, when Envoy creates the configuration (`Metrics::define`):
//! - every series the configuration defines (`configured_series`: all of them but dynamic JWT
//!   consumers') is defined plain, under the wasm filter's name: recorded by id, as cheap as
//!   the wasm filter's, existing (at 0, a histogram empty) from the start, and its labels
//!   taken out by the same `stats_tags`;
//! - each family of `tollgate_core::metrics::FAMILIES` that has labels is defined with label
//!   names, the tags those `stats_tags` give (`operation`, `consumer`, `outcome`, `class`):
//!   a series defined later (a dynamic consumer's) is recorded through its family with its
//!   label values (`parse_series`). That costs more per record: Envoy looks its series up
//!   with every one (about 4 µs a labelled record on the bench machine).
//!
//! `/stats/prometheus` then shows the same names and labels as the wasm filter's when Envoy
//! strips the metrics namespace (docs/operations.md, "Metrics of the native module").

use crate::abi::{ConfigHandle, MetricKind, MetricOp, MetricsResult, Stream};
use std::collections::HashMap;
use tollgate_core::metrics::{configured_series, parse_series, SeriesKind, FAMILIES};
use tollgate_core::Plan;

/// The metrics of one configuration, as Envoy's ids: each configured series by its full name,
/// and each labelled family (in `FAMILIES` order; `None` for one without labels, or one Envoy
/// refused). A series Envoy refused goes uncounted, as a refused `define_metric` in the wasm
/// filter.
#[derive(Debug, Clone)]
pub struct Metrics {
    configured: HashMap<String, (SeriesKind, usize)>,
    families: [Option<usize>; FAMILIES.len()],
}

impl Metrics {
    /// Defines the configured series of `plan` and the labelled families
    /// (`on_http_filter_config_new` only).
    pub fn define(config: &ConfigHandle, plan: &Plan) -> Self {
        let mut refused = Vec::new();
        let mut configured = HashMap::new();
        for series in configured_series(plan) {
            match config.define(kind(series.kind), &series.name, &[]) {
                Ok(id) => {
                    configured.insert(series.name, (series.kind, id));
                }
                Err(result) => refused.push(format!("{} ({})", series.name, describe(result))),
            }
        }
        let mut families = [None; FAMILIES.len()];
        for (id, family) in families.iter_mut().zip(FAMILIES.iter()) {
            if family.labels.is_empty() {
                continue;
            }
            let tags: Vec<&str> = family.labels.iter().map(|label| label.tag).collect();
            match config.define(kind(family.kind), family.name, &tags) {
                Ok(defined) => *id = Some(defined),
                Err(result) => refused.push(format!("{} ({})", family.name, describe(result))),
            }
        }
        for metric in refused.iter().take(16) {
            log::error!("tollgate: cannot define metric {metric}");
        }
        Self {
            configured,
            families,
        }
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
    /// The id of series `name` (defined once; the same id after that): the configured series
    /// of that name, or else its family with its label values. Nothing is created in Envoy
    /// here: a labelled series comes to exist when it is first recorded.
    pub fn define(
        &mut self,
        metrics: &Metrics,
        series_kind: SeriesKind,
        name: &str,
    ) -> Result<u32, SeriesError> {
        if let Some(id) = self.by_name.get(name) {
            return Ok(*id);
        }
        let series = match metrics.configured.get(name) {
            Some((kind, envoy_id)) if *kind == series_kind => Series {
                envoy_id: *envoy_id,
                kind: series_kind,
                labels: Vec::new(),
            },
            Some(_) => return Err(SeriesError::Unknown),
            None => {
                let (family, values) = parse_series(name).ok_or(SeriesError::Unknown)?;
                if FAMILIES.get(family).map(|f| f.kind) != Some(series_kind) {
                    return Err(SeriesError::Unknown);
                }
                let envoy_id = metrics
                    .families
                    .get(family)
                    .copied()
                    .flatten()
                    .ok_or(SeriesError::Undefined)?;
                Series {
                    envoy_id,
                    kind: series_kind,
                    labels: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
                }
            }
        };
        let id = u32::try_from(self.series.len()).map_err(|_| SeriesError::Refused)?;
        self.series.push(series);
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
