//! One glue `Plugin` per filter configuration per worker thread, as the wasm filter has one per
//! VM (Envoy runs one VM per worker). The glue is single-threaded (`Rc`, `RefCell`): its
//! plugin, caches (verified tokens, valid keys), parked requests and metric ids stay on the
//! worker that made them. Envoy calls every hook of a stream on the stream's worker thread,
//! so a stream finds its plugin in that thread's registry (`WORKER`).
//!
//! A worker's plugin for a configuration (`Slot`) is made, and its configuration loaded, on the
//! first stream of that configuration on that worker (`on_http_filter_new`), not when Envoy
//! creates the configuration (`on_http_filter_config_new`, main thread): that hook has checked
//! the configuration already (`Config::new`), so loading it again cannot fail but for want of
//! randomness, which fails the worker's streams closed (503). Slots are keyed by the
//! configuration's id (`Config::id`, never reused). A slot outlives its configuration only
//! until the worker's next new slot: the registry then drops the slots whose configuration
//! Envoy destroyed (a configuration lives as long as its last stream, each holding an `Arc`).

use crate::abi::{Scheduler, Stream};
use crate::config::Config;
use crate::grpc::{self, Answer};
use crate::metrics::SeriesTable;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Weak};
use tollgate_glue::plugin::Plugin;

thread_local! {
    /// This worker's slots, by configuration id.
    static WORKER: RefCell<HashMap<u64, Rc<Slot>>> = RefCell::new(HashMap::new());
}

/// The context id of every slot's plugin (the root context). Stream ids start after it.
const ROOT_ID: u32 = 1;

/// One configuration on one worker: the glue's plugin and what the host keeps for it.
pub struct Slot {
    /// The configuration, to know when Envoy has destroyed it.
    config: Weak<Config>,
    /// The plugin's (root) context id.
    pub root_id: u32,
    pub plugin: RefCell<Plugin>,
    /// The metric series the plugin and its requests defined.
    pub series: RefCell<SeriesTable>,
    /// The live streams, by context id, for `set_effective_context`.
    streams: RefCell<HashMap<u32, Stream>>,
    last_context: Cell<u32>,
    /// The root's tick period and when the next tick is due (ms since the epoch).
    tick_period_ms: Cell<Option<u64>>,
    next_tick_ms: Cell<u64>,
    /// gRPC calls in flight, by stream context id and Envoy's callout id.
    calls: RefCell<HashMap<(u32, u64), Call>>,
    last_token: Cell<u32>,
    /// Each stream's scheduler, made when an answer must wait for the running hook to end.
    schedulers: RefCell<HashMap<u32, Scheduler>>,
}

/// One gRPC call: the glue's token for it (0 until the call's start has returned: its answer
/// can come first, from inside the start), the answer so far, and its end.
#[derive(Default)]
struct Call {
    token: u32,
    answer: Answer,
    ended: Option<(u32, Vec<u8>)>,
}

/// An ended call, for the glue's `on_grpc_call_response`.
pub struct Ended {
    pub token: u32,
    pub status: u32,
    pub message: Vec<u8>,
}

impl Slot {
    fn new(config: &Arc<Config>) -> Self {
        Self {
            config: Arc::downgrade(config),
            root_id: ROOT_ID,
            plugin: RefCell::new(Plugin::new(ROOT_ID)),
            series: RefCell::default(),
            streams: RefCell::default(),
            last_context: Cell::new(ROOT_ID),
            tick_period_ms: Cell::new(None),
            next_tick_ms: Cell::new(0),
            calls: RefCell::default(),
            last_token: Cell::new(0),
            schedulers: RefCell::default(),
        }
    }

    /// A context id for a new stream, registered until `unregister`.
    pub fn register(&self, stream: Stream) -> u32 {
        let mut streams = match self.streams.try_borrow_mut() {
            Ok(streams) => streams,
            Err(_) => return 0,
        };
        let mut id = self.last_context.get();
        loop {
            id = id.wrapping_add(1);
            // After 2^32 streams on one worker, ids come round: skip the root's and any still
            // in use.
            if id > ROOT_ID && !streams.contains_key(&id) {
                break;
            }
        }
        self.last_context.set(id);
        streams.insert(id, stream);
        id
    }

    /// Forgets stream `id` (its filter is being destroyed), its calls (Envoy resets them
    /// without a callback) and its scheduler.
    pub fn unregister(&self, id: u32) {
        if let Ok(mut streams) = self.streams.try_borrow_mut() {
            streams.remove(&id);
        }
        if let Ok(mut calls) = self.calls.try_borrow_mut() {
            calls.retain(|(context, _), _| *context != id);
        }
        let scheduler = self
            .schedulers
            .try_borrow_mut()
            .ok()
            .and_then(|mut schedulers| schedulers.remove(&id));
        drop(scheduler);
    }

    /// A gRPC call stream `context` started as Envoy's callout `callout`: the glue's token
    /// for it. If its answer already came (from inside the start), its delivery is scheduled:
    /// the glue that started it is still running.
    pub fn call_started(&self, context: u32, stream: Stream, callout: u64) -> u32 {
        let mut token = self.last_token.get();
        loop {
            token = token.wrapping_add(1);
            if token != 0 {
                break;
            }
        }
        self.last_token.set(token);
        let ended = match self.calls.try_borrow_mut() {
            Ok(mut calls) => {
                let call = calls.entry((context, callout)).or_default();
                call.token = token;
                call.ended.is_some()
            }
            Err(_) => false,
        };
        if ended {
            self.schedule(context, stream);
        }
        token
    }

    /// Adds to the answer of call `callout` of stream `context`.
    pub fn answer(&self, context: u32, callout: u64, add: impl FnOnce(&mut Answer)) {
        if let Ok(mut calls) = self.calls.try_borrow_mut() {
            add(&mut calls.entry((context, callout)).or_default().answer);
        }
    }

    /// Call `callout` of stream `context` ended (`reset`: without a whole answer). Whether it
    /// can be delivered (its start has returned).
    pub fn call_ended(&self, context: u32, callout: u64, reset: bool) -> bool {
        let Ok(mut calls) = self.calls.try_borrow_mut() else {
            return false;
        };
        let call = calls.entry((context, callout)).or_default();
        if call.ended.is_none() {
            let answer = std::mem::take(&mut call.answer);
            call.ended = Some(if reset {
                (grpc::UNAVAILABLE, Vec::new())
            } else {
                answer.finish()
            });
        }
        call.token != 0
    }

    /// The ended calls of stream `context` whose start has returned, taken out.
    pub fn take_ended(&self, context: u32) -> Vec<Ended> {
        let Ok(mut calls) = self.calls.try_borrow_mut() else {
            return Vec::new();
        };
        let ready: Vec<(u32, u64)> = calls
            .iter()
            .filter(|((c, _), call)| *c == context && call.token != 0 && call.ended.is_some())
            .map(|(key, _)| *key)
            .collect();
        ready
            .into_iter()
            .filter_map(|key| {
                let call = calls.remove(&key)?;
                let (status, message) = call.ended?;
                Some(Ended {
                    token: call.token,
                    status,
                    message,
                })
            })
            .collect()
    }

    /// Runs `on_http_filter_scheduled` for stream `context` once the running hook has ended,
    /// to deliver its ended calls.
    pub fn schedule(&self, context: u32, stream: Stream) {
        let Ok(mut schedulers) = self.schedulers.try_borrow_mut() else {
            return;
        };
        let scheduler = match schedulers.entry(context) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => match stream.scheduler() {
                Some(scheduler) => entry.insert(scheduler),
                None => {
                    log::error!(
                        "tollgate: no scheduler for a request; its rate-limit answer is lost"
                    );
                    return;
                }
            },
        };
        scheduler.commit(u64::from(context));
    }

    /// The live stream `id`, if it is still there.
    pub fn stream(&self, id: u32) -> Option<Stream> {
        self.streams.try_borrow().ok()?.get(&id).copied()
    }

    /// The root's tick every `ms` from `now_ms` on (`Host::set_tick_period_ms`).
    pub fn set_tick_period(&self, ms: u64, now_ms: u64) {
        self.tick_period_ms.set(Some(ms));
        self.next_tick_ms.set(now_ms.saturating_add(ms));
    }

    /// Runs the plugin's tick through `tick` if one is due at `now_ms`: there is no timer, so
    /// a request's headers hook calls this, and the first request after the period runs it.
    pub fn tick_if_due(&self, now_ms: u64, tick: impl FnOnce(&mut Plugin)) {
        let Some(period) = self.tick_period_ms.get() else {
            return;
        };
        if now_ms < self.next_tick_ms.get() {
            return;
        }
        self.next_tick_ms.set(now_ms.saturating_add(period));
        let Ok(mut plugin) = self.plugin.try_borrow_mut() else {
            return;
        };
        tick(&mut plugin);
    }
}

/// The slot of `config` on this worker, made (and `configure`d: its configuration loaded) if
/// this is the configuration's first stream here.
pub fn slot(config: &Arc<Config>, configure: impl FnOnce(&Rc<Slot>)) -> Option<Rc<Slot>> {
    let id = config.id();
    let found = WORKER.with(|worker| worker.try_borrow().ok()?.get(&id).cloned());
    if found.is_some() {
        return found;
    }
    let slot = Rc::new(Slot::new(config));
    configure(&slot);
    WORKER.with(|worker| {
        if let Ok(mut worker) = worker.try_borrow_mut() {
            worker.retain(|_, slot| slot.config.strong_count() > 0);
            worker.insert(id, Rc::clone(&slot));
        }
    });
    Some(slot)
}
