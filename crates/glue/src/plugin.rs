//! The plugin (root context) of one VM: compiles the configuration once, creates the counter
//! entries, defines the metrics, drives the signing-key fetch, and hands each request a
//! `Filter` that shares all of it. Decisions are the core's; this performs the host calls and
//! logs every one that fails.
//!
//! The key fetch runs here, in the root context: its calls are the root's, so a request that
//! ends early cannot take a fetch down with it. A request that waits for keys is parked; when
//! the fetch ends (or its wait does) the plugin makes that request's context the effective one
//! and decides it again.

use crate::filter::{Filter, Shared};
use crate::host::{define_metric_logged, Host};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use tollgate_core::metrics::{configured_series, dynamic_series_cap, SeriesIds};
use tollgate_core::{random_hash_key, Answered, KeyCall, KeyFetch, KnownKeys, Plan, TokenCache};

/// How often `on_tick` checks whether a key fetch is due and whether a wait is over (so a
/// wait may last up to this much past the source's `timeout_ms`).
pub const TICK_PERIOD_MS: u64 = 1000;
/// Key sources the VM remembers across configurations.
const REMEMBERED_SOURCES: usize = 8;
/// Skipped keys logged per fetch; the rest are counted in one line.
const LOGGED_SKIPPED_KEYS: usize = 16;

thread_local! {
    /// The key fetch of each source configured in this VM, newest last. A new configuration
    /// (a push makes a new plugin in the same VM) starts from the last good set of the same
    /// source, not from nothing: otherwise every push would refuse JWTs until the first fetch
    /// answers, and for good while the provider is down.
    static KEY_SOURCES: RefCell<Vec<Rc<RefCell<KeyFetch>>>> = const { RefCell::new(Vec::new()) };
}

#[derive(Default)]
pub struct Plugin {
    /// The host's id of this root context, made effective again after waking requests.
    root_id: u32,
    /// What every request of this VM shares; `None` until a configuration loads.
    shared: Option<Rc<Shared>>,
}

impl Plugin {
    pub fn new(root_id: u32) -> Self {
        Self {
            root_id,
            shared: None,
        }
    }

    /// Loads the plugin configuration. `false` makes Envoy refuse it: never a half-working
    /// filter.
    pub fn configure(&mut self, host: &impl Host) -> bool {
        let bytes = match host.plugin_configuration() {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                log::error!("tollgate: no plugin configuration given");
                return false;
            }
            Err(err) => {
                log::error!("tollgate: cannot read the plugin configuration ({err})");
                return false;
            }
        };
        let plan = match Plan::from_json(&bytes) {
            Ok(plan) => plan,
            Err(err) => {
                log::error!("tollgate: invalid configuration: {err}");
                return false;
            }
        };
        log::info!(
            "tollgate: configuration loaded ({} operations, {} consumers, {} products)",
            plan.operation_count(),
            plan.consumer_count(),
            plan.product_count()
        );
        let capacity = plan.token_cache_size();
        let tokens = match random_hash_key() {
            Some(key) => TokenCache::new(capacity, key),
            None => {
                // Without a secret key the cache could be aimed at; verify every time.
                log::error!("tollgate: no randomness from the host; JWT cache disabled");
                TokenCache::default()
            }
        };
        let known_keys = random_hash_key().map(KnownKeys::new);
        for (key, err) in plan.prepare_counters(host) {
            log::error!("tollgate: cannot create counter entry {key} ({err:?})");
        }
        let metrics = SeriesIds::define(
            configured_series(&plan),
            dynamic_series_cap(&plan),
            |kind, name| define_metric_logged(host, kind, name),
        );
        let keys = plan.key_fetch().map(|fetch| Rc::new(RefCell::new(fetch)));
        if let Some(keys) = &keys {
            take_over_and_remember(keys);
        }
        let fetches = keys.is_some();
        self.shared = Some(Rc::new(Shared {
            root_id: self.root_id,
            plan,
            tokens: RefCell::new(tokens),
            known_keys: RefCell::new(known_keys),
            metrics: RefCell::new(metrics),
            keys,
            log_throttle: RefCell::default(),
            parked: RefCell::default(),
            quick_tick: Cell::new(false),
        }));
        if fetches {
            if let Err(err) = host.set_tick_period_ms(TICK_PERIOD_MS) {
                // Without ticks the keys are fetched once, never refreshed or retried.
                log::error!("tollgate: cannot set the key refresh timer ({err})");
            }
            self.tick(host);
        }
        true
    }

    /// A filter for request context `context_id`, sharing this VM's plan, caches and metrics.
    pub fn new_filter(&self, context_id: u32) -> Option<Rc<RefCell<Filter>>> {
        let shared = self.shared.clone()?;
        Some(Rc::new_cyclic(|me| {
            RefCell::new(Filter::new(shared, context_id, me.clone()))
        }))
    }

    /// Starts a key fetch when one is due, and decides again the requests whose wait is over.
    /// A call the host refuses to dispatch (the cluster is missing, or not ready while Envoy
    /// starts) is retried with a backoff.
    pub fn tick(&mut self, host: &impl Host) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let Some(keys) = shared.keys.clone() else {
            return;
        };
        if shared.quick_tick.replace(false) {
            if let Err(err) = host.set_tick_period_ms(TICK_PERIOD_MS) {
                log::error!("tollgate: cannot set the key refresh timer back ({err})");
            }
        }
        let now_ms = host.now_ms();
        let now_s = now_ms / 1000;
        let due = keys.try_borrow().ok().and_then(|fetch| fetch.due(now_s));
        if let Some(call) = due {
            if let Ok(mut fetch) = keys.try_borrow_mut() {
                start(host, &mut fetch, &call, now_s);
            }
        }
        self.wake_ready(host, &shared, &keys);
    }

    /// An answer to an HTTP call of this VM (only key fetches make calls).
    pub fn on_http_call_response(&mut self, host: &impl Host, token: u32, body_size: usize) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let Some(keys) = shared.keys.clone() else {
            return;
        };
        let Ok(mut fetch) = keys.try_borrow_mut() else {
            return;
        };
        let status = match host.http_call_response_header(":status") {
            Ok(status) => status,
            Err(err) => {
                log::error!("tollgate: cannot read the identity provider's status ({err})");
                None
            }
        };
        let answered = fetch.answered(token, status.as_deref(), body_size, |size| {
            host.http_call_response_body(size).unwrap_or_else(|err| {
                log::error!("tollgate: cannot read the identity provider's answer ({err})");
                None
            })
        });
        let now_s = host.now_ms() / 1000;
        let (finished, skipped) = match answered {
            Answered::NotOurs => return,
            Answered::Finished { result, skipped } => (result, skipped),
            Answered::Next(call) => match dispatch(host, &call) {
                Ok(token) => {
                    fetch.dispatched(&call, token, now_s);
                    return;
                }
                Err(err) => {
                    log::debug!("tollgate: jwks_uri call not made ({err})");
                    (fetch.next_refused(), Vec::new())
                }
            },
        };
        // A failing source is logged the first time, then at most once a minute; its skipped
        // keys with it.
        let unlogged = match &finished {
            Ok(_) => Some(0),
            Err(_) => fetch.failure_to_log(now_s),
        };
        if let Some(unlogged) = unlogged {
            log_skipped(&skipped);
            match finished {
                Ok(count) => log::info!("tollgate: fetched {count} signing keys"),
                Err(err) => log::error!(
                    "tollgate: signing key fetch failed ({err}); keeping the last good set{}",
                    since(unlogged)
                ),
            }
        }
        drop(fetch);
        self.wake_ready(host, &shared, &keys);
    }

    /// A rate-limit answer that came to the root: it belongs to a request decided from here
    /// (after a key fetch), which gets it in its own context.
    pub fn on_grpc_call_response(
        &mut self,
        host: &impl Host,
        token: u32,
        status: u32,
        size: usize,
    ) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let Some(id) = shared.routed(token) else {
            return;
        };
        let Some(filter) = shared.unpark(id) else {
            return;
        };
        if let Err(err) = host.set_effective_context(id) {
            log::debug!("tollgate: request {id} is gone ({err})");
            return;
        }
        crate::filter::on_grpc_call_response(&filter, host, token, status, size);
        self.back_to_root(host);
    }

    /// Decides again every request whose wait for keys is over, each in its own context.
    fn wake_ready(&self, host: &impl Host, shared: &Shared, keys: &RefCell<KeyFetch>) {
        let ready = match keys.try_borrow_mut() {
            Ok(mut fetch) => fetch.ready_waiters(host.now_ms()),
            Err(_) => return,
        };
        if ready.is_empty() {
            return;
        }
        for id in ready {
            // A request that ended while waiting is simply gone.
            let Some(filter) = shared.unpark(id) else {
                continue;
            };
            if let Err(err) = host.set_effective_context(id) {
                log::debug!("tollgate: request {id} is gone ({err})");
                continue;
            }
            let Ok(mut filter) = filter.try_borrow_mut() else {
                log::error!("tollgate: request {id} busy; not decided again");
                continue;
            };
            filter.keys_ready(host);
        }
        self.back_to_root(host);
    }

    fn back_to_root(&self, host: &impl Host) {
        if let Err(err) = host.set_effective_context(self.root_id) {
            log::error!("tollgate: cannot return to the root context ({err})");
        }
    }
}

/// Starts the fetch `call`; a refusal backs off, and is logged the first time, then at most
/// once a minute.
fn start(host: &impl Host, fetch: &mut KeyFetch, call: &KeyCall, now_s: u64) {
    match dispatch(host, call) {
        Ok(token) => fetch.dispatched(call, token, now_s),
        Err(err) => {
            fetch.not_dispatched(now_s);
            if let Some(unlogged) = fetch.failure_to_log(now_s) {
                log::warn!(
                    "tollgate: cluster {} not callable for signing keys ({err}); retrying with backoff{}",
                    call.cluster,
                    since(unlogged)
                );
            }
        }
    }
}

/// One line per key the provider's set held that tollgate cannot use (never key material).
fn log_skipped(skipped: &[impl std::fmt::Display]) {
    for key in skipped.iter().take(LOGGED_SKIPPED_KEYS) {
        log::warn!("tollgate: skipped signing key {key}");
    }
    let more = skipped.len().saturating_sub(LOGGED_SKIPPED_KEYS);
    if more > 0 {
        log::warn!("tollgate: skipped {more} more signing keys");
    }
}

/// The tail of a throttled log line: how many failures went unlogged before it.
fn since(unlogged: u64) -> String {
    match unlogged {
        0 => String::new(),
        n => format!(" ({n} more failures since the last line)"),
    }
}

/// Seeds `fetch` from the newest remembered fetch of the same source, then remembers it in
/// that one's place.
fn take_over_and_remember(fetch: &Rc<RefCell<KeyFetch>>) {
    KEY_SOURCES.with(|sources| {
        let (Ok(mut sources), Ok(mut new)) = (sources.try_borrow_mut(), fetch.try_borrow_mut())
        else {
            return;
        };
        let previous = sources
            .iter()
            .rev()
            .find(|old| old.try_borrow().is_ok_and(|old| new.same_source(&old)));
        if let Some(count) = previous
            .and_then(|old| old.try_borrow().ok())
            .and_then(|old| new.take_over(&old))
        {
            log::info!("tollgate: starting from the {count} signing keys fetched before");
        }
        sources.retain(|old| old.try_borrow().is_ok_and(|old| !new.same_source(&old)));
        drop(new);
        sources.push(Rc::clone(fetch));
        let excess = sources.len().saturating_sub(REMEMBERED_SOURCES);
        sources.drain(..excess);
    });
}

fn dispatch(host: &impl Host, call: &KeyCall) -> Result<u32, crate::host::HostError> {
    host.dispatch_http_call(&call.cluster, &call.headers(), call.timeout_ms)
}
