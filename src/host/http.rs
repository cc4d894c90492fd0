//! Per-request glue: headers in, verdict out, edits applied.

use super::metrics::Registry;
use super::shared_data::SharedData;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::UNIX_EPOCH;
use tollgate_core::jwt::remote::RemoteKeyState;
use tollgate_core::jwt::token_cache::TokenCache;
use tollgate_core::metrics;
use tollgate_core::pipeline::{decide, Clock, Decision, RequestEnv, Trace, Verdict};
use tollgate_core::plan::Plan;
use tollgate_core::rewrite::HeaderEdit;

/// proxy-wasm `get_current_time`, through the `Result` call (the SDK's trait method unwraps).
pub struct HostClock;

impl Clock for HostClock {
    fn now_ms(&self) -> u64 {
        // Without a clock every token counts as expired: fail closed, never open.
        proxy_wasm::hostcalls::get_current_time().map_or(u64::MAX, |now| {
            now.duration_since(UNIX_EPOCH).map_or(u64::MAX, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            })
        })
    }
}

pub struct TollgateHttp {
    plan: Rc<Plan>,
    tokens: Rc<RefCell<TokenCache>>,
    metrics: Rc<RefCell<Registry>>,
    fetched_keys: Rc<RefCell<RemoteKeyState>>,
    response_edits: Vec<HeaderEdit>,
    /// For a forwarded request: its operation and when it left the filter.
    forwarded: Option<(usize, u64)>,
}

impl TollgateHttp {
    pub fn new(
        plan: Rc<Plan>,
        tokens: Rc<RefCell<TokenCache>>,
        metrics: Rc<RefCell<Registry>>,
        fetched_keys: Rc<RefCell<RemoteKeyState>>,
    ) -> Self {
        Self {
            plan,
            tokens,
            metrics,
            fetched_keys,
            response_edits: Vec::new(),
            forwarded: None,
        }
    }

    fn operation_name(&self, trace: &Trace) -> &str {
        trace
            .operation
            .and_then(|id| self.plan.operations.get(id))
            .map_or(metrics::NONE, |op| op.name.as_str())
    }

    fn count(&self, trace: &Trace, outcome: &'static str) {
        if let Ok(mut registry) = self.metrics.try_borrow_mut() {
            registry.count_request(trace, self.operation_name(trace), outcome);
        }
    }
}

impl Context for TollgateHttp {}

impl HttpContext for TollgateHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // The bytes variant: the SDK's text variant panics on a header value that is not UTF-8.
        let headers = self.get_http_request_headers_bytes();
        // A VM runs one callback at a time, so the cache is free here; were it not, verify
        // without caching rather than skip anything.
        let mut uncached = TokenCache::default();
        let mut shared = self.tokens.try_borrow_mut().ok();
        let tokens = shared.as_deref_mut().unwrap_or(&mut uncached);
        let fetched = self
            .fetched_keys
            .try_borrow()
            .ok()
            .and_then(|state| state.keys.clone());
        let mut env = RequestEnv::new(&HostClock, tokens, &SharedData);
        env.fetched_keys = fetched.as_deref();
        let now_ms = env.now_ms;
        let Decision {
            verdict,
            trace,
            unknown_kid,
        } = decide(&self.plan, &headers, &mut env);
        drop(shared);
        if unknown_kid {
            // The provider may have rotated its keys: the root refetches at its next tick,
            // no sooner than `unknown_kid_refetch_s` after the last fetch.
            if let Ok(mut state) = self.fetched_keys.try_borrow_mut() {
                state.saw_unknown_kid();
            }
        }
        match verdict {
            Verdict::Deny(denial) => {
                let outcome = denial.outcome.as_str();
                self.count(&trace, outcome);
                // One line per denial; messages never hold a key or a token.
                log::info!(
                    "tollgate: denied status={} operation={} consumer={} outcome={} reason={:?}",
                    denial.status,
                    self.operation_name(&trace),
                    trace.consumer.as_deref().unwrap_or(metrics::NONE),
                    outcome,
                    denial.message
                );
                let body = denial.body();
                let mut reply_headers: Vec<(&str, &str)> =
                    vec![("content-type", "application/json")];
                reply_headers.extend(denial.headers.iter().map(|(n, v)| (*n, v.as_str())));
                self.send_http_response(denial.status, reply_headers, Some(body.as_bytes()));
                Action::Pause
            }
            Verdict::Forward(forward) => {
                for edit in &forward.request_edits {
                    apply(
                        edit,
                        |n, v| self.set_http_request_header(n, v),
                        |n, v| self.add_http_request_header(n, v),
                    );
                }
                if let Some(path) = &forward.path {
                    self.set_http_request_header(":path", Some(path));
                }
                self.response_edits = forward.response_edits;
                self.count(&trace, metrics::ALLOWED);
                self.forwarded = Some((forward.operation, now_ms));
                Action::Continue
            }
            Verdict::PassThrough => {
                self.count(&trace, metrics::ALLOWED);
                Action::Continue
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some((operation, sent_ms)) = self.forwarded.take() {
            self.observe_upstream(operation, sent_ms);
        }
        for edit in std::mem::take(&mut self.response_edits) {
            apply(
                &edit,
                |n, v| self.set_http_response_header(n, v),
                |n, v| self.add_http_response_header(n, v),
            );
        }
        Action::Continue
    }
}

impl TollgateHttp {
    /// Upstream latency (request decided to response headers) and 4xx/5xx.
    fn observe_upstream(&self, operation: usize, decided_ms: u64) {
        let Ok(registry) = self.metrics.try_borrow() else {
            return;
        };
        let elapsed_ms = HostClock.now_ms().saturating_sub(decided_ms);
        let class = match self
            .get_http_response_header_bytes(":status")
            .and_then(|status| status.first().copied())
        {
            Some(b'4') => Some("4xx"),
            Some(b'5') => Some("5xx"),
            _ => None,
        };
        registry.upstream_response(operation, elapsed_ms, class);
    }
}

fn apply(edit: &HeaderEdit, set: impl Fn(&str, Option<&str>), add: impl Fn(&str, &str)) {
    match edit {
        HeaderEdit::Set(name, value) => set(name, Some(value)),
        HeaderEdit::Append(name, value) => add(name, value),
        HeaderEdit::Remove(name) => set(name, None),
    }
}
