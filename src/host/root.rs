//! Root context: receives the plugin configuration, compiles it once, and creates a filter per
//! request sharing the compiled plan.

use super::http::TollgateHttp;
use super::key_fetcher::KeyFetcher;
use super::metrics::Registry;
use super::shared_data::SharedData;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::cell::RefCell;
use std::rc::Rc;
use tollgate_core::jwt::token_cache::{random_hash_key, TokenCache};
use tollgate_core::plan::Plan;

#[derive(Default)]
pub struct TollgateRoot {
    plan: Option<Rc<Plan>>,
    /// Verified tokens of this VM (one VM per worker thread); replaced with the plan.
    tokens: Rc<RefCell<TokenCache>>,
    metrics: Rc<RefCell<Registry>>,
    keys: KeyFetcher,
}

impl Context for TollgateRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        self.keys.on_response(token_id, body_size);
    }
}

impl RootContext for TollgateRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            log::error!("tollgate: no plugin configuration given");
            return false;
        };
        match Plan::from_json(&bytes) {
            Ok(plan) => {
                log::info!(
                    "tollgate: configuration loaded ({} operations, {} consumers, {} products)",
                    plan.operations.len(),
                    plan.consumers.len(),
                    plan.products.len()
                );
                let capacity = plan.jwt.as_ref().map_or(0, |jwt| jwt.token_cache_size);
                let cache = match random_hash_key() {
                    Some(key) => TokenCache::new(capacity, key),
                    None => {
                        // Without a secret key the cache could be aimed at; verify every time.
                        log::error!("tollgate: no randomness from the host; JWT cache disabled");
                        TokenCache::new(0, [0; 16])
                    }
                };
                self.tokens = Rc::new(RefCell::new(cache));
                create_counters(&plan);
                self.metrics = Rc::new(RefCell::new(Registry::define(
                    tollgate_core::metrics::configured_series(&plan),
                    tollgate_core::metrics::dynamic_series_cap(&plan),
                )));
                self.keys = KeyFetcher::new(plan.jwt.as_ref().and_then(|jwt| jwt.remote.clone()));
                self.plan = Some(Rc::new(plan));
                if self.keys.fetches() {
                    // Fetch now, then check every second whether a refresh is due.
                    if let Err(status) =
                        proxy_wasm::hostcalls::set_tick_period(std::time::Duration::from_secs(1))
                    {
                        // Without ticks the keys are fetched once, never refreshed or retried.
                        log::error!("tollgate: cannot set the key refresh timer ({status:?})");
                    }
                    self.keys.tick();
                }
                true
            }
            Err(err) => {
                // Refusing the configuration makes Envoy reject it: never a half-working filter.
                log::error!("tollgate: invalid configuration: {err}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let plan = self.plan.clone()?;
        Some(Box::new(TollgateHttp::new(
            plan,
            Rc::clone(&self.tokens),
            Rc::clone(&self.metrics),
            Rc::clone(&self.keys.state),
        )))
    }

    fn on_tick(&mut self) {
        self.keys.tick();
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Creates every counter entry the plan can use before any request (the plan says which).
fn create_counters(plan: &Plan) {
    let keys = plan.counter_entries();
    for (key, err) in tollgate_core::limits::create_entries(&SharedData, &keys) {
        log::error!("tollgate: cannot create counter entry {key} ({err:?})");
    }
}
