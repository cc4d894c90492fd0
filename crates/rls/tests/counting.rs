//! Counting against a real Redis: all-or-nothing, exactness under concurrency, keys, windows,
//! expiry, and refused input.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeSet;

use common::*;
use envoy_types::pb::google::protobuf::UInt64Value;
use redis::AsyncCommands;
use tonic::Code;

/// Daily windows keep these tests clear of window boundaries.
const DAY_S: u64 = 86_400;

#[tokio::test]
async fn all_descriptors_are_counted_or_none() {
    let redis = Redis::start();
    let rls = Rls::start_ready(&redis.url()).await;
    let mut client = rls.client().await;
    let rate = [("consumer", "acme"), ("limit", "rate_limit")];
    let quota = [("consumer", "acme"), ("limit", "quota")];
    let both = || {
        request(vec![
            descriptor(&rate, Some((5, DAY))),
            descriptor(&quota, Some((3, DAY))),
        ])
    };

    for remaining in [(4, 2), (3, 1), (2, 0)] {
        let r = should(&mut client, both()).await.unwrap();
        assert_eq!(r.overall_code, OK);
        assert_eq!(r.statuses.len(), 2);
        assert_eq!(r.statuses[0].code, OK);
        assert_eq!(r.statuses[1].code, OK);
        assert_eq!(
            (r.statuses[0].limit_remaining, r.statuses[1].limit_remaining),
            remaining
        );
        let limit = r.statuses[0].current_limit.as_ref().unwrap();
        assert_eq!((limit.requests_per_unit, limit.unit), (5, DAY));
    }

    // The quota is used up: the request is refused and the rate limit is not charged for it.
    let r = should(&mut client, both()).await.unwrap();
    assert_eq!(r.overall_code, OVER_LIMIT);
    assert_eq!(r.statuses[0].code, OK);
    assert_eq!(
        r.statuses[0].limit_remaining, 2,
        "as it stands, no increment"
    );
    assert_eq!(r.statuses[1].code, OVER_LIMIT);
    assert_eq!(r.statuses[1].limit_remaining, 0);

    let window = now_s() / DAY_S;
    let mut redis_conn = redis.connection().await;
    let rate_count: u64 = redis_conn.get(key(&rate, DAY_S, window)).await.unwrap();
    let quota_count: u64 = redis_conn.get(key(&quota, DAY_S, window)).await.unwrap();
    assert_eq!((rate_count, quota_count), (3, 3));

    // The rate limit alone still has room.
    let r = should(
        &mut client,
        request(vec![descriptor(&rate, Some((5, DAY)))]),
    )
    .await
    .unwrap();
    assert_eq!(r.overall_code, OK);
    assert_eq!(r.statuses[0].limit_remaining, 1);
}

#[tokio::test]
async fn descriptors_sharing_a_counter_are_checked_against_their_sum() {
    let redis = Redis::start();
    let rls = Rls::start_ready(&redis.url()).await;
    let mut client = rls.client().await;
    let entries = [("consumer", "twice")];
    // Same entries and unit: one counter, which this request raises by 2.
    let twice = || {
        request(vec![
            descriptor(&entries, Some((5, DAY))),
            descriptor(&entries, Some((3, DAY))),
        ])
    };
    let r = should(&mut client, twice()).await.unwrap();
    assert_eq!(r.overall_code, OK);
    assert_eq!(
        (r.statuses[0].limit_remaining, r.statuses[1].limit_remaining),
        (3, 1)
    );
    let r = should(&mut client, twice()).await.unwrap();
    assert_eq!(r.overall_code, OVER_LIMIT, "2 + 2 > 3");
    assert_eq!(r.statuses[0].code, OK);
    assert_eq!(r.statuses[1].code, OVER_LIMIT);
    let count: u64 = redis
        .connection()
        .await
        .get(key(&entries, DAY_S, now_s() / DAY_S))
        .await
        .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn a_concurrent_burst_admits_exactly_the_limit() {
    let redis = Redis::start();
    let rls = Rls::start_ready(&redis.url()).await;
    let entries = [("consumer", "burst"), ("limit", "rate_limit")];
    // A few connections, as several Envoy workers would open.
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(rls.client().await);
    }
    let calls: Vec<_> = (0..60)
        .map(|i| {
            let mut client = clients[i % clients.len()].clone();
            tokio::spawn(async move {
                should(
                    &mut client,
                    request(vec![descriptor(&entries, Some((25, DAY)))]),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut admitted = 0;
    let mut remaining = BTreeSet::new();
    for call in calls {
        let r = call.await.unwrap();
        if r.overall_code == OK {
            admitted += 1;
            remaining.insert(r.statuses[0].limit_remaining);
        } else {
            assert_eq!(r.overall_code, OVER_LIMIT);
            assert_eq!(r.statuses[0].limit_remaining, 0);
        }
    }
    assert_eq!(admitted, 25);
    assert_eq!(
        remaining,
        (0..25).collect::<BTreeSet<u32>>(),
        "each slot once"
    );
    let count: u64 = redis
        .connection()
        .await
        .get(key(&entries, DAY_S, now_s() / DAY_S))
        .await
        .unwrap();
    assert_eq!(count, 25);
}

#[tokio::test]
async fn keys_expire_with_their_window() {
    let redis = Redis::start();
    let rls = Rls::start_ready(&redis.url()).await;
    let mut client = rls.client().await;
    let units = [(SECOND, 1_u64), (MINUTE, 60), (HOUR, 3_600), (DAY, DAY_S)];
    let descriptors = units
        .iter()
        .map(|(unit, _)| descriptor(&[("unit", &unit.to_string())], Some((10, *unit))))
        .collect();
    let before_ms = now_ms();
    let r = should(&mut client, request(descriptors)).await.unwrap();
    assert_eq!(r.overall_code, OK);

    let mut conn = redis.connection().await;
    for (unit, unit_s) in units {
        let unit_ms = unit_s * 1_000;
        let window = before_ms / unit_ms;
        let name = key(&[("unit", &unit.to_string())], unit_s, window);
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&name)
            .query_async(&mut conn)
            .await
            .unwrap();
        if unit_s == 1 && pttl == -2 {
            // The one-second window may have ended, and its key expired, since the call.
            continue;
        }
        assert!(pttl > 0, "{name} has no TTL ({pttl})");
        let pttl = pttl as u64;
        let margin_ms = 5_000;
        assert!(
            pttl <= unit_ms + margin_ms,
            "{name}: TTL {pttl} ms is longer than its window"
        );
        // It expires at the end of the window (plus the margin), give or take the test's latency.
        let expected = (window + 1) * unit_ms + margin_ms - before_ms;
        assert!(
            pttl <= expected && pttl + 2_000 >= expected,
            "{name}: TTL {pttl} ms, expected about {expected} ms"
        );
    }
}

#[tokio::test]
async fn windows_are_aligned_to_the_epoch() {
    let redis = Redis::start();
    let rls = Rls::start_ready(&redis.url()).await;
    let mut client = rls.client().await;
    let mut conn = redis.connection().await;
    for (unit, unit_s) in [(MINUTE, 60_u64), (HOUR, 3_600), (DAY, DAY_S)] {
        let entries = [("aligned", "yes")];
        let before = now_ms();
        let r = should(
            &mut client,
            request(vec![descriptor(&entries, Some((10, unit)))]),
        )
        .await
        .unwrap();
        let after = now_ms();
        assert_eq!(r.overall_code, OK);

        // The key's window index is floor(now / unit).
        let windows = [before / 1_000 / unit_s, after / 1_000 / unit_s];
        let mut found = false;
        for w in windows {
            found |= key_exists(&mut conn, &key(&entries, unit_s, w)).await;
        }
        assert!(found, "no key for window {windows:?} of {unit_s} s");

        // duration_until_reset is the time to the next multiple of the unit (±1 s), never more
        // than one unit, never 0.
        let reset = r.statuses[0].duration_until_reset.unwrap();
        assert_eq!(reset.nanos, 0);
        let reset_s = reset.seconds as u64;
        let to_boundary = unit_s - (before / 1_000) % unit_s;
        assert!((1..=unit_s).contains(&reset_s));
        assert!(
            reset_s.abs_diff(to_boundary) <= 1,
            "reset {reset_s} s, boundary in {to_boundary} s"
        );
    }
}

#[tokio::test]
async fn descriptors_without_a_limit_are_not_counted() {
    let redis = Redis::start();
    let rls = Rls::start_ready(&redis.url()).await;
    let mut client = rls.client().await;
    let mut conn = redis.connection().await;

    let r = should(
        &mut client,
        request(vec![
            descriptor(&[("path", "/a")], None),
            descriptor(&[], None),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(r.overall_code, OK);
    assert_eq!(r.statuses.len(), 2);
    for status in &r.statuses {
        assert_eq!(status.code, OK);
        assert!(status.current_limit.is_none());
        assert!(status.duration_until_reset.is_none());
    }
    let keys: Vec<String> = conn.keys("*").await.unwrap();
    assert!(keys.is_empty(), "keys created: {keys:?}");

    // Mixed with a counted one: only that one gets a key.
    let r = should(
        &mut client,
        request(vec![
            descriptor(&[("path", "/a")], None),
            descriptor(&[("consumer", "c")], Some((2, DAY))),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(r.overall_code, OK);
    assert!(r.statuses[0].current_limit.is_none());
    assert_eq!(r.statuses[1].limit_remaining, 1);
    let keys: Vec<String> = conn.keys("*").await.unwrap();
    assert_eq!(
        keys,
        vec![key(&[("consumer", "c")], DAY_S, now_s() / DAY_S)]
    );
}

#[tokio::test]
async fn hits_addend_and_a_zero_limit() {
    let redis = Redis::start();
    // Above 1 only when allowed (tests/untrusted_input.rs has the refusals).
    let rls = Rls::start_ready_with(&redis.url(), &["--max-hits-addend", "9"]).await;
    let mut client = rls.client().await;
    let entries = [("consumer", "bulk")];

    let mut three = request(vec![descriptor(&entries, Some((5, DAY)))]);
    three.hits_addend = 3;
    let r = should(&mut client, three.clone()).await.unwrap();
    assert_eq!((r.overall_code, r.statuses[0].limit_remaining), (OK, 2));
    let r = should(&mut client, three).await.unwrap();
    assert_eq!(r.overall_code, OVER_LIMIT, "3 + 3 > 5");

    // The descriptor's own hits_addend wins over the request's.
    let mut own = descriptor(&entries, Some((5, DAY)));
    own.hits_addend = Some(UInt64Value { value: 2 });
    let mut r2 = request(vec![own]);
    r2.hits_addend = 9;
    let r = should(&mut client, r2).await.unwrap();
    assert_eq!((r.overall_code, r.statuses[0].limit_remaining), (OK, 0));

    // requests_per_unit 0: always over, nothing counted.
    let zero = request(vec![descriptor(&[("consumer", "none")], Some((0, DAY)))]);
    for _ in 0..2 {
        let r = should(&mut client, zero.clone()).await.unwrap();
        assert_eq!(r.overall_code, OVER_LIMIT);
        assert_eq!(r.statuses[0].limit_remaining, 0);
    }
    let mut conn = redis.connection().await;
    assert!(
        !key_exists(
            &mut conn,
            &key(&[("consumer", "none")], DAY_S, now_s() / DAY_S)
        )
        .await
    );
}

#[tokio::test]
async fn invalid_requests_are_invalid_argument() {
    let redis = Redis::start();
    let rls = Rls::start_ready(&redis.url()).await;
    let mut client = rls.client().await;
    let ok = || descriptor(&[("k", "v")], Some((5, DAY)));

    let mut empty_domain = request(vec![ok()]);
    empty_domain.domain.clear();
    let long = "x".repeat(257);
    let cases = vec![
        ("empty domain", empty_domain),
        (
            "limit without entries",
            request(vec![ok(), descriptor(&[], Some((5, DAY)))]),
        ),
        (
            "unknown unit",
            request(vec![descriptor(&[("k", "v")], Some((5, 0)))]),
        ),
        ("too many descriptors", request(vec![ok(); 17])),
        (
            "value too long",
            request(vec![descriptor(&[("k", &long)], Some((5, DAY)))]),
        ),
        (
            "empty entry key",
            request(vec![descriptor(&[("", "v")], Some((5, DAY)))]),
        ),
    ];
    for (what, bad) in cases {
        let status = should(&mut client, bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    }
    let keys: Vec<String> = redis.connection().await.keys("*").await.unwrap();
    assert!(keys.is_empty(), "a refused request counted: {keys:?}");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn key_exists(conn: &mut redis::aio::MultiplexedConnection, name: &str) -> bool {
    conn.exists(name).await.unwrap()
}
