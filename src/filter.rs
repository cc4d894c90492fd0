//! One request: its headers go to `tollgate_core::decide`, and the decision is
//! carried out with host calls (a local reply, or header edits and a forward). On the response:
//! the response edits and the upstream metrics. Every failed host call is logged.

use crate::host::Host;
use std::cell::RefCell;
use std::rc::Rc;
use tollgate_core::metrics::{self, SeriesIds};
use tollgate_core::{
    decide, Decision, Denial, Forward, HeaderEdit, KeyFetch, Plan, RequestEnv, TokenCache, Trace,
    Verdict,
};

/// What every request of one VM shares (one VM per worker thread): built once per
/// configuration by the plugin.
pub struct Shared {
    pub plan: Plan,
    /// Verified tokens of this VM.
    pub tokens: RefCell<TokenCache>,
    pub metrics: RefCell<SeriesIds<u32>>,
    /// The fetch of remote signing keys, when the configuration has a key source.
    pub keys: Option<RefCell<KeyFetch>>,
}

/// What the host does with the request after `on_request_headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Forward it (edited).
    Continue,
    /// Stop: a local reply was sent.
    Stop,
}

pub struct Filter {
    shared: Rc<Shared>,
    response_edits: Vec<HeaderEdit>,
    /// For a forwarded request: its operation and when it left the filter.
    forwarded: Option<(usize, u64)>,
}

impl Filter {
    pub fn new(shared: Rc<Shared>) -> Self {
        Self {
            shared,
            response_edits: Vec::new(),
            forwarded: None,
        }
    }

    pub fn on_request_headers(&mut self, host: &impl Host) -> Next {
        let headers = host.request_headers().unwrap_or_else(|err| {
            // The pipeline answers a request without :method or :path with 400.
            log::error!("tollgate: cannot read the request headers ({err})");
            Vec::new()
        });
        // The verdict borrows the plan while `self` is updated: hold the plan by its own Rc.
        let shared = Rc::clone(&self.shared);
        let fetched = shared
            .keys
            .as_ref()
            .and_then(|keys| keys.try_borrow().ok())
            .and_then(|fetch| fetch.keys());
        // A VM runs one callback at a time, so the cache is free here; were it not, verify
        // without caching rather than skip anything.
        let mut uncached = TokenCache::default();
        let mut cached = shared.tokens.try_borrow_mut().ok();
        let tokens = cached.as_deref_mut().unwrap_or(&mut uncached);
        let mut env = RequestEnv::new(host, tokens, host);
        env.fetched_keys = fetched.as_deref();
        let now_ms = env.now_ms;
        let Decision {
            verdict,
            trace,
            unknown_kid,
        } = decide(&shared.plan, &headers, &mut env);
        drop(cached);
        if unknown_kid {
            // The provider may have rotated its keys: the plugin refetches at its next tick,
            // no sooner than `unknown_kid_refetch_s` after the last fetch.
            if let Some(mut fetch) = shared
                .keys
                .as_ref()
                .and_then(|keys| keys.try_borrow_mut().ok())
            {
                fetch.saw_unknown_kid();
            }
        }
        match verdict {
            Verdict::Deny(denial) => {
                self.count(host, &trace, denial.outcome.as_str());
                self.deny(host, &trace, &denial);
                Next::Stop
            }
            Verdict::Forward(forward) => {
                self.count(host, &trace, metrics::ALLOWED);
                self.forward(host, forward, now_ms);
                Next::Continue
            }
            Verdict::PassThrough => {
                self.count(host, &trace, metrics::ALLOWED);
                Next::Continue
            }
        }
    }

    pub fn on_response_headers(&mut self, host: &impl Host) {
        if let Some((operation, sent_ms)) = self.forwarded.take() {
            self.observe_upstream(host, operation, sent_ms);
        }
        for edit in std::mem::take(&mut self.response_edits) {
            let result = match &edit {
                HeaderEdit::Set(name, value) => host.set_response_header(name, Some(value)),
                HeaderEdit::Append(name, value) => host.add_response_header(name, value),
                HeaderEdit::Remove(name) => host.set_response_header(name, None),
            };
            if let Err(err) = result {
                log::error!(
                    "tollgate: cannot edit response header {} ({err})",
                    edit.name()
                );
            }
        }
    }

    fn deny(&self, host: &impl Host, trace: &Trace, denial: &Denial) {
        // One line per denial; messages never hold a key or a token.
        log::info!(
            "tollgate: denied status={} operation={} consumer={} outcome={} reason={:?}",
            denial.status,
            self.operation_name(trace),
            trace.consumer.as_deref().unwrap_or(metrics::NONE),
            denial.outcome.as_str(),
            denial.message
        );
        let body = denial.body();
        if let Err(err) =
            host.send_response(denial.status, &denial.reply_headers(), body.as_bytes())
        {
            log::error!("tollgate: cannot send the {} reply ({err})", denial.status);
        }
    }

    fn forward(&mut self, host: &impl Host, forward: Forward, now_ms: u64) {
        for edit in &forward.request_edits {
            let result = match edit {
                HeaderEdit::Set(name, value) => host.set_request_header(name, Some(value)),
                HeaderEdit::Append(name, value) => host.add_request_header(name, value),
                HeaderEdit::Remove(name) => host.set_request_header(name, None),
            };
            if let Err(err) = result {
                log::error!(
                    "tollgate: cannot edit request header {} ({err})",
                    edit.name()
                );
            }
        }
        if let Some(path) = &forward.path {
            if let Err(err) = host.set_request_header(":path", Some(path)) {
                log::error!("tollgate: cannot rewrite the path ({err})");
            }
        }
        self.response_edits = forward.response_edits;
        self.forwarded = Some((forward.operation, now_ms));
    }

    fn operation_name(&self, trace: &Trace) -> &str {
        trace
            .operation
            .and_then(|id| self.shared.plan.operation_name(id))
            .unwrap_or(metrics::NONE)
    }

    fn count(&self, host: &impl Host, trace: &Trace, outcome: &'static str) {
        let Ok(mut ids) = self.shared.metrics.try_borrow_mut() else {
            return;
        };
        let id = ids.request(trace, self.operation_name(trace), outcome, |kind, name| {
            host.define_metric(kind, name)
                .map_err(|err| log::error!("tollgate: cannot define metric {name} ({err})"))
                .ok()
        });
        if let Some(id) = id {
            increment(host, id);
        }
    }

    /// Upstream latency (request decided to response headers) and 4xx/5xx.
    fn observe_upstream(&self, host: &impl Host, operation: usize, decided_ms: u64) {
        let Ok(ids) = self.shared.metrics.try_borrow() else {
            return;
        };
        if let Some(id) = ids.upstream_latency(operation) {
            let elapsed_ms = host.now_ms().saturating_sub(decided_ms);
            if let Err(err) = host.record_metric(id, elapsed_ms) {
                log::error!("tollgate: cannot record upstream latency ({err})");
            }
        }
        let status = host.response_header(":status").unwrap_or_else(|err| {
            log::error!("tollgate: cannot read the upstream status ({err})");
            None
        });
        if let Some(id) = metrics::status_class(status.as_deref())
            .and_then(|class| ids.upstream_status(operation, class))
        {
            increment(host, id);
        }
    }
}

fn increment(host: &impl Host, id: u32) {
    if let Err(err) = host.increment_metric(id) {
        log::error!("tollgate: cannot increment metric {id} ({err})");
    }
}
