//! tollgate-glue's `Host` over Envoy's dynamic-module ABI: what `src/proxy.rs` is for
//! proxy-wasm. One `NativeHost` is made per hook call (or per plugin load) and finished when
//! the glue returns.
//!
//! How each proxy-wasm notion maps here:
//! - **Contexts**: proxy-wasm host calls act on "the current context". Here the host holds the
//!   stream of the hook being run (`current`); `set_effective_context` switches it to another
//!   live stream of the same plugin (`worker::Slot`'s registry) or to the root (no stream).
//! - **Local replies and resumes are deferred** (`Deferred`): both re-enter the module (a local
//!   reply sent from the request path runs this stream's response hooks before
//!   `send_response` returns; a resume can run them too, through a local reply of a later
//!   filter), and the glue holds `RefCell` borrows across these calls: `filter::on_*` borrows
//!   the request's `Filter` mutably for the whole callback, `send_response` included
//!   (`deny`, `reply`, the cache's answer); `Plugin::wake_ready` borrows a parked `Filter`
//!   across `keys_ready` → `resume_request`. Run then, the re-entered hook would find its
//!   filter busy (the glue logs "request filter busy" and skips it). So they are queued and
//!   run by `finish`, once the glue has returned and nothing is borrowed, in the order the
//!   glue made them. (Envoy's wasm runtime avoids the same re-entry its own way.) Every other
//!   call returns without calling back into the module.
//! - **Shared data**: one process-wide `SharedStore` (`STORE`), exact across workers like
//!   proxy-wasm's shared data, with the same keys.
//! - **Metrics**: `metrics.rs`.
//! - **Timer**: no timer for HTTP filters in this ABI. The root's tick period is kept here and
//!   the tick is run from a request's headers hook once it is due (`worker::Slot::tick_if_due`):
//!   the first request after the period runs it. A request cannot bring the tick forward
//!   (`set_tick_period_ms` from a stream fails): the glue then does not park it.
//! - **Calls**: the rate-limit service's gRPC call is a streamed HTTP callout of the request's
//!   stream (`dispatch_grpc_call`, `grpc.rs`). The key fetch's HTTP calls are not wired yet:
//!   `dispatch_http_call` fails with `Unsupported`, and the glue takes its failure path (the
//!   fetch retried with backoff, JWTs checked with the keys at hand).

use crate::abi::{BodyType, CalloutInitResult, HeaderType, Stream};
use crate::config::Config;
use crate::grpc;
use crate::worker::Slot;
use std::cell::{Cell, RefCell};
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};
use tollgate_core::metrics::SeriesKind;
use tollgate_core::{Clock, CounterStore, SourceAddress, StoreError};
use tollgate_glue::host::{HeaderList, Host, HostError};
use tollgate_glue::shared_store::SharedStore;

/// The counters of every plugin of every configuration in this Envoy process (proxy-wasm
/// shared data is per VM id, and every tollgate filter shares one).
static STORE: LazyLock<SharedStore> = LazyLock::new(SharedStore::new);

/// `%RESPONSE_CODE_DETAILS%` of tollgate's own answers. Envoy gives a module's local reply
/// `dynamic_module` when it names none; the wasm filter's have none at all. Envoy configs
/// whose `local_reply_config` rewrites replies with details must leave these alone
/// (docs/development.md).
pub const REPLY_DETAILS: &str = "tollgate";

/// A call that re-enters the module, run by `finish`.
enum Deferred {
    Reply {
        stream: Stream,
        status: u32,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    },
    Resume(Stream),
}

/// A stream's context: its id (the glue's) and Envoy's stream.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub id: u32,
    pub stream: Stream,
}

pub struct NativeHost<'a> {
    config: &'a Config,
    slot: &'a Slot,
    /// The stream host calls act on; `None` in the root context.
    current: Cell<Option<Context>>,
    /// The stream in effect before the switch to the root context: the glue makes its
    /// rate-limit call "in the root's name" (`Filter::ask_global`), and here a call has to be
    /// a stream's (below).
    last: Cell<Option<Context>>,
    /// The message of the gRPC answer being delivered (`grpc_call_response_body`).
    grpc_message: RefCell<Vec<u8>>,
    /// A stream of this configuration through which metrics are recorded (the ABI records
    /// only through a stream; the series are the configuration's): the hook's own.
    metrics_stream: Option<Stream>,
    deferred: RefCell<Vec<Deferred>>,
}

impl<'a> NativeHost<'a> {
    /// A host acting on `context`'s stream (a hook of that stream).
    pub fn for_stream(config: &'a Config, slot: &'a Slot, context: Context) -> Self {
        Self {
            config,
            slot,
            current: Cell::new(Some(context)),
            last: Cell::new(None),
            grpc_message: RefCell::default(),
            metrics_stream: Some(context.stream),
            deferred: RefCell::default(),
        }
    }

    /// The host to deliver a gRPC answer with (`message`, for `grpc_call_response_body`).
    pub fn with_grpc_message(self, message: Vec<u8>) -> Self {
        *self.grpc_message.borrow_mut() = message;
        self
    }

    /// A host in the root context (the plugin loading its configuration, a tick); `stream`
    /// (the one whose hook runs it) records the metrics.
    pub fn for_root(config: &'a Config, slot: &'a Slot, stream: Stream) -> Self {
        Self {
            config,
            slot,
            current: Cell::new(None),
            last: Cell::new(None),
            grpc_message: RefCell::default(),
            metrics_stream: Some(stream),
            deferred: RefCell::default(),
        }
    }

    /// Runs `work` in the root context, then goes back to the context in effect before.
    pub fn in_root<R>(&self, work: impl FnOnce(&Self) -> R) -> R {
        let before = self.current.replace(None);
        let last = self.last.replace(None);
        let result = work(self);
        self.current.set(before);
        self.last.set(last);
        result
    }

    /// Runs the deferred calls. Only once the glue returned: they may run this module's hooks.
    pub fn finish(self) {
        let deferred = self.deferred.take();
        drop(self);
        for call in deferred {
            match call {
                Deferred::Reply {
                    stream,
                    status,
                    headers,
                    body,
                } => {
                    let headers: Vec<(&str, &[u8])> = headers
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.as_slice()))
                        .collect();
                    stream.send_response(status, &headers, &body, REPLY_DETAILS);
                }
                Deferred::Resume(stream) => stream.continue_decoding(),
            }
        }
    }

    fn stream(&self) -> Result<Stream, HostError> {
        // proxy-wasm answers a stream's call made in the root context with NotFound too.
        self.current
            .get()
            .map(|context| context.stream)
            .ok_or(HostError::NotFound)
    }

    fn header_list(&self, map: HeaderType) -> Result<HeaderList, HostError> {
        let headers = self.stream()?.headers(map).ok_or(HostError::NotFound)?;
        Ok(headers
            .into_iter()
            .map(|(name, value)| (String::from_utf8_lossy(&name).into_owned(), value))
            .collect())
    }

    fn set_header(
        &self,
        map: HeaderType,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), HostError> {
        let stream = self.stream()?;
        if !stream.set_header(map, name, value.map(str::as_bytes)) {
            return Err(HostError::NotFound);
        }
        if map == HeaderType::REQUEST_HEADER {
            // As Envoy's wasm runtime does on every request header change.
            stream.clear_route_cache();
        }
        Ok(())
    }

    fn add_header(&self, map: HeaderType, name: &str, value: &str) -> Result<(), HostError> {
        let stream = self.stream()?;
        if !stream.add_header(map, name, value.as_bytes()) {
            return Err(HostError::NotFound);
        }
        if map == HeaderType::REQUEST_HEADER {
            stream.clear_route_cache();
        }
        Ok(())
    }

    /// The body a callback sees, as proxy-wasm shows it: what Envoy buffered for this filter
    /// followed by the chunk of the running body hook (at the body's end Envoy has moved that
    /// chunk into the buffer already). `None` when there is neither.
    fn body(
        &self,
        buffered: BodyType,
        received: BodyType,
        size: usize,
    ) -> Result<Option<Vec<u8>>, HostError> {
        let stream = self.stream()?;
        let (kept, chunk) = (stream.body(buffered), stream.body(received));
        if kept.is_none() && chunk.is_none() {
            return Ok(None);
        }
        let mut body = kept.unwrap_or_default();
        body.extend(chunk.unwrap_or_default());
        body.truncate(size);
        Ok(Some(body))
    }

    /// Replaces the first `size` bytes of that body with `new`: both buffers are emptied and
    /// the result goes where Envoy picks the body up when the hook returns (the running hook's
    /// chunk, which Envoy adds to the buffer; outside a body hook, the buffer).
    fn set_body(
        &self,
        buffered: BodyType,
        received: BodyType,
        size: usize,
        new: &[u8],
    ) -> Result<(), HostError> {
        let stream = self.stream()?;
        let mut whole = stream.body(buffered).unwrap_or_default();
        whole.extend(stream.body(received).unwrap_or_default());
        let mut replaced = new.to_vec();
        replaced.extend_from_slice(whole.get(size..).unwrap_or_default());
        stream.drain_body(buffered, usize::MAX);
        let in_hook = stream.drain_body(received, usize::MAX);
        let target = if in_hook { received } else { buffered };
        if stream.append_body(target, &replaced) {
            Ok(())
        } else {
            Err(HostError::NotFound)
        }
    }

    fn record(&self, id: u32, delta: i64) -> Result<(), HostError> {
        let stream = self.metrics_stream.ok_or(HostError::NotFound)?;
        let series = self
            .slot
            .series
            .try_borrow()
            .map_err(|_| HostError::InternalFailure)?;
        series
            .record(&stream, id, delta)
            .map_err(|_| HostError::NotFound)
    }
}

impl Clock for NativeHost<'_> {
    fn now_ms(&self) -> u64 {
        // Without a clock every token counts as expired: fail closed, never open.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(u64::MAX, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            })
    }
}

impl SourceAddress for NativeHost<'_> {
    fn source_address(&self) -> Option<Vec<u8>> {
        // `source.address` as proxy-wasm reads it: the downstream address as Envoy computed it
        // (the peer, or the client from X-Forwarded-For when trusted), `ip:port`.
        let stream = self.current.get()?.stream;
        let address = stream.attribute_string(crate::abi::AttributeId::SOURCE_ADDRESS);
        if address.is_none() {
            log::debug!("tollgate: cannot read source.address");
        }
        address
    }
}

impl CounterStore for NativeHost<'_> {
    fn load(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        STORE.load(key)
    }

    fn store(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        STORE.store(key, value, cas)
    }
}

impl Host for NativeHost<'_> {
    fn plugin_configuration(&self) -> Result<Option<Vec<u8>>, HostError> {
        Ok(Some(self.config.raw().to_vec()))
    }

    fn set_tick_period_ms(&self, ms: u64) -> Result<(), HostError> {
        if self.current.get().is_some() {
            // A request asking for the tick now (to start a key fetch it would wait for):
            // there is no timer to bring forward, so it must not wait.
            return Err(HostError::Unsupported);
        }
        self.slot.set_tick_period(ms, self.now_ms());
        Ok(())
    }

    fn set_effective_context(&self, context_id: u32) -> Result<(), HostError> {
        if context_id == self.slot.root_id {
            if let Some(context) = self.current.take() {
                self.last.set(Some(context));
            }
            return Ok(());
        }
        let stream = self.slot.stream(context_id).ok_or(HostError::NotFound)?;
        self.current.set(Some(Context {
            id: context_id,
            stream,
        }));
        Ok(())
    }

    fn define_metric(&self, kind: SeriesKind, name: &str) -> Result<u32, HostError> {
        self.slot
            .series
            .try_borrow_mut()
            .map_err(|_| HostError::InternalFailure)?
            .define(self.config.metrics(), kind, name)
            .map_err(|_| HostError::BadArgument)
    }

    fn increment_metric(&self, id: u32) -> Result<(), HostError> {
        self.record(id, 1)
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError> {
        self.record(id, i64::try_from(value).unwrap_or(i64::MAX))
    }

    fn add_to_metric(&self, id: u32, delta: i64) -> Result<(), HostError> {
        self.record(id, delta)
    }

    fn request_headers(&self) -> Result<HeaderList, HostError> {
        self.header_list(HeaderType::REQUEST_HEADER)
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        self.set_header(HeaderType::REQUEST_HEADER, name, value)
    }

    fn add_request_header(&self, name: &str, value: &str) -> Result<(), HostError> {
        self.add_header(HeaderType::REQUEST_HEADER, name, value)
    }

    fn response_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self.stream()?.header(HeaderType::RESPONSE_HEADER, name))
    }

    fn response_headers(&self) -> Result<HeaderList, HostError> {
        self.header_list(HeaderType::RESPONSE_HEADER)
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        self.set_header(HeaderType::RESPONSE_HEADER, name, value)
    }

    fn add_response_header(&self, name: &str, value: &str) -> Result<(), HostError> {
        self.add_header(HeaderType::RESPONSE_HEADER, name, value)
    }

    fn request_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        self.body(
            BodyType::BUFFERED_REQUEST_BODY,
            BodyType::RECEIVED_REQUEST_BODY,
            size,
        )
    }

    fn set_request_body(&self, size: usize, body: &[u8]) -> Result<(), HostError> {
        self.set_body(
            BodyType::BUFFERED_REQUEST_BODY,
            BodyType::RECEIVED_REQUEST_BODY,
            size,
            body,
        )
    }

    fn response_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        self.body(
            BodyType::BUFFERED_RESPONSE_BODY,
            BodyType::RECEIVED_RESPONSE_BODY,
            size,
        )
    }

    fn set_response_body(&self, size: usize, body: &[u8]) -> Result<(), HostError> {
        self.set_body(
            BodyType::BUFFERED_RESPONSE_BODY,
            BodyType::RECEIVED_RESPONSE_BODY,
            size,
            body,
        )
    }

    fn send_response(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        let stream = self.stream()?;
        let mut deferred = self
            .deferred
            .try_borrow_mut()
            .map_err(|_| HostError::InternalFailure)?;
        deferred.push(Deferred::Reply {
            stream,
            status,
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_string(), value.as_bytes().to_vec()))
                .collect(),
            body: body.to_vec(),
        });
        Ok(())
    }

    fn resume_request(&self) -> Result<(), HostError> {
        let stream = self.stream()?;
        self.deferred
            .try_borrow_mut()
            .map_err(|_| HostError::InternalFailure)?
            .push(Deferred::Resume(stream));
        Ok(())
    }

    /// No gRPC client in this ABI: the call is a streamed HTTP callout of the request's own
    /// stream (`grpc.rs`), whose answer comes to that stream's hooks (`Filter::on_http_stream_*`,
    /// delivered to the glue by `Filter::deliver_calls`). Envoy resets it with its stream, as
    /// it does a wasm request context's calls. Made from the root context (the glue switches
    /// there to make it), it is the call of the stream in effect before.
    fn dispatch_grpc_call(
        &self,
        cluster: &str,
        service: &str,
        method: &str,
        message: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, HostError> {
        let context = self
            .current
            .get()
            .or(self.last.get())
            .ok_or(HostError::NotFound)?;
        let headers = grpc::request_headers(cluster, service, method, timeout_ms);
        let headers: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(name, value)| (*name, value.as_slice()))
            .collect();
        match context
            .stream
            .start_http_stream(cluster, &headers, &grpc::frame(message), timeout_ms)
        {
            Ok(callout) => Ok(self.slot.call_started(context.id, context.stream, callout)),
            Err(CalloutInitResult::CLUSTER_NOT_FOUND) => Err(HostError::NotFound),
            Err(_) => Err(HostError::InternalFailure),
        }
    }

    fn grpc_call_response_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        let message = self
            .grpc_message
            .try_borrow()
            .map_err(|_| HostError::InternalFailure)?;
        Ok(Some(message.get(..size).unwrap_or(&message).to_vec()))
    }

    fn dispatch_http_call(
        &self,
        _cluster: &str,
        _headers: &[(&str, &str)],
        _timeout_ms: u64,
    ) -> Result<u32, HostError> {
        Err(HostError::Unsupported)
    }

    fn http_call_response_header(&self, _name: &str) -> Result<Option<Vec<u8>>, HostError> {
        Err(HostError::Unsupported)
    }

    fn http_call_response_body(&self, _size: usize) -> Result<Option<Vec<u8>>, HostError> {
        Err(HostError::Unsupported)
    }
}
