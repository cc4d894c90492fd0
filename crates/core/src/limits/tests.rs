use super::*;
use crate::testing::MemoryStore;

fn rate(calls: u64, period: u64) -> Limits {
    Limits {
        rate: Some(Limit {
            calls,
            renewal_period_s: period,
        }),
        quota: None,
    }
}

fn quota(calls: u64, period: u64) -> Limits {
    Limits {
        rate: None,
        quota: Some(Limit {
            calls,
            renewal_period_s: period,
        }),
    }
}

const T0: u64 = 1_800_000_000_000; // ms

#[test]
fn state_round_trips() {
    let state = CounterState {
        rate_start_ms: T0,
        rate_count: 3,
        quota_window: 20833,
        quota_count: u64::MAX,
    };
    assert_eq!(CounterState::decode(&state.encode()), state);
    assert_eq!(CounterState::decode(&[1, 2, 3]), CounterState::default());
}

#[test]
fn a_burst_admits_exactly_calls() {
    let store = MemoryStore::default();
    ensure_entry(&store, "c").unwrap();
    let limits = rate(25, 60);
    let admitted = (0..60)
        .filter(|i| admit(&store, "c", &limits, T0 + i).is_ok())
        .count();
    assert_eq!(admitted, 25);
}

#[test]
fn rate_window_edges_and_reset() {
    let limits = rate(2, 10);
    let store = MemoryStore::default();
    assert_eq!(
        admit(&store, "c", &limits, T0 + 500),
        Ok(Some(RateHeaders {
            limit: 2,
            remaining: 1,
            reset_s: 10
        }))
    );
    assert_eq!(
        admit(&store, "c", &limits, T0 + 3_000),
        Ok(Some(RateHeaders {
            limit: 2,
            remaining: 0,
            reset_s: 8
        }))
    );
    // The window opened at T0+500 and lasts 10 s: refused until T0+10_500.
    assert_eq!(
        admit(&store, "c", &limits, T0 + 10_499),
        Err(Refusal::RateLimited { retry_after_s: 1 })
    );
    assert_eq!(
        admit(&store, "c", &limits, T0 + 4_000),
        Err(Refusal::RateLimited { retry_after_s: 7 })
    );
    assert!(admit(&store, "c", &limits, T0 + 10_500).is_ok());
}

#[test]
fn retry_after_is_never_0_nor_above_the_window() {
    let limits = rate(1, 5);
    let store = MemoryStore::default();
    assert!(admit(&store, "c", &limits, T0).is_ok());
    for offset in [0, 1, 999, 1_000, 4_001, 4_999] {
        match admit(&store, "c", &limits, T0 + offset) {
            Err(Refusal::RateLimited { retry_after_s }) => {
                assert!(
                    (1..=5).contains(&retry_after_s),
                    "{offset}: {retry_after_s}"
                )
            }
            other => panic!("{offset}: {other:?}"),
        }
    }
}

#[test]
fn quota_windows_align_to_the_epoch() {
    let day = 86_400;
    let limits = quota(2, day);
    let store = MemoryStore::default();
    // 1_800_000_000 s is 2027-01-15 08:00:00 UTC: 16 h until the next midnight.
    let now = 1_800_000_000_000;
    assert!(admit(&store, "c", &limits, now).is_ok());
    assert_eq!(
        admit(&store, "c", &limits, now),
        Ok(Some(RateHeaders {
            limit: 2,
            remaining: 0,
            reset_s: 16 * 3600
        }))
    );
    assert_eq!(
        admit(&store, "c", &limits, now + 1_000),
        Err(Refusal::QuotaExceeded {
            retry_after_s: 16 * 3600 - 1
        })
    );
    let midnight = (now / 1000 / day + 1) * day * 1000;
    assert_eq!(
        admit(&store, "c", &limits, midnight - 1),
        Err(Refusal::QuotaExceeded { retry_after_s: 1 })
    );
    assert!(admit(&store, "c", &limits, midnight).is_ok());
}

#[test]
fn quota_counts_only_what_the_rate_limit_admitted_and_vice_versa() {
    let limits = Limits {
        rate: Some(Limit {
            calls: 3,
            renewal_period_s: 10,
        }),
        quota: Some(Limit {
            calls: 4,
            renewal_period_s: 3600,
        }),
    };
    let store = MemoryStore::default();
    for _ in 0..3 {
        assert!(admit(&store, "c", &limits, T0).is_ok());
    }
    // Rate-limited requests do not touch the quota...
    for _ in 0..5 {
        assert!(matches!(
            admit(&store, "c", &limits, T0),
            Err(Refusal::RateLimited { .. })
        ));
    }
    assert!(
        admit(&store, "c", &limits, T0 + 10_000).is_ok(),
        "4th of the quota"
    );
    // ...and quota refusals do not use up the rate limit.
    for _ in 0..5 {
        assert!(matches!(
            admit(&store, "c", &limits, T0 + 10_000),
            Err(Refusal::QuotaExceeded { .. })
        ));
    }
    let (value, _) = store.load("c").unwrap();
    let state = CounterState::decode(&value.unwrap());
    assert_eq!((state.rate_count, state.quota_count), (1, 4));
}

#[test]
fn headers_report_the_tightest_limit() {
    let limits = Limits {
        rate: Some(Limit {
            calls: 5,
            renewal_period_s: 60,
        }),
        quota: Some(Limit {
            calls: 3,
            renewal_period_s: 3600,
        }),
    };
    let (_, headers) = evaluate(CounterState::default(), &limits, T0).unwrap();
    assert_eq!(headers.map(|h| (h.limit, h.remaining)), Some((3, 2)));
    let none = Limits::default();
    assert_eq!(
        evaluate(CounterState::default(), &none, T0).unwrap().1,
        None
    );
}

#[test]
fn cas_conflicts_are_retried_and_never_over_admit() {
    let store = MemoryStore::default();
    ensure_entry(&store, "c").unwrap();
    let limits = rate(3, 60);
    store.conflicts.set(5);
    assert!(admit(&store, "c", &limits, T0).is_ok());
    assert_eq!(store.conflicts.get(), 0);
    let (value, _) = store.load("c").unwrap();
    assert_eq!(CounterState::decode(&value.unwrap()).rate_count, 1);
}

#[test]
fn endless_conflicts_deny() {
    let store = MemoryStore::default();
    ensure_entry(&store, "c").unwrap();
    store.conflicts.set(MAX_CAS_ATTEMPTS);
    assert_eq!(
        admit(&store, "c", &rate(3, 60), T0),
        Err(Refusal::Unavailable)
    );
    let (value, _) = store.load("c").unwrap();
    assert_eq!(CounterState::decode(&value.unwrap()).rate_count, 0);
}

#[test]
fn interleaved_workers_never_exceed_the_limit() {
    // Two "workers" read, then both try to write: the second write must fail and retry.
    let store = MemoryStore::default();
    ensure_entry(&store, "c").unwrap();
    let limits = rate(1, 60);
    let (value_a, cas_a) = store.load("c").unwrap();
    let (value_b, cas_b) = store.load("c").unwrap();
    let (next_a, _) = evaluate(CounterState::decode(&value_a.unwrap()), &limits, T0).unwrap();
    let (next_b, _) = evaluate(CounterState::decode(&value_b.unwrap()), &limits, T0).unwrap();
    assert!(store.store("c", &next_a.encode(), cas_a).is_ok());
    assert_eq!(
        store.store("c", &next_b.encode(), cas_b),
        Err(StoreError::CasMismatch)
    );
    assert!(matches!(
        admit(&store, "c", &limits, T0),
        Err(Refusal::RateLimited { .. })
    ));
}

#[test]
fn ensure_entry_never_overwrites() {
    let store = MemoryStore::default();
    assert!(admit(&store, "c", &rate(5, 60), T0).is_ok());
    ensure_entry(&store, "c").unwrap();
    let (value, _) = store.load("c").unwrap();
    assert_eq!(CounterState::decode(&value.unwrap()).rate_count, 1);
}

#[test]
fn create_entries_makes_missing_entries_and_reports_failures() {
    let store = MemoryStore::default();
    assert!(admit(&store, "a", &rate(5, 60), T0).is_ok());
    let keys = vec!["a".to_string(), "b".to_string()];
    assert!(create_entries(&store, &keys).is_empty());
    assert_eq!(store.len(), 2);
    let (value, _) = store.load("a").unwrap();
    assert_eq!(CounterState::decode(&value.unwrap()).rate_count, 1, "kept");
    let keys = vec!["c".to_string()];
    store.conflicts.set(1);
    assert_eq!(
        create_entries(&store, &keys),
        vec![("c", StoreError::CasMismatch)]
    );
}

#[test]
fn a_late_writer_with_an_earlier_clock_never_moves_the_rate_window_back() {
    let store = MemoryStore::default();
    let limits = rate(5, 60);
    // Worker A fills the window opened at T0 + 10 ms.
    for _ in 0..5 {
        assert!(admit(&store, "c", &limits, T0 + 10).is_ok());
    }
    // Worker B read the clock at T0 (before A's first request) and writes now: refused, not
    // a fresh window.
    for _ in 0..5 {
        assert!(matches!(
            admit(&store, "c", &limits, T0),
            Err(Refusal::RateLimited { .. })
        ));
    }
    // A start more than a window ahead (a clock set back) is abandoned, not waited for.
    assert!(admit(&store, "c", &limits, T0 - 61_000).is_ok());
}

#[test]
fn a_late_writer_from_the_previous_quota_window_counts_in_the_current_one() {
    let store = MemoryStore::default();
    let limits = quota(5, 60);
    let window_start = (T0 / 60_000 + 1) * 60_000;
    for _ in 0..5 {
        assert!(admit(&store, "c", &limits, window_start).is_ok());
    }
    // A stamp a millisecond before the window began: the current window, which is full.
    assert!(matches!(
        admit(&store, "c", &limits, window_start - 1),
        Err(Refusal::QuotaExceeded { .. })
    ));
    // A later window starts anew; a much earlier one (a changed period) does too.
    assert!(admit(&store, "c", &limits, window_start + 60_000).is_ok());
}

#[test]
fn a_count_is_given_back_only_in_the_window_it_was_made() {
    let limits = Limits {
        rate: Some(Limit {
            calls: 5,
            renewal_period_s: 60,
        }),
        quota: Some(Limit {
            calls: 9,
            renewal_period_s: 86_400,
        }),
    };
    let store = MemoryStore::default();
    let (_, written) = admit_counted(&store, "c", &limits, T0).unwrap();
    assert!(admit(&store, "c", &limits, T0 + 1).is_ok());
    refund(&store, "c", &limits, &written).unwrap();
    let (value, _) = store.load("c").unwrap();
    let state = CounterState::decode(&value.unwrap());
    assert_eq!((state.rate_count, state.quota_count), (1, 1));
    // A window that has moved on owes nothing.
    let moved = CounterState {
        rate_start_ms: written.rate_start_ms + 60_000,
        quota_window: written.quota_window + 1,
        ..written
    };
    assert_eq!(give_back(moved, &written, &limits), None);
    assert_eq!(
        give_back(CounterState::default(), &CounterState::default(), &limits),
        None,
        "never below zero"
    );
}
