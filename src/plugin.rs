//! The plugin (root context) of one VM: compiles the configuration once, creates the counter
//! entries, defines the metrics, drives the signing-key fetch, and hands each request a
//! `Filter` that shares all of it. Decisions are the core's; this performs the host calls and
//! logs every one that fails.

use crate::filter::{Filter, Shared};
use crate::host::Host;
use std::cell::RefCell;
use std::rc::Rc;
use tollgate_core::metrics::{configured_series, dynamic_series_cap, SeriesIds};
use tollgate_core::{random_hash_key, Answered, KeyCall, Plan, TokenCache};

/// How often `on_tick` checks whether a key fetch is due.
pub const TICK_PERIOD_S: u64 = 1;

#[derive(Default)]
pub struct Plugin {
    /// What every request of this VM shares; `None` until a configuration loads.
    shared: Option<Rc<Shared>>,
}

impl Plugin {
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
        for (key, err) in plan.prepare_counters(host) {
            log::error!("tollgate: cannot create counter entry {key} ({err:?})");
        }
        let metrics = SeriesIds::define(
            configured_series(&plan),
            dynamic_series_cap(&plan),
            |kind, name| define_metric(host, kind, name),
        );
        let keys = plan.key_fetch().map(RefCell::new);
        let fetches = keys.is_some();
        self.shared = Some(Rc::new(Shared {
            plan,
            tokens: RefCell::new(tokens),
            metrics: RefCell::new(metrics),
            keys,
            log_throttle: RefCell::default(),
        }));
        if fetches {
            if let Err(err) = host.set_tick_period_s(TICK_PERIOD_S) {
                // Without ticks the keys are fetched once, never refreshed or retried.
                log::error!("tollgate: cannot set the key refresh timer ({err})");
            }
            self.tick(host);
        }
        true
    }

    /// A filter for one request, sharing this VM's plan, caches and metrics.
    pub fn new_filter(&self) -> Option<Filter> {
        self.shared.clone().map(Filter::new)
    }

    /// Starts a key fetch when one is due. A call the host refuses to dispatch (the cluster is
    /// not ready while Envoy starts, or in `--mode validate`) is tried again at the next tick.
    pub fn tick(&mut self, host: &impl Host) {
        let Some(keys) = self.shared.as_ref().and_then(|shared| shared.keys.as_ref()) else {
            return;
        };
        let now_s = host.now_ms() / 1000;
        let due = keys.try_borrow().ok().and_then(|fetch| fetch.due(now_s));
        if let Some(call) = due {
            if let Some(token) = dispatch(host, &call) {
                if let Ok(mut fetch) = keys.try_borrow_mut() {
                    fetch.dispatched(&call, token, now_s);
                }
            }
        }
    }

    /// An answer to an HTTP call of this VM (only key fetches make calls).
    pub fn on_http_call_response(&mut self, host: &impl Host, token: u32, body_size: usize) {
        let Some(keys) = self.shared.as_ref().and_then(|shared| shared.keys.as_ref()) else {
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
        let finished = match answered {
            Answered::NotOurs => return,
            Answered::Finished(result) => result,
            Answered::Next(call) => match dispatch(host, &call) {
                Some(token) => {
                    fetch.dispatched(&call, token, host.now_ms() / 1000);
                    return;
                }
                None => fetch.next_refused(),
            },
        };
        match finished {
            Ok(count) => log::info!("tollgate: fetched {count} signing keys"),
            Err(err) => {
                log::error!("tollgate: signing key fetch failed ({err}); keeping the last good set")
            }
        }
    }
}

fn define_metric(
    host: &impl Host,
    kind: tollgate_core::metrics::SeriesKind,
    name: &str,
) -> Option<u32> {
    host.define_metric(kind, name)
        .map_err(|err| log::error!("tollgate: cannot define metric {name} ({err})"))
        .ok()
}

fn dispatch(host: &impl Host, call: &KeyCall) -> Option<u32> {
    match host.dispatch_http_call(&call.cluster, &call.headers(), call.timeout_ms) {
        Ok(token) => Some(token),
        Err(err) => {
            // Normal while Envoy is still starting (or in --mode validate).
            log::info!(
                "tollgate: cluster {} not callable yet for signing keys ({err}); retrying",
                call.cluster
            );
            None
        }
    }
}
