//! What the filter needs from Envoy, as one trait: each method is one proxy-wasm host call.
//! `proxy.rs` implements it with the SDK's `hostcalls` (which return `Err` for the statuses a
//! call documents, and themselves panic on any other); the native module
//! (crates/dynamic-module, `host.rs`) with Envoy's dynamic-module callbacks; the tests with a
//! recording fake that can fail any call, including ones Envoy never fails.

use std::fmt;
use tollgate_core::metrics::SeriesKind;
use tollgate_core::HeaderEdit;
use tollgate_core::{Clock, CounterStore, SourceAddress};

/// Why a host call failed: the proxy-wasm status the host answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Natively (tests) only the fake host makes these, and it needs but one.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub enum HostError {
    /// The host does not have what was asked for (an unknown cluster, say).
    NotFound,
    /// The host refused an argument.
    BadArgument,
    /// The host has nothing to return.
    Empty,
    /// A shared-data write lost a compare-and-swap race.
    CasMismatch,
    /// The host could not (de)serialize or parse what it was given.
    ParseFailure,
    /// The host failed internally.
    InternalFailure,
    /// This host cannot make the call at all (the native module has no gRPC client, say).
    Unsupported,
    /// Any other status.
    Other,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::BadArgument => "bad argument",
            Self::Empty => "empty",
            Self::CasMismatch => "CAS mismatch",
            Self::ParseFailure => "parse failure",
            Self::InternalFailure => "internal failure",
            Self::Unsupported => "not supported by this host",
            Self::Other => "unexpected status",
        })
    }
}

/// Request headers as the core reads them: lower-case names, raw values.
pub type HeaderList = Vec<(String, Vec<u8>)>;

/// The host calls of the filter. The clock, the counter store (proxy-wasm shared data) and the
/// caller's address (the `source.address` property) are the core's own traits.
pub trait Host: Clock + CounterStore + SourceAddress {
    /// The plugin configuration (root context).
    fn plugin_configuration(&self) -> Result<Option<Vec<u8>>, HostError>;
    /// Calls the root context's `on_tick` every `ms` milliseconds, the first time `ms` from
    /// now. From a request's context it sets its root context's timer (Envoy does so), which is
    /// how a request brings a key fetch forward.
    fn set_tick_period_ms(&self, ms: u64) -> Result<(), HostError>;
    /// Makes the host calls that follow act on the context `context_id` (a paused request,
    /// from the root context that learnt it may go on). Fails for a context that is gone.
    fn set_effective_context(&self, context_id: u32) -> Result<(), HostError>;

    fn define_metric(&self, kind: SeriesKind, name: &str) -> Result<u32, HostError>;
    fn increment_metric(&self, id: u32) -> Result<(), HostError>;
    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError>;
    /// Moves a gauge up or down by `delta`.
    fn add_to_metric(&self, id: u32, delta: i64) -> Result<(), HostError>;

    fn request_headers(&self) -> Result<HeaderList, HostError>;
    /// Sets (replaces) a request header; `None` removes it.
    fn set_request_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError>;
    fn add_request_header(&self, name: &str, value: &str) -> Result<(), HostError>;
    fn response_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError>;
    /// All response headers, as the upstream sent them (pseudo-headers included).
    fn response_headers(&self) -> Result<HeaderList, HostError>;
    /// Sets (replaces) a response header; `None` removes it.
    fn set_response_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError>;
    fn add_response_header(&self, name: &str, value: &str) -> Result<(), HostError>;
    /// The first `size` bytes of the request body this callback sees (the whole body buffered
    /// so far, when the filter buffers it).
    fn request_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError>;
    /// Replaces the first `size` bytes of that body with `body`.
    fn set_request_body(&self, size: usize, body: &[u8]) -> Result<(), HostError>;
    /// The first `size` bytes of the response body this callback sees.
    fn response_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError>;
    /// Replaces the first `size` bytes of that body with `body`.
    fn set_response_body(&self, size: usize, body: &[u8]) -> Result<(), HostError>;
    /// Answers the request locally; the upstream never sees it.
    fn send_response(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError>;

    /// Lets a request held in `on_request_headers` go on (after the rate-limit service, or a
    /// key fetch).
    fn resume_request(&self) -> Result<(), HostError>;

    /// A unary gRPC call through `cluster` (a request's context); returns the token its answer
    /// will carry to `on_grpc_call_response` (of the context whose callback made the call: the
    /// root's, for a request decided from the root context).
    fn dispatch_grpc_call(
        &self,
        cluster: &str,
        service: &str,
        method: &str,
        message: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, HostError>;
    /// The message of the gRPC answer being delivered, `size` bytes.
    fn grpc_call_response_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError>;

    /// An HTTP call through `cluster` (root context); returns the token its answer will carry.
    fn dispatch_http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, HostError>;
    /// A header of the answer being delivered to `on_http_call_response`.
    fn http_call_response_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError>;
    /// The body of that answer, `size` bytes.
    fn http_call_response_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError>;
}

/// Defines a metric, logging a refusal (its requests then go uncounted).
pub fn define_metric_logged(host: &impl Host, kind: SeriesKind, name: &str) -> Option<u32> {
    host.define_metric(kind, name)
        .map_err(|err| log::error!("tollgate: cannot define metric {name} ({err})"))
        .ok()
}

/// Which side's headers an edit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// Applies one header edit to the request or the response, logging a refusal.
pub fn apply_edit(host: &impl Host, side: Side, edit: &HeaderEdit) {
    let result = match (side, edit) {
        (Side::Request, HeaderEdit::Set(name, value)) => host.set_request_header(name, Some(value)),
        (Side::Request, HeaderEdit::Append(name, value)) => host.add_request_header(name, value),
        (Side::Request, HeaderEdit::Remove(name)) => host.set_request_header(name, None),
        (Side::Response, HeaderEdit::Set(name, value)) => {
            host.set_response_header(name, Some(value))
        }
        (Side::Response, HeaderEdit::Append(name, value)) => host.add_response_header(name, value),
        (Side::Response, HeaderEdit::Remove(name)) => host.set_response_header(name, None),
    };
    if let Err(err) = result {
        let side = match side {
            Side::Request => "request",
            Side::Response => "response",
        };
        log::error!(
            "tollgate: cannot edit {side} header {} ({err})",
            edit.name()
        );
    }
}
