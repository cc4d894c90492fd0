//! One request: its headers go to `tollgate_core::decide`, and the decision is
//! carried out with host calls (a local reply, or header edits and a forward). On the response:
//! the response edits and the upstream metrics. Every failed host call is logged.
//!
//! A request whose token names a key the fetched set lacks may wait for a refetch: it parks
//! itself where the plugin (the root context, which receives the keys) can find it, and the
//! plugin decides it again once the fetch ends.

use crate::host::{apply_edit, define_metric_logged, Host, Side};
use crate::parked::Parked;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use tollgate_core::metrics::{self, CacheEvent, SeriesIds};
use tollgate_core::{
    cache_lookup, cache_store, decide, loggable, settle, storable_headers, BodyCounter,
    CacheRequest, Capture, CorsHeaders, Decision, Denial, ErrorMasking, Forward, GlobalCheck,
    HeaderEdit, KeyFetch, KnownKeys, LogThrottle, Lookup, MaskedReply, Plan, PreflightReply,
    RequestEnv, RequestReshape, ResponseReshape, ResponseStep, RlsAnswer, Settled, TokenCache,
    Trace, TransformFailure, Verdict, LOGGED_BODY_BYTES, RLS_METHOD, RLS_SERVICE,
};

/// What every request of one VM shares (one VM per worker thread): built once per
/// configuration by the plugin.
pub struct Shared {
    /// The plugin's (root) context: rate-limit calls are made in its name.
    pub root_id: u32,
    pub plan: Plan,
    /// Verified tokens of this VM.
    pub tokens: RefCell<TokenCache>,
    /// Valid subscription keys seen by this VM (none without randomness for its hash key).
    pub known_keys: RefCell<Option<KnownKeys>>,
    pub metrics: RefCell<SeriesIds<u32>>,
    /// The fetch of remote signing keys, when the configuration has a key source (the VM
    /// remembers it, so a later configuration of the same source starts from its keys).
    pub keys: Option<Rc<RefCell<KeyFetch>>>,
    /// Keeps rate-limit service failures to a log line a second.
    pub log_throttle: RefCell<LogThrottle>,
    /// Paused requests the root context must reach (waiting for keys, or for a rate-limit
    /// answer that comes to the root), and the calls whose answers it hands on.
    pub parked: RefCell<Parked<Filter>>,
    /// A request brought the tick forward; the next tick sets the period back.
    pub quick_tick: Cell<bool>,
}

impl Shared {
    /// Makes `filter` (context `id`) reachable from the root context.
    fn park(&self, id: u32, filter: Weak<RefCell<Filter>>) {
        if let Ok(mut parked) = self.parked.try_borrow_mut() {
            parked.park(id, filter);
        }
    }

    /// The parked request `id`, taken out, if it still exists.
    pub fn unpark(&self, id: u32) -> Option<Rc<RefCell<Filter>>> {
        self.parked
            .try_borrow_mut()
            .ok()
            .and_then(|mut parked| parked.unpark(id))
    }

    /// The request a rate-limit call made from the root answers.
    pub fn routed(&self, token: u32) -> Option<u32> {
        self.parked
            .try_borrow_mut()
            .ok()
            .and_then(|mut parked| parked.routed(token))
    }
}

/// What the host does with the request after `on_request_headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Forward it (edited).
    Continue,
    /// Hold it: a local reply was sent, or the rate-limit service is asked first, or it waits
    /// for a key fetch.
    Stop,
}

/// The tick a request that needs a fetch now asks for: the root dispatches it at once.
pub const QUICK_TICK_MS: u64 = 1;

/// gRPC status OK.
const GRPC_OK: u32 = 0;

/// A request waiting for the rate-limit service.
struct Waiting {
    /// The call's token.
    token: u32,
    check: Box<GlobalCheck>,
    trace: Trace,
}

pub struct Filter {
    shared: Rc<Shared>,
    /// The host's id of this request's context.
    context_id: u32,
    /// This filter as the plugin holds it while it is parked.
    me: Weak<RefCell<Filter>>,
    waiting: Option<Waiting>,
    /// It waited for a key fetch once: it never waits again.
    waited_for_keys: bool,
    /// Decided again from the root context: a rate-limit call it makes answers to the root.
    from_root: bool,
    response_edits: Vec<HeaderEdit>,
    /// The CORS headers of whatever response this request gets (the upstream's or a denial).
    cors: CorsHeaders,
    /// For a forwarded request: its operation and when it left the filter.
    forwarded: Option<(usize, u64)>,
    /// The body counted as it streams against `max_request_body_bytes`, and the trace its
    /// refusal is counted under (the operation: the refusal is the edge's, not the consumer's).
    body: Option<(BodyCounter, Trace)>,
    /// The body passed its limit while the request waited (keys, rate-limit service): the
    /// refusal to send instead of forwarding once the wait ends.
    body_refused: Option<Denial>,
    /// The request went on to the upstream (forwarded or passed through).
    released: bool,
    /// A cache miss: its answer may be stored, once its headers say so.
    cache_miss: Option<CacheRequest>,
    /// The answer of a miss, copied as it passes, stored when it ends.
    cache_capture: Option<Capture>,
    /// The headers ended the request: no body follows.
    headers_ended: bool,
    /// The request body as Envoy buffers it for this filter (the last body callback paused):
    /// the next callback's size is then all of it, not one chunk.
    buffered_request: Option<usize>,
    /// The request body ended while the request waited.
    request_body_ended: bool,
    /// The request body to reshape once it is complete, and the trace a refusal counts under.
    request_reshape: Option<(RequestReshape, Trace)>,
    /// The response body to reshape (a 2xx of an operation with `response_body`).
    response_reshape: Option<ResponseReshape>,
    /// 5xx answers to mask.
    error_masking: Option<ErrorMasking>,
    /// What the response body callbacks do.
    response_body: ResponseBody,
    /// tollgate answered the request itself: the response is its own, left as it is.
    replied: bool,
}

/// The response body's treatment, decided with the response headers.
enum ResponseBody {
    /// Streams untouched.
    Untouched,
    /// A masked 5xx: every chunk is dropped, the last replaced by the masked body; the first
    /// KiB of the original is kept for the log.
    Masked {
        status: u32,
        reply: MaskedReply,
        original: Vec<u8>,
    },
    /// A 2xx to reshape: buffered to its end, then transformed.
    Reshaped { status: u32, max_bytes: u64 },
}

/// The proxy's entry points hold each filter in a `RefCell` the plugin reaches too. A VM runs
/// one callback at a time, so the borrow never fails; were it to, the request is refused,
/// never let through unchecked.
pub fn on_request_headers(filter: &RefCell<Filter>, host: &impl Host, end_of_stream: bool) -> Next {
    match filter.try_borrow_mut() {
        Ok(mut filter) => filter.on_request_headers_ending(host, end_of_stream),
        Err(_) => {
            log::error!("tollgate: request filter busy; refusing");
            let body = br#"{"statusCode": 500, "message": "Internal server error."}"#;
            let headers = [("content-type", "application/json")];
            if let Err(err) = host.send_response(500, &headers, body) {
                log::error!("tollgate: cannot send the 500 reply ({err})");
            }
            Next::Stop
        }
    }
}

/// Runs one body, trailers or response callback on the filter; when the filter is busy (never,
/// one callback at a time), logs `busy` and answers `otherwise`.
fn with_filter(
    filter: &RefCell<Filter>,
    busy: &str,
    otherwise: Next,
    callback: impl FnOnce(&mut Filter) -> Next,
) -> Next {
    match filter.try_borrow_mut() {
        Ok(mut filter) => callback(&mut filter),
        Err(_) => {
            log::error!("tollgate: request filter busy; {busy}");
            otherwise
        }
    }
}

pub fn on_request_body(
    filter: &RefCell<Filter>,
    host: &impl Host,
    body_size: usize,
    end_of_stream: bool,
) -> Next {
    with_filter(filter, "body chunk not counted", Next::Continue, |f| {
        f.on_request_body(host, body_size, end_of_stream)
    })
}

pub fn on_request_trailers(filter: &RefCell<Filter>, host: &impl Host) -> Next {
    // Let through, a body meant to be reshaped could reach the upstream unshaped.
    with_filter(filter, "request held", Next::Stop, |f| {
        f.on_request_trailers(host)
    })
}

pub fn on_response_trailers(filter: &RefCell<Filter>, host: &impl Host) -> Next {
    with_filter(
        filter,
        "response trailers left as they are",
        Next::Continue,
        |f| f.on_response_trailers(host),
    )
}

pub fn on_response_headers(
    filter: &RefCell<Filter>,
    host: &impl Host,
    end_of_stream: bool,
) -> Next {
    with_filter(filter, "response left as is", Next::Continue, |f| {
        f.on_response_headers(host, end_of_stream)
    })
}

pub fn on_response_body(
    filter: &RefCell<Filter>,
    host: &impl Host,
    body_size: usize,
    end_of_stream: bool,
) -> Next {
    with_filter(filter, "response body left as is", Next::Continue, |f| {
        f.on_response_body(host, body_size, end_of_stream)
    })
}

pub fn on_grpc_call_response(
    filter: &RefCell<Filter>,
    host: &impl Host,
    token: u32,
    status: u32,
    size: usize,
) {
    match filter.try_borrow_mut() {
        Ok(mut filter) => filter.on_grpc_call_response(host, token, status, size),
        Err(_) => log::error!("tollgate: request filter busy; rate-limit answer dropped"),
    }
}

impl Filter {
    pub fn new(shared: Rc<Shared>, context_id: u32, me: Weak<RefCell<Filter>>) -> Self {
        Self {
            shared,
            context_id,
            me,
            waiting: None,
            waited_for_keys: false,
            from_root: false,
            response_edits: Vec::new(),
            cors: CorsHeaders::default(),
            forwarded: None,
            body: None,
            body_refused: None,
            released: false,
            cache_miss: None,
            cache_capture: None,
            headers_ended: false,
            buffered_request: None,
            request_body_ended: false,
            request_reshape: None,
            response_reshape: None,
            error_masking: None,
            response_body: ResponseBody::Untouched,
            replied: false,
        }
    }

    /// Request headers with a body to follow.
    #[cfg(test)]
    pub fn on_request_headers(&mut self, host: &impl Host) -> Next {
        self.on_request_headers_ending(host, false)
    }

    /// Request headers; `end_of_stream` when they end the request (no body).
    pub fn on_request_headers_ending(&mut self, host: &impl Host, end_of_stream: bool) -> Next {
        self.headers_ended = end_of_stream;
        self.decide(host)
    }

    /// The key fetch this request waited for ended, or its wait did. Called from the root
    /// context with this request's context in effect: decide again with the keys at hand, then
    /// let the request go on or answer it.
    pub fn keys_ready(&mut self, host: &impl Host) {
        self.from_root = true;
        if self.decide(host) == Next::Continue {
            if let Err(err) = host.resume_request() {
                log::error!("tollgate: cannot resume the request ({err})");
            }
        }
    }

    fn decide(&mut self, host: &impl Host) -> Next {
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
        let mut known_keys = shared.known_keys.try_borrow_mut().ok();
        let mut env = RequestEnv::new(host, tokens, host);
        env.fetched_keys = fetched.as_deref();
        env.known_keys = known_keys.as_deref_mut().and_then(Option::as_mut);
        env.body_follows = !self.headers_ended;
        env.source_address = Some(host);
        let now_ms = env.now_ms;
        let Decision {
            verdict,
            trace,
            unknown_kid,
            request_body_limit,
            error_masking,
            cors,
        } = decide(&shared.plan, &headers, &mut env);
        self.error_masking = error_masking;
        if self.body.is_none() {
            // Decided again after a key wait: the bytes counted so far still count.
            let edge = Trace {
                operation: trace.operation,
                ..Trace::default()
            };
            self.body = request_body_limit.map(|limit| (limit.counter(), edge));
        }
        drop(cached);
        drop(known_keys);
        self.cors = cors;
        if unknown_kid {
            // The provider may have rotated its keys: wait for a refetch once, if the bound
            // allows one; else the plugin refetches at its next tick the bound allows.
            let denied = matches!(verdict, Verdict::Deny(_));
            if denied && !self.waited_for_keys && self.wait_for_keys(host, now_ms) {
                return Next::Stop;
            }
            if let Some(mut fetch) = shared
                .keys
                .as_ref()
                .and_then(|keys| keys.try_borrow_mut().ok())
            {
                fetch.saw_unknown_kid();
            }
        }
        match verdict {
            Verdict::AskGlobal(check) => self.ask_global(host, check, trace, now_ms),
            verdict => self.carry_out(host, verdict, &trace, now_ms),
        }
    }

    /// Parks the request until the key fetch ends, when the core says it should wait.
    fn wait_for_keys(&mut self, host: &impl Host, now_ms: u64) -> bool {
        let shared = Rc::clone(&self.shared);
        let waits = wait_for_keys(&shared, host, self.context_id, now_ms);
        if waits {
            self.waited_for_keys = true;
            shared.park(self.context_id, self.me.clone());
        }
        waits
    }

    /// Carries out a final verdict: a local reply, or the edits of a forward.
    fn carry_out(
        &mut self,
        host: &impl Host,
        verdict: Verdict,
        trace: &Trace,
        now_ms: u64,
    ) -> Next {
        let going_on = matches!(verdict, Verdict::Forward(_) | Verdict::PassThrough(_));
        if let (true, Some(denial)) = (going_on, self.body_refused.take()) {
            self.refuse_body(host, &denial);
            return Next::Stop;
        }
        self.released = going_on;
        match verdict {
            Verdict::Deny(denial) => {
                self.count(host, trace, denial.outcome.as_str());
                self.deny(host, trace, &denial);
                Next::Stop
            }
            Verdict::Preflight(reply) => {
                self.count(host, trace, metrics::PREFLIGHT);
                answer_preflight(host, &reply);
                Next::Stop
            }
            Verdict::Forward(mut forward) => {
                self.count(host, trace, metrics::ALLOWED);
                if self.answered_from_cache(host, &mut forward, now_ms) {
                    self.released = false;
                    return Next::Stop;
                }
                let reshape = forward.request_body.take();
                self.response_reshape = forward.response_body.take();
                self.forward(host, forward, now_ms);
                match reshape {
                    Some(reshape) => self.start_request_reshape(host, reshape, trace.clone()),
                    None => Next::Continue,
                }
            }
            Verdict::PassThrough(edits) => {
                self.count(host, trace, metrics::ALLOWED);
                for edit in &edits {
                    apply_edit(host, Side::Request, edit);
                }
                Next::Continue
            }
            // A check is only ever settled into one of the above.
            Verdict::AskGlobal(_) => {
                log::error!("tollgate: a global check was not settled; refusing");
                self.carry_out(
                    host,
                    Verdict::Deny(Denial::limit_service_unavailable()),
                    trace,
                    now_ms,
                )
            }
        }
    }

    /// Asks the rate-limit service to count the global limits; the request waits for the
    /// answer (`on_grpc_call_response`). A call the host will not make is a service failure.
    fn ask_global(
        &mut self,
        host: &impl Host,
        check: Box<GlobalCheck>,
        trace: Trace,
        now_ms: u64,
    ) -> Next {
        let shared = Rc::clone(&self.shared);
        // The call is made in the root context's name. Envoy cancels a request context's calls
        // when the request ends (a client gone while it waits) without any callback, and the
        // SDK then keeps the call's token forever: a leak, and a panic when Envoy's call ids
        // wrap (after 2^30 calls). The root's calls always end with a callback; the SDK still
        // hands the answer to this request, or drops it when the request is gone. A request
        // decided again from the root's callback has its own context in effect: the same
        // holds for it.
        let in_root = host.set_effective_context(shared.root_id).is_ok();
        let dispatched = match shared.plan.global_limits() {
            Some(global) => host
                .dispatch_grpc_call(
                    &global.cluster,
                    RLS_SERVICE,
                    RLS_METHOD,
                    &check.message,
                    global.timeout_ms,
                )
                .map_err(|err| {
                    log::debug!("tollgate: rate-limit service call not made ({err})");
                }),
            None => Err(()),
        };
        if in_root {
            if let Err(err) = host.set_effective_context(self.context_id) {
                log::error!(
                    "tollgate: cannot return to request {} ({err})",
                    self.context_id
                );
            }
        }
        match dispatched {
            Ok(token) => {
                self.waiting = Some(Waiting {
                    token,
                    check,
                    trace,
                });
                if self.from_root {
                    // The call was made from the root's callback: its answer comes there.
                    if let Ok(mut parked) = shared.parked.try_borrow_mut() {
                        parked.park(self.context_id, self.me.clone());
                        parked.route_call(token, self.context_id);
                    }
                }
                Next::Stop
            }
            Err(()) => {
                let settled = settle(&shared.plan, *check, RlsAnswer::NotDispatched, host, now_ms);
                self.settled(host, settled, &trace, now_ms)
            }
        }
    }

    /// The rate-limit service answered (or the call ended): settle the waiting request and
    /// let it go on, or answer it.
    pub fn on_grpc_call_response(
        &mut self,
        host: &impl Host,
        token: u32,
        status: u32,
        size: usize,
    ) {
        let Some(waiting) = self.waiting.take_if(|waiting| waiting.token == token) else {
            return;
        };
        let body = if status == GRPC_OK {
            host.grpc_call_response_body(size).unwrap_or_else(|err| {
                log::error!("tollgate: cannot read the rate-limit service's answer ({err})");
                None
            })
        } else {
            None
        };
        let answer = match (status, &body) {
            (GRPC_OK, Some(body)) => RlsAnswer::Message(body),
            (GRPC_OK, None) => RlsAnswer::Message(&[]),
            (status, _) => RlsAnswer::Status(status),
        };
        let now_ms = host.now_ms();
        let shared = Rc::clone(&self.shared);
        let settled = settle(&shared.plan, *waiting.check, answer, host, now_ms);
        if self.settled(host, settled, &waiting.trace, now_ms) == Next::Continue {
            if let Err(err) = host.resume_request() {
                log::error!("tollgate: cannot resume the request ({err})");
            }
        }
    }

    /// Carries out a settled check; a service failure is counted and logged (at most a line a
    /// second per worker).
    fn settled(&mut self, host: &impl Host, settled: Settled, trace: &Trace, now_ms: u64) -> Next {
        if let Some(failure) = settled.failure {
            if let Some(id) = self
                .shared
                .metrics
                .try_borrow()
                .ok()
                .and_then(|ids| ids.limit_service_failures())
            {
                increment(host, id);
            }
            let log_now = self
                .shared
                .log_throttle
                .try_borrow_mut()
                .is_ok_and(|mut throttle| throttle.allow(now_ms));
            if log_now {
                let mode = self
                    .shared
                    .plan
                    .global_limits()
                    .map_or("-", |global| global.failure_mode.as_str());
                log::warn!(
                    "tollgate: rate-limit service failed ({failure}); failure_mode {mode} applies"
                );
            }
        }
        self.carry_out(host, settled.verdict, trace, now_ms)
    }

    /// A chunk of the request body (or, while the filter buffers it, all of it so far):
    /// counted against `max_request_body_bytes` when the operation has one; over it, the
    /// request is refused — at once when it already went on (Envoy resets the upstream request,
    /// which never sees the body end), else when the wait it is in ends. The body of a request
    /// to reshape is buffered to its end, then replaced.
    pub fn on_request_body(
        &mut self,
        host: &impl Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Next {
        let chunk_bytes = body_size.saturating_sub(self.buffered_request.take().unwrap_or(0));
        if end_of_stream {
            self.request_body_ended = true;
        }
        if let Some((counter, _)) = self.body.as_mut() {
            if let Err(denial) = counter.add(chunk_bytes) {
                if self.released {
                    self.refuse_body(host, &denial);
                } else {
                    // Held (and so buffered) until the wait ends.
                    self.buffered_request = Some(body_size);
                    self.body_refused = Some(denial);
                }
                return Next::Stop;
            }
        }
        if self.replied {
            return Next::Continue;
        }
        if !self.released || self.request_reshape.is_some() {
            // Waiting for a decision, or for the end of a body to reshape: buffered.
            self.buffered_request = Some(body_size);
            if self.released && end_of_stream {
                return self.reshape_request(host, body_size);
            }
            if let Some((reshape, trace)) = &self.request_reshape {
                if let Err(denial) = reshape.check_size(&self.shared.plan, body_size) {
                    let trace = trace.clone();
                    self.refuse_reshaped(host, &trace, &denial);
                }
            }
            return Next::Stop;
        }
        Next::Continue
    }

    /// Trailers end the request: a body still buffered for a transform is complete now (were
    /// the trailers let through first, Envoy would send the body on unshaped).
    pub fn on_request_trailers(&mut self, host: &impl Host) -> Next {
        if self.replied {
            return Next::Continue;
        }
        if !self.released {
            // Held for a decision (the rate-limit service, a key fetch): trailers end the
            // request, and letting them through would make Envoy send it upstream undecided.
            // It goes on (trailers included) when the decision resumes it.
            self.request_body_ended = true;
            return Next::Stop;
        }
        if self.request_reshape.is_none() {
            return Next::Continue;
        }
        self.request_body_ended = true;
        let buffered = self.buffered_request.unwrap_or(0);
        self.reshape_request(host, buffered)
    }

    /// A forwarded request whose body is to be reshaped. Its headers go on now (Envoy passes a
    /// filter the body only once its headers went on), without `Content-Length`: the body's
    /// length changes, so the upstream reads it to its end. A body that already ended while
    /// the request waited is reshaped at once.
    fn start_request_reshape(
        &mut self,
        host: &impl Host,
        reshape: RequestReshape,
        trace: Trace,
    ) -> Next {
        for (name, value) in [
            ("content-length", None),
            ("content-type", Some("application/json")),
        ] {
            if let Err(err) = host.set_request_header(name, value) {
                log::error!("tollgate: cannot edit request header {name} ({err})");
            }
        }
        self.request_reshape = Some((reshape, trace));
        if !self.request_body_ended {
            return Next::Continue;
        }
        let buffered = self.buffered_request.unwrap_or(0);
        self.reshape_request(host, buffered)
    }

    /// The whole request body is here: replaces it with the transform's result, or refuses
    /// the request (400, 413).
    fn reshape_request(&mut self, host: &impl Host, body_size: usize) -> Next {
        let Some((reshape, trace)) = self.request_reshape.take() else {
            return Next::Continue;
        };
        let body = host.request_body(body_size).unwrap_or_else(|err| {
            log::error!("tollgate: cannot read the request body ({err})");
            None
        });
        let plan = &self.shared.plan;
        let result = match reshape.check_size(plan, body_size) {
            Ok(()) => reshape.apply(plan, body.as_deref().unwrap_or_default()),
            Err(denial) => Err(denial),
        };
        match result {
            Ok(new_body) => {
                if let Err(err) = host.set_request_body(body_size, &new_body) {
                    log::error!("tollgate: cannot replace the request body ({err})");
                }
                self.buffered_request = None;
                Next::Continue
            }
            Err(denial) => {
                self.refuse_reshaped(host, &trace, &denial);
                Next::Stop
            }
        }
    }

    /// Refuses a request whose body a transform cannot take, counted under its consumer.
    fn refuse_reshaped(&mut self, host: &impl Host, trace: &Trace, denial: &Denial) {
        self.request_reshape = None;
        self.count(host, trace, denial.outcome.as_str());
        self.deny(host, trace, denial);
        self.forwarded = None;
        self.response_edits.clear();
    }

    /// Sends the 413 of a body over its limit, counted under the operation.
    fn refuse_body(&mut self, host: &impl Host, denial: &Denial) {
        let trace = self.body.take().map(|(_, trace)| trace).unwrap_or_default();
        self.count(host, &trace, denial.outcome.as_str());
        self.deny(host, &trace, denial);
        // Not the upstream's answer: no latency or status to record for it.
        self.forwarded = None;
        self.response_edits.clear();
    }

    /// The response headers: upstream metrics, the operation's header edits, then masking
    /// (a 5xx) or a response transform (a 2xx).
    pub fn on_response_headers(&mut self, host: &impl Host, end_of_stream: bool) -> Next {
        if self.replied {
            return Next::Continue;
        }
        if let Some((operation, sent_ms)) = self.forwarded.take() {
            self.observe_upstream(host, operation, sent_ms);
        }
        // Before tollgate's own edits: an entry holds the upstream's headers, and a hit gets
        // the edits of its own request. An answer to reshape is not stored: the copy would be
        // the unshaped body.
        if let Some(request) = self.cache_miss.take() {
            if self.response_reshape.is_none() {
                self.start_capture(host, request, end_of_stream);
            }
        }
        for edit in std::mem::take(&mut self.response_edits) {
            apply_edit(host, Side::Response, &edit);
        }
        if self.error_masking.is_none() && self.response_reshape.is_none() {
            // Everything else streams untouched, at no extra host call.
            return Next::Continue;
        }
        let status = self.response_status(host);
        if let Some(reply) = self.error_masking.as_ref().and_then(|m| m.mask(status)) {
            return self.mask(host, reply, end_of_stream);
        }
        let Some(reshape) = self.response_reshape.take() else {
            return Next::Continue;
        };
        let header = |name| {
            host.response_header(name).unwrap_or_else(|err| {
                log::error!("tollgate: cannot read response header {name} ({err})");
                None
            })
        };
        let (content_type, content_length) = (header("content-type"), header("content-length"));
        let step = reshape.on_headers(
            &self.shared.plan,
            status,
            content_type.as_deref(),
            content_length.as_deref(),
            end_of_stream,
        );
        match step {
            ResponseStep::Leave => Next::Continue,
            ResponseStep::Refuse(reply, failure) => {
                self.refuse_response(host, &reshape, &reply, &failure);
                Next::Stop
            }
            ResponseStep::Buffer { max_bytes } => {
                // The headers leave now (Envoy passes the body only after them), so without a
                // length: the client reads the reshaped body to its end.
                for (name, value) in [
                    ("content-length", None),
                    ("content-encoding", None),
                    ("content-type", Some("application/json")),
                ] {
                    if let Err(err) = host.set_response_header(name, value) {
                        log::error!("tollgate: cannot edit response header {name} ({err})");
                    }
                }
                self.response_body = ResponseBody::Reshaped {
                    status: status.unwrap_or(200),
                    max_bytes,
                };
                self.response_reshape = Some(reshape);
                Next::Continue
            }
        }
    }

    /// A cacheable request: answered from its entry when the cache holds it (`true`), else
    /// marked `x-cache: MISS` and, for a GET, its answer copied to be stored.
    fn answered_from_cache(
        &mut self,
        host: &impl Host,
        forward: &mut Forward,
        now_ms: u64,
    ) -> bool {
        let Some(request) = forward.cache.take() else {
            return false;
        };
        let operation = request.operation;
        let found = if request.refresh {
            Lookup::Miss
        } else {
            cache_lookup(host, &request, now_ms)
        };
        if let Lookup::Hit(entry) = found {
            let mut edits = forward.response_edits.clone();
            edits.extend_from_slice(self.cors.response_edits());
            let reply = entry.reply(&edits, now_ms);
            let headers: Vec<(&str, &str)> = reply
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            match host.send_response(reply.status, &headers, reply.body) {
                Ok(()) => {
                    self.count_cache(host, operation, CacheEvent::Hit);
                    return true;
                }
                // The upstream still can answer.
                Err(err) => log::error!("tollgate: cannot send a cached answer ({err})"),
            }
        }
        self.count_cache(host, operation, CacheEvent::Miss);
        forward
            .response_edits
            .push(HeaderEdit::Set("x-cache".to_string(), "MISS".to_string()));
        // A HEAD's answer has no body to store; it is answered from a GET's entry.
        if !request.head {
            self.cache_miss = Some(request);
        }
        false
    }

    /// Starts copying a miss's answer when its status and headers may be stored.
    fn start_capture(&mut self, host: &impl Host, request: CacheRequest, end_of_stream: bool) {
        let headers = match host.response_headers() {
            Ok(headers) => headers,
            Err(err) => {
                log::error!("tollgate: cannot read the response headers to cache ({err})");
                return;
            }
        };
        let capture =
            storable_headers(&request, &headers).and_then(|kept| Capture::start(request, kept));
        match capture {
            Ok(capture) if end_of_stream => self.store_capture(host, capture),
            Ok(capture) => self.cache_capture = Some(capture),
            Err(reason) => log::debug!("tollgate: answer not cached ({reason:?})"),
        }
    }

    /// One chunk of the answer, copied while it fits (it is never held back), and stored with
    /// the last one.
    fn copy_for_cache(&mut self, host: &impl Host, chunk_bytes: usize, end_of_stream: bool) {
        let Some(capture) = self.cache_capture.as_mut() else {
            return;
        };
        if !capture.fits(chunk_bytes) {
            self.cache_capture = None;
            return;
        }
        if chunk_bytes > 0 {
            let copied = match host.response_body(chunk_bytes) {
                Ok(chunk) => capture.add(&chunk.unwrap_or_default()).is_ok(),
                Err(err) => {
                    log::error!("tollgate: cannot read the response body to cache ({err})");
                    false
                }
            };
            if !copied {
                self.cache_capture = None;
                return;
            }
        }
        if end_of_stream {
            if let Some(capture) = self.cache_capture.take() {
                self.store_capture(host, capture);
            }
        }
    }

    fn store_capture(&self, host: &impl Host, capture: Capture) {
        let (request, entry) = capture.finish(host.now_ms());
        match cache_store(host, &request, &entry) {
            Ok(Some(stored)) => {
                self.count_cache(host, request.operation, CacheEvent::Store);
                if stored.evicted {
                    self.count_cache(host, request.operation, CacheEvent::Eviction);
                }
                let gauge = self
                    .shared
                    .metrics
                    .try_borrow()
                    .ok()
                    .and_then(|ids| ids.cache_bytes());
                if let Some(id) = gauge {
                    if let Err(err) = host.add_to_metric(id, stored.bytes_delta) {
                        log::debug!("tollgate: cannot move the cache bytes gauge ({err})");
                    }
                }
            }
            // A newer entry of the same key is there already, or it grew too large.
            Ok(None) => {}
            Err(err) => log::debug!("tollgate: answer not cached ({err:?})"),
        }
    }

    fn count_cache(&self, host: &impl Host, operation: usize, event: CacheEvent) {
        let id = self
            .shared
            .metrics
            .try_borrow()
            .ok()
            .and_then(|ids| ids.cache(operation, event));
        if let Some(id) = id {
            increment(host, id);
        }
    }

    /// A response body chunk (or, while it is buffered, all of it so far).
    pub fn on_response_body(
        &mut self,
        host: &impl Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Next {
        match &mut self.response_body {
            ResponseBody::Untouched => {
                self.copy_for_cache(host, body_size, end_of_stream);
                Next::Continue
            }
            ResponseBody::Masked {
                status,
                reply,
                original,
            } => {
                let wanted = body_size.min(LOGGED_BODY_BYTES.saturating_sub(original.len()));
                if wanted > 0 {
                    if let Ok(Some(bytes)) = host.response_body(wanted) {
                        original.extend(bytes.into_iter().take(wanted));
                    }
                }
                let replacement: &[u8] = if end_of_stream {
                    reply.body.as_bytes()
                } else {
                    b""
                };
                if let Err(err) = host.set_response_body(body_size, replacement) {
                    log::error!("tollgate: cannot replace the {status} body ({err})");
                }
                if end_of_stream {
                    let status = *status;
                    let original = std::mem::take(original);
                    self.log_masked(status, &original);
                    self.response_body = ResponseBody::Untouched;
                }
                Next::Continue
            }
            ResponseBody::Reshaped { status, max_bytes } => {
                let (status, max_bytes) = (*status, *max_bytes);
                let Some(reshape) = self.response_reshape.take() else {
                    return Next::Continue;
                };
                if u64::try_from(body_size).unwrap_or(u64::MAX) > max_bytes {
                    let reply = reshape.bad_gateway();
                    self.refuse_response(host, &reshape, &reply, &TransformFailure::TooLarge);
                    return Next::Stop;
                }
                if !end_of_stream {
                    self.response_reshape = Some(reshape);
                    return Next::Stop;
                }
                let body = host.response_body(body_size).unwrap_or_else(|err| {
                    log::error!("tollgate: cannot read the response body ({err})");
                    None
                });
                match reshape.apply(
                    &self.shared.plan,
                    status,
                    body.as_deref().unwrap_or_default(),
                ) {
                    Ok(new_body) => {
                        if let Err(err) = host.set_response_body(body_size, &new_body) {
                            log::error!("tollgate: cannot replace the response body ({err})");
                        }
                        self.response_body = ResponseBody::Untouched;
                        Next::Continue
                    }
                    Err((reply, failure)) => {
                        self.refuse_response(host, &reshape, &reply, &failure);
                        Next::Stop
                    }
                }
            }
        }
    }

    /// Trailers end the response: a buffered 2xx is reshaped now; a masked 5xx whose last chunk
    /// never came cannot get its body any more, so the stream is reset rather than end short.
    pub fn on_response_trailers(&mut self, host: &impl Host) -> Next {
        match std::mem::replace(&mut self.response_body, ResponseBody::Untouched) {
            ResponseBody::Untouched => Next::Continue,
            ResponseBody::Reshaped { status, max_bytes } => {
                let size = host
                    .response_body(usize::MAX)
                    .ok()
                    .flatten()
                    .map_or(0, |body| body.len());
                self.response_body = ResponseBody::Reshaped { status, max_bytes };
                self.on_response_body(host, size, true)
            }
            ResponseBody::Masked {
                status,
                reply,
                original,
            } => {
                self.log_masked(status, &original);
                self.reply(host, reply.status, &reply.body);
                Next::Stop
            }
        }
    }

    /// The upstream's `:status`, as a number.
    fn response_status(&self, host: &impl Host) -> Option<u32> {
        host.response_header(":status")
            .ok()
            .flatten()
            .and_then(|status| std::str::from_utf8(&status).ok()?.parse().ok())
    }

    /// Masks a 5xx: its headers now (the masked body's length is known), its body chunk by
    /// chunk. One that ends with its headers (no body) is answered whole instead.
    fn mask(&mut self, host: &impl Host, reply: MaskedReply, end_of_stream: bool) -> Next {
        self.count_masked(host);
        if end_of_stream {
            self.log_masked(reply.status, b"");
            self.reply(host, reply.status, &reply.body);
            return Next::Stop;
        }
        let length = reply.body.len().to_string();
        for (name, value) in [
            ("content-type", Some("application/json")),
            ("content-length", Some(length.as_str())),
            ("content-encoding", None),
        ] {
            if let Err(err) = host.set_response_header(name, value) {
                log::error!("tollgate: cannot edit response header {name} ({err})");
            }
        }
        self.response_body = ResponseBody::Masked {
            status: reply.status,
            reply,
            original: Vec::new(),
        };
        Next::Continue
    }

    fn log_masked(&self, status: u32, original: &[u8]) {
        let masking = self.error_masking.as_ref();
        let operation = masking
            .and_then(|m| m.operation)
            .and_then(|id| self.shared.plan.operation_name(id))
            .unwrap_or(metrics::NONE);
        log::warn!(
            "tollgate: masked {status} operation={operation} request_id={} original=\"{}\"",
            masking.map_or("unknown", |m| m.request_id.as_str()),
            loggable(original)
        );
    }

    fn count_masked(&self, host: &impl Host) {
        let operation = self.error_masking.as_ref().and_then(|m| m.operation);
        if let Some(id) = self
            .shared
            .metrics
            .try_borrow()
            .ok()
            .and_then(|ids| ids.masked_errors(operation))
        {
            increment(host, id);
        }
    }

    /// A 2xx that cannot be reshaped: answered 502 while its headers are still here; once they
    /// left, the same local reply makes Envoy reset the stream, so the client never gets the
    /// unshaped body (nor a cut one presented as whole).
    fn refuse_response(
        &mut self,
        host: &impl Host,
        reshape: &ResponseReshape,
        reply: &MaskedReply,
        failure: &TransformFailure,
    ) {
        let operation = reshape.operation();
        log::warn!(
            "tollgate: response transform refused operation={} request_id={} reason={failure}",
            self.shared
                .plan
                .operation_name(operation)
                .unwrap_or(metrics::NONE),
            reshape.request_id(),
        );
        if let Some(id) = self
            .shared
            .metrics
            .try_borrow()
            .ok()
            .and_then(|ids| ids.response_transform_failures(operation))
        {
            increment(host, id);
        }
        self.response_body = ResponseBody::Untouched;
        self.reply(host, reply.status, &reply.body);
    }

    /// Sends one of tollgate's own JSON replies.
    fn reply(&mut self, host: &impl Host, status: u32, body: &str) {
        self.replied = true;
        let mut headers = MaskedReply::headers().to_vec();
        // A browser app reads tollgate's answer as it reads the upstream's.
        headers.extend(self.cors.reply_headers());
        if let Err(err) = host.send_response(status, &headers, body.as_bytes()) {
            log::error!("tollgate: cannot send the {status} reply ({err})");
        }
    }

    fn deny(&mut self, host: &impl Host, trace: &Trace, denial: &Denial) {
        self.replied = true;
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
        let mut headers = denial.reply_headers();
        headers.extend(self.cors.reply_headers());
        if let Err(err) = host.send_response(denial.status, &headers, body.as_bytes()) {
            log::error!("tollgate: cannot send the {} reply ({err})", denial.status);
        }
    }

    fn forward(&mut self, host: &impl Host, forward: Forward, now_ms: u64) {
        for edit in &forward.request_edits {
            apply_edit(host, Side::Request, edit);
        }
        if let Some(path) = &forward.path {
            if let Err(err) = host.set_request_header(":path", Some(path)) {
                log::error!("tollgate: cannot rewrite the path ({err})");
            }
        }
        self.response_edits = forward.response_edits;
        // Last: the CORS section owns these headers whatever the operation's own edits say.
        self.response_edits
            .extend_from_slice(self.cors.response_edits());
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
            define_metric_logged(host, kind, name)
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

/// A preflight's `200`, without a body.
fn answer_preflight(host: &impl Host, reply: &PreflightReply) {
    if let Err(err) = host.send_response(PreflightReply::STATUS, &reply.headers(), b"") {
        log::error!("tollgate: cannot send the preflight reply ({err})");
    }
}

fn increment(host: &impl Host, id: u32) {
    if let Err(err) = host.increment_metric(id) {
        // Per request: at debug level, so a broken stat cannot flood the log.
        log::debug!("tollgate: cannot increment metric {id} ({err})");
    }
}

/// Whether the request `id` waits for a key fetch (the core decides), and if a fetch is to
/// start now, the tick brought forward so the root context starts it at once. When the tick
/// cannot be moved the request does not wait.
pub fn wait_for_keys(shared: &Shared, host: &impl Host, id: u32, now_ms: u64) -> bool {
    let Some(keys) = &shared.keys else {
        return false;
    };
    let Ok(mut fetch) = keys.try_borrow_mut() else {
        return false;
    };
    let wait = fetch.wait_for_keys(id, now_ms);
    if !wait.fetch_now() {
        return wait.waits();
    }
    match host.set_tick_period_ms(QUICK_TICK_MS) {
        Ok(()) => {
            shared.quick_tick.set(true);
            true
        }
        Err(err) => {
            log::error!("tollgate: cannot bring the key fetch forward ({err})");
            fetch.stop_waiting(id);
            false
        }
    }
}
