//! The filter itself, in safe Rust: one `Config` per filter configuration Envoy loads (shared
//! by every worker), one `Filter` per HTTP stream. For now it passes every request and
//! response through untouched; the policy (tollgate-glue's `Host` trait) comes next.
//!
//! Two switches exist for the tests only, read from the environment when Envoy creates the
//! configuration (never set them in a deployment):
//! - `TOLLGATE_TEST_PANIC_PATH=/boom`: a request whose path (without query) is `/boom` panics
//!   in the request-headers hook, to prove that a panic is caught and answered with a 503;
//! - `TOLLGATE_TEST_ECHO_ATTRIBUTES=1`: every response carries what the module read through the
//!   ABI (source address and port, request id, worker index) in `x-tollgate-test-*` headers, to
//!   prove the attribute ids and callbacks are declared right against a live Envoy.

use crate::abi::{
    self, AttributeId, BodyStatus, CalloutResult, HeaderType, HeadersStatus, LogLevel, Stream,
    TrailersStatus,
};
use std::cell::Cell;
use std::sync::Arc;

/// Test-only switch: a request to this path panics (module documentation).
pub const TEST_PANIC_PATH_ENV: &str = "TOLLGATE_TEST_PANIC_PATH";
/// Test-only switch: responses echo ABI attributes (module documentation).
pub const TEST_ECHO_ATTRIBUTES_ENV: &str = "TOLLGATE_TEST_ECHO_ATTRIBUTES";

/// One filter configuration (`filter_config` of the Envoy filter), shared by all workers.
#[derive(Debug)]
pub struct Config {
    /// The `filter_name` Envoy passed.
    name: String,
    /// The configuration bytes as Envoy passed them (a `StringValue`'s string, say); the
    /// policy will parse them.
    raw: Vec<u8>,
    test_panic_path: Option<String>,
    test_echo_attributes: bool,
}

impl Config {
    pub fn new(name: &[u8], raw: &[u8]) -> Self {
        let test_panic_path = std::env::var(TEST_PANIC_PATH_ENV)
            .ok()
            .filter(|p| !p.is_empty());
        let test_echo_attributes = std::env::var_os(TEST_ECHO_ATTRIBUTES_ENV).is_some();
        let config = Self {
            name: String::from_utf8_lossy(name).into_owned(),
            raw: raw.to_vec(),
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
        abi::log(
            LogLevel::INFO,
            &format!(
                "tollgate: native module configured (filter {:?}, {} bytes of configuration); \
                 it passes requests through and does not apply the policy yet",
                config.name,
                config.raw.len()
            ),
        );
        config
    }

    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

/// Where a stream stands after a panic (`guard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// No panic: hooks run.
    Running,
    /// The filter could not be made (a panic while creating it): the next hook that can answer
    /// the request answers it 503.
    Broken,
    /// A panic was answered 503 (or the stream reset, if its response had started): every
    /// later hook passes.
    Answered,
}

/// One HTTP stream. Envoy calls its hooks on one worker thread, one at a time, but may call
/// one hook from inside another (a local reply sent from the request path runs the response
/// hooks before `send_response` returns), so hooks get `&Filter` and state lives in cells,
/// never borrowed across a call into Envoy.
#[derive(Debug)]
pub struct Filter {
    config: Arc<Config>,
    state: Cell<StreamState>,
}

impl Filter {
    pub fn new(config: Arc<Config>) -> Self {
        Self {
            config,
            state: Cell::new(StreamState::Running),
        }
    }

    /// A filter for a stream whose filter could not be made: it answers the request 503.
    pub fn broken(config: Arc<Config>) -> Self {
        Self {
            config,
            state: Cell::new(StreamState::Broken),
        }
    }

    pub fn state(&self) -> StreamState {
        self.state.get()
    }

    pub fn mark_answered(&self) {
        self.state.set(StreamState::Answered);
    }

    pub fn on_request_headers(&self, stream: &Stream, _end_of_stream: bool) -> HeadersStatus {
        if let Some(panic_path) = &self.config.test_panic_path {
            let path = stream
                .header(HeaderType::REQUEST_HEADER, ":path")
                .unwrap_or_default();
            let path = path.split(|b| *b == b'?').next().unwrap_or_default();
            if path == panic_path.as_bytes() {
                #[allow(
                    clippy::panic,
                    reason = "the test-only switch proves panics are caught"
                )]
                {
                    panic!("test-only {TEST_PANIC_PATH_ENV}: request to {panic_path}");
                }
            }
        }
        HeadersStatus::CONTINUE
    }

    pub fn on_request_body(&self, _stream: &Stream, _end_of_stream: bool) -> BodyStatus {
        BodyStatus::CONTINUE
    }

    pub fn on_request_trailers(&self, _stream: &Stream) -> TrailersStatus {
        TrailersStatus::CONTINUE
    }

    pub fn on_response_headers(&self, stream: &Stream, _end_of_stream: bool) -> HeadersStatus {
        if self.config.test_echo_attributes {
            self.echo_attributes(stream);
        }
        HeadersStatus::CONTINUE
    }

    pub fn on_response_body(&self, _stream: &Stream, _end_of_stream: bool) -> BodyStatus {
        BodyStatus::CONTINUE
    }

    pub fn on_response_trailers(&self, _stream: &Stream) -> TrailersStatus {
        TrailersStatus::CONTINUE
    }

    pub fn on_stream_complete(&self, _stream: &Stream) {}

    pub fn on_http_callout_done(&self, _stream: &Stream, _callout_id: u64, _result: CalloutResult) {
    }

    pub fn on_scheduled(&self, _stream: &Stream, _event_id: u64) {}

    /// Test-only: what the ABI reads, as response headers.
    fn echo_attributes(&self, stream: &Stream) {
        let echo = |name: &str, value: Option<Vec<u8>>| {
            if let Some(value) = value {
                stream.set_header(HeaderType::RESPONSE_HEADER, name, Some(&value));
            }
        };
        echo(
            "x-tollgate-test-source-address",
            stream.attribute_string(AttributeId::SOURCE_ADDRESS),
        );
        echo(
            "x-tollgate-test-source-port",
            stream
                .attribute_int(AttributeId::SOURCE_PORT)
                .map(|p| p.to_string().into_bytes()),
        );
        echo(
            "x-tollgate-test-request-id",
            stream.attribute_string(AttributeId::REQUEST_ID),
        );
        echo(
            "x-tollgate-test-worker",
            Some(stream.worker_index().to_string().into_bytes()),
        );
        echo(
            "x-tollgate-test-config-bytes",
            Some(self.config.raw().len().to_string().into_bytes()),
        );
    }
}
