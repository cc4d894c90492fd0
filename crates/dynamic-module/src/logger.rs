//! The `log` crate's records (the glue's and the core's `log::info!`, ...) go to Envoy's log
//! through `envoy_dynamic_module_callback_log` (the `dynamic_modules` component: see its lines
//! with `--component-log-level dynamic_modules:info`). Envoy decides which levels are shown;
//! a record is formatted only when its level is.

use crate::abi::{self, LogLevel};

struct EnvoyLog;

static LOGGER: EnvoyLog = EnvoyLog;

fn level(level: log::Level) -> LogLevel {
    match level {
        log::Level::Error => LogLevel::ERROR,
        log::Level::Warn => LogLevel::WARN,
        log::Level::Info => LogLevel::INFO,
        log::Level::Debug => LogLevel::DEBUG,
        log::Level::Trace => LogLevel::TRACE,
    }
}

impl log::Log for EnvoyLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        abi::log_enabled(level(metadata.level()))
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = level(record.level());
        if abi::log_enabled(level) {
            abi::log(level, &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// Sends the `log` crate's records to Envoy (once, from `program_init`).
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}
