//! Counters under arbitrary interleavings: several simulated workers, each with its own clock
//! (skewed a little, earlier or later), count requests of one or more consumers through the
//! real counting functions (`limits::admit` for a configured consumer's entry,
//! `dynamic_consumers::admit` for JWT clients in the pool's buckets) over one in-memory store with
//! proxy-wasm's compare-and-swap. A request can be overtaken: between its read of an entry
//! and its write, other requests (read later, so stamped later) run to completion, and its
//! write then fails its CAS and retries — the race that matters.
//!
//! What must hold, and under which assumption:
//!
//! Let `S` bound how far any worker's clock is from true time, and `D` how long a request
//! takes from reading the clock to its last write (in Envoy: one host clock for every worker,
//! so `S` is about 0, and `D` is microseconds, one synchronous call). Assume `2S + D` is less
//! than the shortest window. Then, for every consumer, in the order admissions were committed:
//!
//! - Rate limit (a window opens at the stamp of the first request after the previous window
//!   ended, and lasts `renewal_period_s`): each admitted request is counted in a window whose
//!   start lies less than one window away from its own stamp (a late writer with an earlier
//!   clock counts in the current window); windows only move forward, each new one starting at
//!   least a whole window after the previous one started, so windows never overlap and none
//!   is ever reopened; and no window admits more than `calls`, counted here, by the test, not
//!   by the implementation (a lost update would show as more admissions than `calls`).
//! - Quota (fixed windows aligned to the epoch): each admitted request is counted in its own
//!   stamp's window or the next (a late writer again); the window number never decreases; no
//!   window number admits more than `calls` over the whole run.
//! - The stored count is always exactly the number of admissions of the current window
//!   (nothing lost, nothing counted twice).
//!
//! Beyond the assumption (a clock set back by more than a window) the implementation starts a
//! new window on purpose; that is not tested here.
//!
//! Dynamic JWT consumers hold these invariants for as long as a client keeps its place in its
//! bucket (a "residency"), whatever the clocks; and per client across residencies (its place
//! taken by another client once its windows ended, then a new one) when `2S + D` is under
//! `HANDOVER_MARGIN_MS`, the time a place stays its holder's after its windows end.

use super::config;
use crate::dynamic_consumers::{self, Pool};
use crate::limits::{self, CounterState, CounterStore, Limit, Limits, StoreError};
use crate::testing::MemoryStore;
use proptest::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

const T0: u64 = 1_800_000_000_000;
const KEY: &str = "tollgate/c/consumer";
/// How far a request read later, while another waits to write, moves the true clock (ms).
const MAX_OVERTAKING_ADVANCE_MS: u64 = 5;
/// Overtaking requests are themselves overtaken at most this deep.
const MAX_DEPTH: usize = 2;

#[derive(Debug, Clone)]
struct Request {
    worker: usize,
    owner: usize,
    /// True time passed since the previous request read its clock.
    advance_ms: u64,
    /// How many of the following requests run between this one's reads and writes (one per
    /// write attempt).
    overtaken_by: u8,
}

/// Where the consumers' counters live.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// One configured consumer, in its own entry.
    Entry,
    /// Dynamic JWT consumers sharing a pool of this many slots.
    Pool(usize),
}

#[derive(Debug)]
struct Admission {
    owner: usize,
    /// Which residency of the client in its bucket it was counted in: a new one each time
    /// the client comes back after another client took its place.
    holding: usize,
    stamp: u64,
    state: CounterState,
}

/// A key and the value written to it.
type Written = (String, Vec<u8>);

/// The store every worker shares, which also schedules the overtaking requests.
struct Simulation {
    store: MemoryStore,
    target: Target,
    limits: Limits,
    offsets: Vec<i64>,
    queue: RefCell<VecDeque<Request>>,
    /// Overtakes left for each request running, innermost last.
    budgets: RefCell<Vec<u8>>,
    true_ms: Cell<u64>,
    /// For each request running, innermost last: its last successful write.
    writes: RefCell<Vec<Option<Written>>>,
    /// The residency each client in a bucket is in now (clients without a place have none).
    residencies: RefCell<HashMap<usize, usize>>,
    next_residency: Cell<usize>,
    /// Writes refused for a stale CAS token, and requests refused: the races happened.
    conflicts: Cell<usize>,
    refusals: Cell<usize>,
    admissions: RefCell<Vec<Admission>>,
}

impl CounterStore for Simulation {
    fn load(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        self.store.load(key)
    }

    fn store(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let overtake = {
            let mut budgets = self.budgets.borrow_mut();
            match budgets.last_mut() {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    true
                }
                _ => false,
            }
        };
        if overtake {
            let next = self.queue.borrow_mut().pop_front();
            if let Some(next) = next {
                self.run(next);
            }
        }
        let before = self.store.load(key)?.0.unwrap_or_default();
        let stored = self.store.store(key, value, cas);
        match stored {
            Ok(()) => {
                if let Some(last) = self.writes.borrow_mut().last_mut() {
                    *last = Some((key.to_string(), value.to_vec()));
                }
                if let Target::Pool(size) = self.target {
                    // A client whose place this write gave to another ends its residency.
                    let name_of = |owner| owner_name(owner);
                    self.residencies.borrow_mut().retain(|&owner, _| {
                        let held = |bytes: &[u8]| {
                            dynamic_consumers::state_in(
                                &self.store,
                                Pool::Local,
                                size,
                                &name_of(owner),
                                bytes,
                            )
                            .is_some()
                        };
                        !held(&before) || held(value)
                    });
                }
            }
            Err(_) => self.conflicts.set(self.conflicts.get() + 1),
        }
        stored
    }
}

fn owner_name(owner: usize) -> String {
    format!("jwt:client-{owner}")
}

impl Simulation {
    fn run(&self, request: Request) {
        let depth = self.budgets.borrow().len();
        let advance = if depth > 0 {
            request.advance_ms.min(MAX_OVERTAKING_ADVANCE_MS)
        } else {
            request.advance_ms
        };
        self.true_ms.set(self.true_ms.get() + advance);
        let stamp = self
            .true_ms
            .get()
            .saturating_add_signed(self.offsets[request.worker]);
        let budget = if depth < MAX_DEPTH {
            request.overtaken_by
        } else {
            0
        };
        self.budgets.borrow_mut().push(budget);
        self.writes.borrow_mut().push(None);
        let counted = match self.target {
            Target::Entry => limits::admit(self, KEY, &self.limits, stamp).is_ok(),
            Target::Pool(size) => dynamic_consumers::admit(
                self,
                Pool::Local,
                size,
                &owner_name(request.owner),
                &self.limits,
                stamp,
            )
            .is_ok(),
        };
        self.budgets.borrow_mut().pop();
        let last_write = self.writes.borrow_mut().pop().flatten();
        if !counted {
            self.refusals.set(self.refusals.get() + 1);
        }
        if counted {
            // An admission's last act is its successful write.
            let (key, value) = last_write.unwrap();
            let (owner, state) = match self.target {
                Target::Entry => (0, CounterState::decode(&value)),
                Target::Pool(size) => {
                    assert!(key.starts_with("tollgate/dp/"), "{key}");
                    let state = dynamic_consumers::state_in(
                        &self.store,
                        Pool::Local,
                        size,
                        &owner_name(request.owner),
                        &value,
                    );
                    (request.owner, state.unwrap())
                }
            };
            let holding = *self
                .residencies
                .borrow_mut()
                .entry(owner)
                .or_insert_with(|| {
                    let next = self.next_residency.get();
                    self.next_residency.set(next + 1);
                    next
                });
            self.admissions.borrow_mut().push(Admission {
                owner,
                holding,
                stamp,
                state,
            });
        }
    }
}

/// A stamp as milliseconds since the simulation's start.
fn ms(stamp: u64) -> i128 {
    i128::from(stamp) - i128::from(T0)
}

/// Checks the invariants of the module comment over admissions of one consumer (or of one
/// holding of a slot), in commit order.
fn check_consumer(limits: &Limits, admissions: &[&Admission]) -> Result<(), String> {
    if let Some(Limit {
        calls,
        renewal_period_s,
    }) = limits.rate
    {
        let window = renewal_period_s * 1000;
        let mut per_start: HashMap<u64, u64> = HashMap::new();
        let mut current: Option<u64> = None;
        for a in admissions {
            let start = a.state.rate_start_ms;
            if !(a.stamp < start + window && a.stamp + window > start) {
                return Err(format!(
                    "stamp {} counted in the window starting {}",
                    ms(a.stamp),
                    ms(start)
                ));
            }
            if let Some(previous) = current {
                if start != previous && start < previous + window {
                    return Err(format!(
                        "window {} opened {} ms after window {}",
                        ms(start),
                        ms(start) - ms(previous),
                        ms(previous)
                    ));
                }
            }
            current = Some(start);
            let n = per_start.entry(start).or_default();
            *n += 1;
            if *n > calls {
                return Err(format!("{n} admitted in the window starting {}", ms(start)));
            }
            if a.state.rate_count != *n {
                return Err(format!(
                    "stored rate count {} after {n} admissions",
                    a.state.rate_count
                ));
            }
        }
    }
    if let Some(Limit {
        calls,
        renewal_period_s,
    }) = limits.quota
    {
        let mut per_window: HashMap<u64, u64> = HashMap::new();
        let mut current = 0;
        for a in admissions {
            let stored = a.state.quota_window;
            let read = a.stamp / 1000 / renewal_period_s;
            if read != stored && read + 1 != stored {
                return Err(format!(
                    "stamp in quota window {read} counted in window {stored}"
                ));
            }
            if stored < current {
                return Err(format!("quota window {stored} after window {current}"));
            }
            current = stored;
            let n = per_window.entry(stored).or_default();
            *n += 1;
            if *n > calls {
                return Err(format!("{n} admitted in quota window {stored}"));
            }
            if a.state.quota_count != *n {
                return Err(format!(
                    "stored quota count {} after {n} admissions",
                    a.state.quota_count
                ));
            }
        }
    }
    Ok(())
}

fn limit(calls: u64, max_period_s: u64) -> impl Strategy<Value = Limit> {
    (1..=calls, 1..=max_period_s).prop_map(|(calls, renewal_period_s)| Limit {
        calls,
        renewal_period_s,
    })
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        limit(5, 3).prop_map(|rate| Limits {
            rate: Some(rate),
            quota: None
        }),
        limit(8, 4).prop_map(|quota| Limits {
            rate: None,
            quota: Some(quota)
        }),
        (limit(4, 3), limit(8, 4)).prop_map(|(rate, quota)| Limits {
            rate: Some(rate),
            quota: Some(quota)
        }),
    ]
}

fn requests(owners: usize) -> impl Strategy<Value = Vec<Request>> {
    let request = (
        0usize..4,
        0..owners,
        prop_oneof![
            6 => 0u64..=5,
            3 => 0u64..=400,
            1 => 500u64..=4000,
        ],
        prop_oneof![6 => Just(0u8), 3 => 1u8..=2, 1 => Just(3u8)],
    )
        .prop_map(|(worker, owner, advance_ms, overtaken_by)| Request {
            worker,
            owner,
            advance_ms,
            overtaken_by,
        });
    prop::collection::vec(request, 1..120)
}

/// Clock offsets of four workers, within a quarter of the shortest window.
fn offsets(limits: &Limits) -> impl Strategy<Value = Vec<i64>> {
    let shortest_s = [limits.rate, limits.quota]
        .into_iter()
        .flatten()
        .map(|l| l.renewal_period_s)
        .min()
        .unwrap_or(1);
    let skew = i64::try_from(shortest_s * 1000 / 4).unwrap();
    prop::collection::vec(-skew..=skew, 4)
}

/// How admissions are grouped for the invariants.
#[derive(Debug, Clone, Copy)]
enum Per {
    /// Each consumer as a whole.
    Consumer,
    /// Each holding of a slot by a consumer.
    Holding,
}

fn simulate(
    target: Target,
    limits: Limits,
    offsets: Vec<i64>,
    requests: Vec<Request>,
    per: Per,
) -> Result<Outcome, TestCaseError> {
    let simulation = Simulation {
        store: MemoryStore::default(),
        target,
        limits,
        offsets,
        queue: RefCell::new(requests.into()),
        budgets: RefCell::new(Vec::new()),
        true_ms: Cell::new(T0),
        writes: RefCell::new(Vec::new()),
        residencies: RefCell::new(HashMap::new()),
        next_residency: Cell::new(0),
        conflicts: Cell::new(0),
        refusals: Cell::new(0),
        admissions: RefCell::new(Vec::new()),
    };
    // Entries exist before any request, as `Plan::prepare_counters` makes them at configure
    // time (a first write without a CAS token would overwrite a concurrent one).
    match target {
        Target::Entry => limits::ensure_entry(&simulation.store, KEY).unwrap(),
        Target::Pool(size) => {
            for key in dynamic_consumers::entry_keys(Pool::Local, size) {
                limits::ensure_entry(&simulation.store, &key).unwrap();
            }
        }
    }
    loop {
        let next = simulation.queue.borrow_mut().pop_front();
        match next {
            Some(request) => simulation.run(request),
            None => break,
        }
    }
    let (refused, conflicts) = (simulation.refusals.get(), simulation.conflicts.get());
    let admissions = simulation.admissions.into_inner();
    prop_assert!(
        !admissions.is_empty(),
        "the first request is always admitted"
    );
    let group = |a: &Admission| match per {
        Per::Consumer => (a.owner, 0),
        Per::Holding => (a.owner, a.holding),
    };
    let groups: std::collections::BTreeSet<(usize, usize)> = admissions.iter().map(group).collect();
    for key in groups {
        let own: Vec<&Admission> = admissions.iter().filter(|a| group(a) == key).collect();
        if let Err(why) = check_consumer(&limits, &own) {
            return Err(TestCaseError::fail(format!(
                "consumer {} ({per:?} {}): {why}",
                key.0, key.1
            )));
        }
    }
    Ok(Outcome {
        admitted: admissions.len(),
        refused,
        conflicts,
    })
}

/// What one simulation came to.
#[derive(Debug, Default)]
struct Outcome {
    admitted: usize,
    refused: usize,
    conflicts: usize,
}

proptest! {
    #![proptest_config(config(256))]

    /// A configured consumer's entry, counted by up to four skewed workers: every invariant
    /// of the module comment, exactly.
    #[test]
    fn an_entry_never_admits_more_than_its_limit(
        (limits, offsets) in limits().prop_flat_map(|l| (Just(l), offsets(&l))),
        requests in requests(1),
    ) {
        simulate(Target::Entry, limits, offsets, requests, Per::Consumer)?;
    }

    /// Dynamic consumers competing for a small pool of slots: while a client holds a slot,
    /// the slot never admits more than the limit, exactly as an entry.
    #[test]
    fn a_dynamic_slot_never_admits_more_than_its_limit(
        (limits, offsets) in limits().prop_flat_map(|l| (Just(l), offsets(&l))),
        pool in 1usize..=3,
        requests in requests(4),
    ) {
        simulate(Target::Pool(pool), limits, offsets, requests, Per::Holding)?;
    }
}

/// The generated schedules do race: writes fail their compare-and-swap and are retried, and
/// limits refuse, so the properties above are not vacuous.
#[test]
fn the_simulations_race_and_refuse() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (
        limits().prop_flat_map(|l| (Just(l), offsets(&l))),
        requests(1),
    );
    let mut total = Outcome::default();
    for _ in 0..200 {
        let ((limits, offsets), requests) = strategy.new_tree(&mut runner).unwrap().current();
        let outcome = simulate(Target::Entry, limits, offsets, requests, Per::Consumer).unwrap();
        total.admitted += outcome.admitted;
        total.refused += outcome.refused;
        total.conflicts += outcome.conflicts;
    }
    println!("200 schedules: {total:?}");
    assert!(
        total.admitted > 0 && total.refused > 0 && total.conflicts > 0,
        "{total:?}"
    );
}

/// The whole invariant per dynamic client, across the slots it holds in turn (a slot is
/// handed to another client, the client moves on): with clocks no further apart than the
/// hand-over margin allows (`2S + D` under `HANDOVER_MARGIN_MS`; in Envoy every worker reads
/// one host clock), a client never counts in two slots at once and never starts a window
/// over by moving.
#[test]
fn a_dynamic_consumer_never_admits_more_than_its_limit() {
    let mut runner = proptest::test_runner::TestRunner::new(config(2048));
    // The deepest overtaking moves the true clock by a few times `MAX_OVERTAKING_ADVANCE_MS`.
    let skew_ms = (dynamic_consumers::HANDOVER_MARGIN_MS / 2).saturating_sub(100) as i64;
    let strategy = (
        limits().prop_flat_map(move |l| {
            let capped = offsets(&l).prop_map(move |offsets| {
                offsets
                    .into_iter()
                    .map(|offset| offset.clamp(-skew_ms, skew_ms))
                    .collect::<Vec<_>>()
            });
            (Just(l), capped)
        }),
        1usize..=3,
        requests(4),
    );
    runner
        .run(&strategy, |((limits, offsets), pool, requests)| {
            simulate(Target::Pool(pool), limits, offsets, requests, Per::Consumer).map(|_| ())
        })
        .unwrap();
}

/// `CounterState::idle` took a slot's quota window as ended when the reader's window was any
/// other number (`!=`), including the one just before it, which `evaluate` counts in the
/// stored window (a late writer). So a late writer of another client can take a slot in the
/// middle of its owner's window, and the owner starts that window over in a fresh slot: up to
/// twice the quota in one window, for a daily quota a whole day's worth. Reading the slot as
/// ended only when the reader's window is later than the stored one closes it.
#[test]
fn a_late_writer_does_not_take_a_slot_whose_quota_window_is_running() {
    let store = MemoryStore::default();
    let key = dynamic_consumers::bucket_key(Pool::Local, 0);
    limits::ensure_entry(&store, &key).unwrap();
    let limits = Limits {
        rate: None,
        quota: Some(Limit {
            calls: 1,
            renewal_period_s: 60,
        }),
    };
    let window_start = T0 - T0 % 60_000 + 60_000;
    let admit = |owner: &str, at: u64| {
        dynamic_consumers::admit(&store, Pool::Local, 1, owner, &limits, at).is_ok()
    };
    // A opens the new window and uses its one call.
    assert!(admit("jwt:a", window_start + 1));
    // B read its clock a moment before the window turned, and writes now: it must not take
    // A's place (the pool is full for B).
    let _ = admit("jwt:b", window_start - 1);
    // Later in the same window, A must still be refused.
    assert!(!admit("jwt:a", window_start + 30_000));
}

/// Two requests of one client, one reading the clock a millisecond after the other, with one
/// host clock, and another client's window ending between them (plus the hand-over margin).
/// With a pool of separately written slots, the earlier request found that client's slot still
/// held and picked an empty one, the later found it free and picked it; each compare-and-swap
/// covered only the slot written, so both succeeded: the client counted in two slots, and both
/// requests were admitted under a limit of one. In a bucket, both write the one entry that
/// holds every place: the second to write fails its compare-and-swap, reads again, finds the
/// client's place, and is refused.
#[test]
fn two_requests_of_one_client_never_claim_two_places() {
    let limits = Limits {
        rate: Some(Limit {
            calls: 1,
            renewal_period_s: 1,
        }),
        quota: None,
    };
    let (other, client) = (0, 1);
    let request = |owner, advance_ms, overtaken_by| Request {
        worker: 0,
        owner,
        advance_ms,
        overtaken_by,
    };
    let margin = dynamic_consumers::HANDOVER_MARGIN_MS;
    let requests = vec![
        // The other client opens a window at T0, in a pool of two places.
        request(other, 0, 0),
        // Just before that window (and the margin) ends, the client finds it running and a
        // free place; before it writes, its next request finds the window over.
        request(client, 999 + margin, 1),
        request(client, 1, 0),
    ];
    let outcome = simulate(Target::Pool(2), limits, vec![0; 4], requests, Per::Consumer).unwrap();
    assert_eq!((outcome.admitted, outcome.refused), (2, 1), "{outcome:?}");
    assert!(outcome.conflicts > 0, "the two requests raced: {outcome:?}");
}
