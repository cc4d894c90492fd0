//! Counters under arbitrary interleavings: several simulated workers, each with its own clock
//! (skewed a little, earlier or later), count requests of one or more consumers through the
//! real counting functions (`limits::admit` for a configured consumer's entry,
//! `dynamic_consumers::admit` for JWT clients in the slot pool) over one in-memory store with
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
//! Dynamic JWT consumers hold these invariants per slot: for as long as a client holds one
//! slot, that slot counts exactly as an entry does. Across slots they do not hold today, for
//! two reasons found here (each with an ignored test that shows it, and an ignored property
//! that checks the whole invariant per client): a late writer can take a slot whose quota
//! window is still running, and two requests of one client can each claim a different slot.

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
    /// Which holding of a slot (or entry) it was counted in: a new one each time a client
    /// writes a slot that someone else held last.
    holding: usize,
    stamp: u64,
    state: CounterState,
}

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
    last_write: RefCell<Option<(String, Vec<u8>)>>,
    /// Who holds each key written, and since which holding.
    holders: RefCell<HashMap<String, (usize, usize)>>,
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
        let stored = self.store.store(key, value, cas);
        match stored {
            Ok(()) => *self.last_write.borrow_mut() = Some((key.to_string(), value.to_vec())),
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
        if !counted {
            self.refusals.set(self.refusals.get() + 1);
        }
        if counted {
            // An admission's last act is its successful write.
            let (key, value) = self.last_write.borrow().clone().unwrap();
            if let Target::Pool(_) = self.target {
                assert!(key.starts_with("tollgate/d/"), "{key}");
                assert_eq!(
                    &value[limits::STATE_BYTES..],
                    owner_name(request.owner).as_bytes()
                );
            }
            let owner = match self.target {
                Target::Entry => 0,
                Target::Pool(_) => request.owner,
            };
            let holding = {
                let mut holders = self.holders.borrow_mut();
                let next = holders.len() + self.admissions.borrow().len();
                match holders.get(&key) {
                    Some(&(holder, holding)) if holder == owner => holding,
                    _ => {
                        holders.insert(key, (owner, next));
                        next
                    }
                }
            };
            self.admissions.borrow_mut().push(Admission {
                owner,
                holding,
                stamp,
                state: CounterState::decode(&value),
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
        last_write: RefCell::new(None),
        holders: RefCell::new(HashMap::new()),
        conflicts: Cell::new(0),
        refusals: Cell::new(0),
        admissions: RefCell::new(Vec::new()),
    };
    // Entries exist before any request, as `Plan::prepare_counters` makes them at configure
    // time (a first write without a CAS token would overwrite a concurrent one).
    match target {
        Target::Entry => limits::ensure_entry(&simulation.store, KEY).unwrap(),
        Target::Pool(size) => {
            for slot in 0..size {
                let key = dynamic_consumers::slot_key(Pool::Local, slot);
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

/// The whole invariant per dynamic client, across the slots it holds in turn. Still fails
/// (within a few hundred cases) for the reason `two_requests_of_one_client_never_claim_two_slots`
/// shows: a known defect, not fixed yet (the late-writer one below is).
#[test]
#[ignore = "known defect: a client can count in two slots at once (see below)"]
fn a_dynamic_consumer_never_admits_more_than_its_limit() {
    let mut runner = proptest::test_runner::TestRunner::new(config(2048));
    let strategy = (
        limits().prop_flat_map(|l| (Just(l), offsets(&l))),
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
    let key = dynamic_consumers::slot_key(Pool::Local, 0);
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
    // A's slot (the pool is full for B).
    let _ = admit("jwt:b", window_start - 1);
    // Later in the same window, A must still be refused.
    assert!(!admit("jwt:a", window_start + 30_000));
}

/// Two requests of one client, one reading the clock a millisecond after the other, with one
/// host clock: the earlier finds the first slot of its probes still held by another client
/// and picks the second, empty one; the later finds the first slot's window just ended and
/// picks it. Each write's compare-and-swap covers only the slot written, so both succeed: the
/// client now counts in two slots, and both requests are admitted under a limit of one.
#[test]
#[ignore = "known defect, not fixed yet: two requests of one client can each claim a different slot"]
fn two_requests_of_one_client_never_claim_two_slots() {
    let limits = Limits {
        rate: Some(Limit {
            calls: 1,
            renewal_period_s: 1,
        }),
        quota: None,
    };
    // Two clients whose probes start at the same slot of a pool of 2.
    let home = |owner: usize| {
        let store = MemoryStore::default();
        for slot in 0..2 {
            limits::ensure_entry(&store, &dynamic_consumers::slot_key(Pool::Local, slot)).unwrap();
        }
        dynamic_consumers::admit(&store, Pool::Local, 2, &owner_name(owner), &limits, T0).unwrap();
        (0..2)
            .find(|&slot| {
                let (value, _) = store
                    .load(&dynamic_consumers::slot_key(Pool::Local, slot))
                    .unwrap();
                value.unwrap()[limits::STATE_BYTES..] == *owner_name(owner).as_bytes()
            })
            .unwrap()
    };
    let other = 0;
    let client = (1..10).find(|&c| home(c) == home(other)).unwrap();
    let request = |owner, advance_ms, overtaken_by| Request {
        worker: 0,
        owner,
        advance_ms,
        overtaken_by,
    };
    let requests = vec![
        // The other client opens a window in the shared first slot at T0.
        request(other, 0, 0),
        // At T0 + 999 ms the client finds it still running, and picks the empty slot; before
        // it writes, its next request (T0 + 1000 ms) finds the window over and takes it.
        request(client, 999, 1),
        request(client, 1, 0),
    ];
    let result = simulate(Target::Pool(2), limits, vec![0; 4], requests, Per::Consumer);
    assert!(result.is_ok(), "{result:?}");
}
