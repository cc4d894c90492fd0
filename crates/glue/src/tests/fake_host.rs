//! A host that records what the glue asks of it: the request and response headers as the
//! upstream and the client would see them, every reply, call and timer, the shared-data
//! entries, and the metrics by name.

use crate::host::{HeaderList, Host, HostError};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use tollgate_core::metrics::SeriesKind;
use tollgate_core::{Clock, CounterStore, SourceAddress, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The context the reply was sent in.
    pub context: u32,
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    pub token: u32,
    pub cluster: String,
    pub path: String,
    pub authority: String,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall {
    pub token: u32,
    /// The context in whose name the call was made.
    pub context: u32,
    pub cluster: String,
    pub service: String,
    pub method: String,
    pub message: Vec<u8>,
    pub timeout_ms: u64,
}

/// An HTTP call's answer: `:status` and body.
pub type CallAnswer = (Option<Vec<u8>>, Option<Vec<u8>>);

#[derive(Debug)]
pub struct Metric {
    pub name: String,
    pub kind: SeriesKind,
    /// A counter's count, or a histogram's number of observations.
    pub value: u64,
    /// A histogram's last observation.
    pub last: u64,
}

#[derive(Default)]
pub struct FakeHost {
    pub configuration: RefCell<Option<Vec<u8>>>,
    pub now_ms: Cell<u64>,
    pub request: RefCell<HeaderList>,
    /// The request body the current callback sees (all of it while the filter buffers).
    pub request_body: RefCell<Vec<u8>>,
    pub response: RefCell<HeaderList>,
    /// The response body the current callback sees.
    pub response_body: RefCell<Vec<u8>>,
    pub replies: RefCell<Vec<Reply>>,
    pub tick_period_ms: Cell<Option<u64>>,
    /// The context host calls act on (0: the root, until a test or the glue sets another).
    pub effective: Cell<u32>,
    /// Contexts that are gone: making one effective fails.
    pub gone: RefCell<Vec<u32>>,
    pub dispatched: RefCell<Vec<Dispatched>>,
    /// The answer `http_call_response_*` reads.
    pub call_answer: RefCell<CallAnswer>,
    pub shared: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    pub metrics: RefCell<Vec<Metric>>,
    pub grpc_calls: RefCell<Vec<GrpcCall>>,
    /// The message `grpc_call_response_body` reads.
    pub grpc_answer: RefCell<Option<Vec<u8>>>,
    /// How many times a held request was resumed.
    pub resumed: Cell<usize>,
    /// The contexts resumed, in order.
    pub resumed_contexts: RefCell<Vec<u32>>,
    /// Host calls made, by name, to count them per request.
    pub calls: RefCell<Vec<&'static str>>,
    /// Calls that fail with `HostError::InternalFailure`.
    pub failing: RefCell<Vec<&'static str>>,
    /// The `source.address` property (`None`: the host has none).
    pub source_address: RefCell<Option<Vec<u8>>>,
    cas: Cell<u32>,
}

impl FakeHost {
    pub fn with_configuration(json: &serde_json::Value) -> Self {
        let host = Self::default();
        *host.configuration.borrow_mut() = Some(json.to_string().into_bytes());
        host.now_ms.set(1_800_000_000_000);
        host
    }

    fn call(&self, name: &'static str) -> Result<(), HostError> {
        self.calls.borrow_mut().push(name);
        if self.failing.borrow().contains(&name) {
            Err(HostError::InternalFailure)
        } else {
            Ok(())
        }
    }

    pub fn fail(&self, name: &'static str) {
        self.failing.borrow_mut().push(name);
    }

    /// A new request: these headers, no response yet, no calls counted.
    pub fn request(&self, headers: &[(&str, &str)]) {
        *self.request.borrow_mut() = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        self.response.borrow_mut().clear();
        self.request_body.borrow_mut().clear();
        self.response_body.borrow_mut().clear();
        self.replies.borrow_mut().clear();
        self.calls.borrow_mut().clear();
    }

    pub fn respond(&self, headers: &[(&str, &str)]) {
        *self.response.borrow_mut() = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
    }

    pub fn request_header(&self, name: &str) -> Option<String> {
        header(&self.request.borrow(), name)
    }

    pub fn response_header_text(&self, name: &str) -> Option<String> {
        header(&self.response.borrow(), name)
    }

    pub fn metric(&self, name: &str) -> Option<u64> {
        self.metrics
            .borrow()
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }
}

fn header(list: &HeaderList, name: &str) -> Option<String> {
    list.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// Envoy's `set_buffer(0, size, body)`: the first `size` bytes give way to `body`.
fn replace_start(buffer: &mut Vec<u8>, size: usize, body: &[u8]) {
    let cut = size.min(buffer.len());
    buffer.splice(..cut, body.iter().copied());
}

fn set(list: &mut HeaderList, name: &str, value: Option<&str>) {
    list.retain(|(n, _)| n != name);
    if let Some(value) = value {
        list.push((name.to_string(), value.as_bytes().to_vec()));
    }
}

impl Clock for FakeHost {
    fn now_ms(&self) -> u64 {
        // Envoy cannot fail it (the SDK panics instead): recorded, never failed.
        self.calls.borrow_mut().push("get_current_time");
        self.now_ms.get()
    }
}

impl SourceAddress for FakeHost {
    fn source_address(&self) -> Option<Vec<u8>> {
        // A failed read is an absent address to the core, as in `proxy.rs`.
        self.call("get_property source.address").ok()?;
        self.source_address.borrow().clone()
    }
}

impl CounterStore for FakeHost {
    fn load(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        self.call("get_shared_data")
            .map_err(|_| StoreError::Unavailable)?;
        Ok(match self.shared.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn store(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.call("set_shared_data")
            .map_err(|_| StoreError::Unavailable)?;
        let mut shared = self.shared.borrow_mut();
        if let (Some((_, current)), Some(cas)) = (shared.get(key), cas) {
            if *current != cas {
                return Err(StoreError::CasMismatch);
            }
        }
        self.cas.set(self.cas.get() + 1);
        shared.insert(key.to_string(), (value.to_vec(), self.cas.get()));
        Ok(())
    }
}

impl Host for FakeHost {
    fn plugin_configuration(&self) -> Result<Option<Vec<u8>>, HostError> {
        self.call("get_plugin_configuration")?;
        Ok(self.configuration.borrow().clone())
    }

    fn set_tick_period_ms(&self, ms: u64) -> Result<(), HostError> {
        self.call("set_tick_period")?;
        self.tick_period_ms.set(Some(ms));
        Ok(())
    }

    fn set_effective_context(&self, context_id: u32) -> Result<(), HostError> {
        self.call("set_effective_context")?;
        if self.gone.borrow().contains(&context_id) {
            return Err(HostError::BadArgument);
        }
        self.effective.set(context_id);
        Ok(())
    }

    fn define_metric(&self, kind: SeriesKind, name: &str) -> Result<u32, HostError> {
        self.call("define_metric")?;
        let mut metrics = self.metrics.borrow_mut();
        metrics.push(Metric {
            name: name.to_string(),
            kind,
            value: 0,
            last: 0,
        });
        u32::try_from(metrics.len() - 1).map_err(|_| HostError::Other)
    }

    fn increment_metric(&self, id: u32) -> Result<(), HostError> {
        self.call("increment_metric")?;
        let mut metrics = self.metrics.borrow_mut();
        let metric = metrics.get_mut(id as usize).ok_or(HostError::NotFound)?;
        metric.value += 1;
        Ok(())
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError> {
        self.call("record_metric")?;
        let mut metrics = self.metrics.borrow_mut();
        let metric = metrics.get_mut(id as usize).ok_or(HostError::NotFound)?;
        metric.value += 1;
        metric.last = value;
        Ok(())
    }

    fn add_to_metric(&self, id: u32, delta: i64) -> Result<(), HostError> {
        self.call("add_to_metric")?;
        let mut metrics = self.metrics.borrow_mut();
        let metric = metrics.get_mut(id as usize).ok_or(HostError::NotFound)?;
        metric.value = metric.value.wrapping_add_signed(delta);
        Ok(())
    }

    fn request_headers(&self) -> Result<HeaderList, HostError> {
        self.call("get_request_headers")?;
        Ok(self.request.borrow().clone())
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        self.call("set_request_header")?;
        set(&mut self.request.borrow_mut(), name, value);
        Ok(())
    }

    fn add_request_header(&self, name: &str, value: &str) -> Result<(), HostError> {
        self.call("add_request_header")?;
        self.request
            .borrow_mut()
            .push((name.to_string(), value.as_bytes().to_vec()));
        Ok(())
    }

    fn response_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.call("get_response_header")?;
        Ok(self
            .response
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone()))
    }

    fn response_headers(&self) -> Result<HeaderList, HostError> {
        self.call("get_response_headers")?;
        Ok(self.response.borrow().clone())
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        self.call("set_response_header")?;
        set(&mut self.response.borrow_mut(), name, value);
        Ok(())
    }

    fn add_response_header(&self, name: &str, value: &str) -> Result<(), HostError> {
        self.call("add_response_header")?;
        self.response
            .borrow_mut()
            .push((name.to_string(), value.as_bytes().to_vec()));
        Ok(())
    }

    fn request_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        self.call("get_request_body")?;
        Ok(Some(
            self.request_body
                .borrow()
                .iter()
                .copied()
                .take(size)
                .collect(),
        ))
    }

    fn set_request_body(&self, size: usize, body: &[u8]) -> Result<(), HostError> {
        self.call("set_request_body")?;
        replace_start(&mut self.request_body.borrow_mut(), size, body);
        Ok(())
    }

    fn response_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        self.call("get_response_body")?;
        Ok(Some(
            self.response_body
                .borrow()
                .iter()
                .copied()
                .take(size)
                .collect(),
        ))
    }

    fn set_response_body(&self, size: usize, body: &[u8]) -> Result<(), HostError> {
        self.call("set_response_body")?;
        replace_start(&mut self.response_body.borrow_mut(), size, body);
        Ok(())
    }

    fn send_response(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        self.call("send_http_response")?;
        self.replies.borrow_mut().push(Reply {
            context: self.effective.get(),
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        });
        Ok(())
    }

    fn resume_request(&self) -> Result<(), HostError> {
        self.call("resume_http_request")?;
        self.resumed.set(self.resumed.get() + 1);
        self.resumed_contexts
            .borrow_mut()
            .push(self.effective.get());
        Ok(())
    }

    fn dispatch_grpc_call(
        &self,
        cluster: &str,
        service: &str,
        method: &str,
        message: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, HostError> {
        self.call("dispatch_grpc_call")?;
        let mut calls = self.grpc_calls.borrow_mut();
        let token = u32::try_from(calls.len()).map_err(|_| HostError::Other)? + 100;
        calls.push(GrpcCall {
            token,
            context: self.effective.get(),
            cluster: cluster.to_string(),
            service: service.to_string(),
            method: method.to_string(),
            message: message.to_vec(),
            timeout_ms,
        });
        Ok(token)
    }

    fn grpc_call_response_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        self.call("get_grpc_call_response_body")?;
        Ok(self
            .grpc_answer
            .borrow()
            .clone()
            .map(|body| body.into_iter().take(size).collect()))
    }

    fn dispatch_http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, HostError> {
        self.call("dispatch_http_call")?;
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        let mut dispatched = self.dispatched.borrow_mut();
        let token = u32::try_from(dispatched.len()).map_err(|_| HostError::Other)? + 1;
        dispatched.push(Dispatched {
            token,
            cluster: cluster.to_string(),
            path: find(":path"),
            authority: find(":authority"),
            timeout_ms,
        });
        Ok(token)
    }

    fn http_call_response_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.call("get_http_call_response_headers")?;
        Ok(match name {
            ":status" => self.call_answer.borrow().0.clone(),
            _ => None,
        })
    }

    fn http_call_response_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        self.call("get_http_call_response_body")?;
        Ok(self
            .call_answer
            .borrow()
            .1
            .clone()
            .map(|body| body.into_iter().take(size).collect()))
    }
}
