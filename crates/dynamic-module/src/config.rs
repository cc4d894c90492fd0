//! One filter configuration as Envoy creates it (`on_http_filter_config_new`): checked once,
//! its metrics defined, shared by every worker. Streams (`filter.rs`), their host (`host.rs`)
//! and each worker's plugin (`worker.rs`) all read it; it depends on none of them.

use crate::abi::{self, ConfigHandle, LogLevel};
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicU64, Ordering};
use tollgate_core::Plan;

/// Test-only switch: a request to this path panics (module documentation).
pub const TEST_PANIC_PATH_ENV: &str = "TOLLGATE_TEST_PANIC_PATH";
/// Test-only switch: responses echo ABI attributes (module documentation).
pub const TEST_ECHO_ATTRIBUTES_ENV: &str = "TOLLGATE_TEST_ECHO_ATTRIBUTES";

/// Configuration ids: each configuration Envoy creates gets the next (`worker.rs` keys its
/// plugins by them).
static CONFIG_IDS: AtomicU64 = AtomicU64::new(0);

/// One filter configuration (`filter_config` of the Envoy filter), shared by all workers.
#[derive(Debug)]
pub struct Config {
    id: u64,
    /// The `filter_name` Envoy passed.
    name: String,
    /// The configuration bytes as Envoy passed them (a `StringValue`'s string): tollgate's
    /// JSON configuration, as the wasm filter's `configuration`.
    raw: Vec<u8>,
    metrics: Metrics,
    pub(crate) test_panic_path: Option<String>,
    pub(crate) test_echo_attributes: bool,
}

impl Config {
    /// Checks the configuration (`None` makes Envoy refuse it, as the wasm filter's
    /// `on_configure` returning false does) and defines its metrics on `handle`.
    pub fn new(name: &[u8], raw: &[u8], handle: &ConfigHandle) -> Option<Self> {
        let plan = match Plan::from_json(raw) {
            Ok(plan) => plan,
            Err(err) => {
                log::error!("tollgate: invalid configuration: {err}");
                return None;
            }
        };
        let test_panic_path = std::env::var(TEST_PANIC_PATH_ENV)
            .ok()
            .filter(|p| !p.is_empty());
        // Only "1" switches it on: `=0` or an empty value must not.
        let test_echo_attributes = std::env::var(TEST_ECHO_ATTRIBUTES_ENV).is_ok_and(|v| v == "1");
        let metrics = Metrics::define(handle, &plan);
        let config = Self {
            id: CONFIG_IDS.fetch_add(1, Ordering::Relaxed),
            name: String::from_utf8_lossy(name).into_owned(),
            raw: raw.to_vec(),
            metrics,
            test_panic_path,
            test_echo_attributes,
        };
        if let Some(path) = &config.test_panic_path {
            abi::log(
                LogLevel::WARN,
                &format!(
                    "tollgate: test-only {TEST_PANIC_PATH_ENV} is set: requests to {path} panic"
                ),
            );
        }
        if config.test_echo_attributes {
            abi::log(
                LogLevel::WARN,
                &format!("tollgate: test-only {TEST_ECHO_ATTRIBUTES_ENV} is set"),
            );
        }
        log::info!(
            "tollgate: native module configured (filter {:?}: {} operations, {} consumers, {} products)",
            config.name,
            plan.operation_count(),
            plan.consumer_count(),
            plan.product_count()
        );
        Some(config)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
