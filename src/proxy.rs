//! The proxy-wasm side (wasm32 only): the SDK's contexts hand every callback to `Plugin` and
//! `Filter`, and `ProxyWasm` performs their host calls with the SDK's `Result`-returning
//! functions.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};
use tollgate_core::metrics::SeriesKind;
use tollgate_core::{Clock, CounterStore, SourceAddress, StoreError};
use tollgate_glue::filter::{self, Filter, Next};
use tollgate_glue::host::{HeaderList, Host, HostError};
use tollgate_glue::plugin::Plugin;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    // A panic aborts the VM and Envoy then fails every request on this worker: make sure the
    // reason reaches the log.
    std::panic::set_hook(Box::new(|info| {
        log::error!("tollgate panicked: {info}");
    }));
    proxy_wasm::set_root_context(|root_id| -> Box<dyn RootContext> {
        Box::new(TollgateRoot { plugin: Plugin::new(root_id) })
    });
}}

/// The host: proxy-wasm host calls act on the context of the callback being run.
struct ProxyWasm;

fn host_error(status: Status) -> HostError {
    match status {
        Status::NotFound => HostError::NotFound,
        Status::BadArgument => HostError::BadArgument,
        Status::SerializationFailure | Status::ParseFailure => HostError::ParseFailure,
        Status::Empty => HostError::Empty,
        Status::CasMismatch => HostError::CasMismatch,
        Status::InternalFailure => HostError::InternalFailure,
        _ => HostError::Other,
    }
}

impl Clock for ProxyWasm {
    fn now_ms(&self) -> u64 {
        // Without a clock every token counts as expired: fail closed, never open.
        hostcalls::get_current_time().map_or(u64::MAX, |now| {
            now.duration_since(UNIX_EPOCH).map_or(u64::MAX, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            })
        })
    }
}

impl SourceAddress for ProxyWasm {
    fn source_address(&self) -> Option<Vec<u8>> {
        // The downstream address as Envoy computed it (the peer, or the client taken from
        // X-Forwarded-For when the connection manager trusts that many hops).
        hostcalls::get_property(vec!["source", "address"])
            .map_err(|status| log::debug!("tollgate: cannot read source.address ({status:?})"))
            .ok()
            .flatten()
    }
}

impl CounterStore for ProxyWasm {
    fn load(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        hostcalls::get_shared_data(key).map_err(|_| StoreError::Unavailable)
    }

    fn store(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(StoreError::CasMismatch),
            Err(_) => Err(StoreError::Unavailable),
        }
    }
}

impl Host for ProxyWasm {
    fn plugin_configuration(&self) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).map_err(host_error)
    }

    fn set_tick_period_ms(&self, ms: u64) -> Result<(), HostError> {
        hostcalls::set_tick_period(Duration::from_millis(ms)).map_err(host_error)
    }

    fn set_effective_context(&self, context_id: u32) -> Result<(), HostError> {
        hostcalls::set_effective_context(context_id).map_err(host_error)
    }

    fn define_metric(&self, kind: SeriesKind, name: &str) -> Result<u32, HostError> {
        let kind = match kind {
            SeriesKind::Counter => MetricType::Counter,
            SeriesKind::Histogram => MetricType::Histogram,
            SeriesKind::Gauge => MetricType::Gauge,
        };
        hostcalls::define_metric(kind, name).map_err(host_error)
    }

    fn increment_metric(&self, id: u32) -> Result<(), HostError> {
        hostcalls::increment_metric(id, 1).map_err(host_error)
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError> {
        hostcalls::record_metric(id, value).map_err(host_error)
    }

    fn add_to_metric(&self, id: u32, delta: i64) -> Result<(), HostError> {
        hostcalls::increment_metric(id, delta).map_err(host_error)
    }

    fn request_headers(&self) -> Result<HeaderList, HostError> {
        // The bytes variant: a header value that is not UTF-8 must reach the core as is.
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders).map_err(host_error)
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value).map_err(host_error)
    }

    fn add_request_header(&self, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::add_map_value(MapType::HttpRequestHeaders, name, value).map_err(host_error)
    }

    fn response_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name).map_err(host_error)
    }

    fn response_headers(&self) -> Result<HeaderList, HostError> {
        hostcalls::get_map_bytes(MapType::HttpResponseHeaders).map_err(host_error)
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpResponseHeaders, name, value).map_err(host_error)
    }

    fn add_response_header(&self, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::add_map_value(MapType::HttpResponseHeaders, name, value).map_err(host_error)
    }

    fn request_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size).map_err(host_error)
    }

    fn set_request_body(&self, size: usize, body: &[u8]) -> Result<(), HostError> {
        hostcalls::set_buffer(BufferType::HttpRequestBody, 0, size, body).map_err(host_error)
    }

    fn response_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size).map_err(host_error)
    }

    fn set_response_body(&self, size: usize, body: &[u8]) -> Result<(), HostError> {
        hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, body).map_err(host_error)
    }

    fn send_response(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        hostcalls::send_http_response(status, headers.to_vec(), Some(body)).map_err(host_error)
    }

    fn resume_request(&self) -> Result<(), HostError> {
        hostcalls::resume_http_request().map_err(host_error)
    }

    fn dispatch_grpc_call(
        &self,
        cluster: &str,
        service: &str,
        method: &str,
        message: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, HostError> {
        hostcalls::dispatch_grpc_call(
            cluster,
            service,
            method,
            Vec::new(),
            Some(message),
            Duration::from_millis(timeout_ms),
        )
        .map_err(host_error)
    }

    fn grpc_call_response_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, size).map_err(host_error)
    }

    fn dispatch_http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, HostError> {
        hostcalls::dispatch_http_call(
            cluster,
            headers.to_vec(),
            None,
            Vec::new(),
            Duration::from_millis(timeout_ms),
        )
        .map_err(host_error)
    }

    fn http_call_response_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name).map_err(host_error)
    }

    fn http_call_response_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size).map_err(host_error)
    }
}

struct TollgateRoot {
    plugin: Plugin,
}

impl Context for TollgateRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        self.plugin
            .on_http_call_response(&ProxyWasm, token_id, body_size);
    }

    // The SDK hands a call's answer to the context whose callback made it: a request decided
    // again from here (after a key fetch) has its rate-limit answer come to the root.
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        self.plugin
            .on_grpc_call_response(&ProxyWasm, token_id, status_code, response_size);
    }
}

impl RootContext for TollgateRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        self.plugin.configure(&ProxyWasm)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let filter = self.plugin.new_filter(context_id)?;
        Some(Box::new(TollgateHttp { filter }))
    }

    fn on_tick(&mut self) {
        self.plugin.tick(&ProxyWasm);
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The plugin reaches a paused request's filter too (to decide it again after a key fetch).
struct TollgateHttp {
    filter: Rc<RefCell<Filter>>,
}

impl Context for TollgateHttp {
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        filter::on_grpc_call_response(
            &self.filter,
            &ProxyWasm,
            token_id,
            status_code,
            response_size,
        );
    }
}

impl HttpContext for TollgateHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(filter::on_request_headers(
            &self.filter,
            &ProxyWasm,
            end_of_stream,
        ))
    }

    // Envoy calls the body callbacks only once the headers went on (a paused request's body
    // waits in Envoy's buffer, with flow control, and comes here after the resume). `Pause`
    // here buffers: the next call then gives the size of all that is buffered.
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(filter::on_request_body(
            &self.filter,
            &ProxyWasm,
            body_size,
            end_of_stream,
        ))
    }

    // A body that ends with trailers (HTTP/2, gRPC) is complete here, not at its last chunk.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        action(filter::on_request_trailers(&self.filter, &ProxyWasm))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(filter::on_response_headers(
            &self.filter,
            &ProxyWasm,
            end_of_stream,
        ))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(filter::on_response_body(
            &self.filter,
            &ProxyWasm,
            body_size,
            end_of_stream,
        ))
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        action(filter::on_response_trailers(&self.filter, &ProxyWasm))
    }
}

fn action(next: Next) -> Action {
    match next {
        Next::Continue => Action::Continue,
        Next::Stop => Action::Pause,
    }
}
