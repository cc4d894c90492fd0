//! The filter itself, in safe Rust: one `Config` per filter configuration Envoy loads (shared
//! by every worker), one `Filter` per HTTP stream. Each stream's hooks go to tollgate-glue's
//! `Filter` through a `NativeHost` (`host.rs`), as `src/proxy.rs` does for proxy-wasm, and
//! the stream's plugin is its worker's (`worker.rs`); so do the answers to its gRPC calls.
//!
//! Two switches exist for the tests only, read from the environment when Envoy creates the
//! configuration (never set them in a deployment):
//! - `TOLLGATE_TEST_PANIC_PATH=/boom`: a request whose path (without query) is `/boom` panics
//!   in the request-headers hook, to prove that a panic is caught and answered with a 503;
//! - `TOLLGATE_TEST_ECHO_ATTRIBUTES=1`: every response carries what the module read through the
//!   ABI (source address and port, request id, worker index) in `x-tollgate-test-*` headers, to
//!   prove the attribute ids and callbacks are declared right against a live Envoy.

use crate::abi::{
    AttributeId, BodyStatus, BodyType, CalloutResult, HeaderType, HeadersStatus, Stream,
    TrailersStatus,
};
use crate::config::{Config, TEST_PANIC_PATH_ENV};
use crate::host::{Context, NativeHost};
use crate::worker::{self, Slot};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use tollgate_glue::filter::{self as glue, Next};

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

/// The policy side of a stream: its worker's plugin, the glue's filter and its context id.
struct Policy {
    slot: Rc<Slot>,
    glue: Rc<RefCell<glue::Filter>>,
    context_id: u32,
    stream: Stream,
}

impl Policy {
    fn context(&self) -> Context {
        Context {
            id: self.context_id,
            stream: self.stream,
        }
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        self.slot.unregister(self.context_id);
    }
}

/// One HTTP stream. Envoy calls its hooks on one worker thread, one at a time, but may call
/// one hook from inside another (a local reply sent from the request path runs the response
/// hooks before `send_response` returns), so hooks get `&Filter`, state lives in cells, and
/// nothing is borrowed across a call into Envoy that can come back (`host.rs` defers them).
pub struct Filter {
    config: Arc<Config>,
    state: Cell<StreamState>,
    policy: Option<Policy>,
}

impl Filter {
    /// The filter of a new stream (`stream`): its worker's plugin for `config` (made on the
    /// configuration's first stream there), and a glue filter from it. Without one the stream
    /// is answered 503 (`guard`), never let through.
    pub fn new(config: Arc<Config>, stream: Stream) -> Self {
        let policy = worker::slot(&config, |slot| load_configuration(&config, slot, stream))
            .and_then(|slot| {
                let context_id = slot.register(stream);
                let glue = slot
                    .plugin
                    .try_borrow()
                    .ok()
                    .and_then(|plugin| plugin.new_filter(context_id));
                match glue {
                    Some(glue) => Some(Policy {
                        slot,
                        glue,
                        context_id,
                        stream,
                    }),
                    None => {
                        slot.unregister(context_id);
                        None
                    }
                }
            });
        let state = if policy.is_some() {
            StreamState::Running
        } else {
            StreamState::Broken
        };
        Self {
            config,
            state: Cell::new(state),
            policy,
        }
    }

    /// A filter for a stream whose filter could not be made: it answers the request 503.
    pub fn broken(config: Arc<Config>) -> Self {
        Self {
            config,
            state: Cell::new(StreamState::Broken),
            policy: None,
        }
    }

    pub fn state(&self) -> StreamState {
        self.state.get()
    }

    pub fn mark_answered(&self) {
        self.state.set(StreamState::Answered);
    }

    /// Runs one glue callback with a host acting on `stream`, then the host's deferred calls
    /// (local replies, resumes), once nothing of the glue is borrowed any more.
    fn with_glue(
        &self,
        stream: &Stream,
        tick: bool,
        callback: impl FnOnce(&RefCell<glue::Filter>, &NativeHost<'_>) -> Next,
    ) -> Next {
        let Some(policy) = &self.policy else {
            return Next::Continue;
        };
        let host = NativeHost::for_stream(&self.config, &policy.slot, policy.context());
        debug_assert!(
            policy.stream == *stream,
            "a stream's hooks come with its own pointer"
        );
        if tick {
            let now_ms = tollgate_core::Clock::now_ms(&host);
            policy
                .slot
                .tick_if_due(now_ms, |plugin| host.in_root(|host| plugin.tick(host)));
        }
        let next = callback(&policy.glue, &host);
        host.finish();
        next
    }

    pub fn on_request_headers(&self, stream: &Stream, end_of_stream: bool) -> HeadersStatus {
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
        headers_status(self.with_glue(stream, true, |filter, host| {
            glue::on_request_headers(filter, host, end_of_stream)
        }))
    }

    /// The body as proxy-wasm shows it: after a callback that held the body, the size of all of
    /// it so far (Envoy's buffer for this filter and this chunk), else the chunk's.
    pub fn on_request_body(&self, stream: &Stream, end_of_stream: bool) -> BodyStatus {
        let size = stream.body_size(BodyType::BUFFERED_REQUEST_BODY)
            + stream.body_size(BodyType::RECEIVED_REQUEST_BODY);
        body_status(self.with_glue(stream, false, |filter, host| {
            glue::on_request_body(filter, host, size, end_of_stream)
        }))
    }

    pub fn on_request_trailers(&self, stream: &Stream) -> TrailersStatus {
        trailers_status(self.with_glue(stream, false, |filter, host| {
            glue::on_request_trailers(filter, host)
        }))
    }

    pub fn on_response_headers(&self, stream: &Stream, end_of_stream: bool) -> HeadersStatus {
        // Before the glue: a local reply it sends can end the stream and have Envoy destroy
        // this filter before `with_glue` returns, so nothing of `self` is touched after it.
        if self.config.test_echo_attributes {
            self.echo_attributes(stream);
        }
        headers_status(self.with_glue(stream, false, |filter, host| {
            glue::on_response_headers(filter, host, end_of_stream)
        }))
    }

    pub fn on_response_body(&self, stream: &Stream, end_of_stream: bool) -> BodyStatus {
        let size = stream.body_size(BodyType::BUFFERED_RESPONSE_BODY)
            + stream.body_size(BodyType::RECEIVED_RESPONSE_BODY);
        body_status(self.with_glue(stream, false, |filter, host| {
            glue::on_response_body(filter, host, size, end_of_stream)
        }))
    }

    pub fn on_response_trailers(&self, stream: &Stream) -> TrailersStatus {
        trailers_status(self.with_glue(stream, false, |filter, host| {
            glue::on_response_trailers(filter, host)
        }))
    }

    pub fn on_stream_complete(&self, _stream: &Stream) {}

    pub fn on_http_callout_done(&self, _stream: &Stream, _callout_id: u64, _result: CalloutResult) {
    }

    /// The answer to one of this stream's gRPC calls (`host.rs`, `grpc.rs`), as it comes.
    pub fn on_http_stream_headers(&self, callout: u64, headers: Vec<(Vec<u8>, Vec<u8>)>) {
        if let Some(policy) = &self.policy {
            policy
                .slot
                .answer(policy.context_id, callout, |answer| answer.headers(headers));
        }
    }

    pub fn on_http_stream_data(&self, callout: u64, chunk: &[u8]) {
        if let Some(policy) = &self.policy {
            policy
                .slot
                .answer(policy.context_id, callout, |answer| answer.data(chunk));
        }
    }

    pub fn on_http_stream_trailers(&self, callout: u64, trailers: Vec<(Vec<u8>, Vec<u8>)>) {
        if let Some(policy) = &self.policy {
            policy.slot.answer(policy.context_id, callout, |answer| {
                answer.trailers(trailers)
            });
        }
    }

    /// A call ended, answered (`reset` false) or not (a reset, its timeout included): its
    /// answer goes to the glue now, or, when it ended inside the glue's own call (a call that
    /// fails at once), from `on_scheduled`, once the running hook has returned.
    pub fn on_http_stream_end(&self, callout: u64, reset: bool) {
        let Some(policy) = &self.policy else {
            return;
        };
        if !policy.slot.call_ended(policy.context_id, callout, reset) {
            // Its start has not returned yet: `Slot::call_started` schedules it.
            return;
        }
        if policy.glue.try_borrow_mut().is_err() {
            policy.slot.schedule(policy.context_id, policy.stream);
            return;
        }
        self.deliver_calls();
    }

    pub fn on_scheduled(&self, _stream: &Stream, _event_id: u64) {
        self.deliver_calls();
    }

    /// Hands this stream's ended calls to the glue (which settles the request and lets it go
    /// on, or answers it).
    fn deliver_calls(&self) {
        let Some(policy) = &self.policy else {
            return;
        };
        for ended in policy.slot.take_ended(policy.context_id) {
            let size = ended.message.len();
            let host = NativeHost::for_stream(&self.config, &policy.slot, policy.context())
                .with_grpc_message(ended.message);
            glue::on_grpc_call_response(&policy.glue, &host, ended.token, ended.status, size);
            host.finish();
        }
    }

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

/// proxy-wasm's `Pause` on headers is Envoy's `StopIteration` (the body still comes to the
/// filter, which holds it); the same here.
fn headers_status(next: Next) -> HeadersStatus {
    match next {
        Next::Continue => HeadersStatus::CONTINUE,
        Next::Stop => HeadersStatus::STOP_ITERATION,
    }
}

/// proxy-wasm's `Pause` on a body chunk is `StopIterationAndBuffer`: Envoy keeps the chunk, and
/// the next body hook sees it with the rest.
fn body_status(next: Next) -> BodyStatus {
    match next {
        Next::Continue => BodyStatus::CONTINUE,
        Next::Stop => BodyStatus::STOP_ITERATION_AND_BUFFER,
    }
}

fn trailers_status(next: Next) -> TrailersStatus {
    match next {
        Next::Continue => TrailersStatus::CONTINUE,
        Next::Stop => TrailersStatus::STOP_ITERATION,
    }
}

/// Loads `config` into a worker's new slot (`stream` records the metrics it defines).
fn load_configuration(config: &Arc<Config>, slot: &Rc<Slot>, stream: Stream) {
    let host = NativeHost::for_root(config, slot, stream);
    let loaded = match slot.plugin.try_borrow_mut() {
        Ok(mut plugin) => plugin.configure(&host),
        Err(_) => false,
    };
    host.finish();
    if !loaded {
        // Checked already in `Config::new`: only a host failure gets here. The slot stays,
        // without a configuration: its streams are answered 503, never let through.
        log::error!(
            "tollgate: the configuration could not be loaded on this worker; its requests are refused"
        );
    }
}
