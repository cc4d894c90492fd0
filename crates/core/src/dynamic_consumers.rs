//! Counters for dynamic JWT consumers (`jwt:<client>`, admitted through `jwt.default_product`)
//! in a fixed pool of store entries, so memory stays bounded whoever calls.
//!
//! A client's counters live in one of `PROBES` slots starting at a hash of its id (the same on
//! every worker). A slot names its owner; a free slot, or one whose owner's windows have all
//! ended, is claimed with compare-and-swap. When every slot a client may use is held by an
//! active client, the request is refused with 429 and a `Retry-After`: the pool is full until
//! someone's window ends. The pool size is `jwt.max_dynamic_consumers`.

use crate::config_error::ConfigError;
use crate::limits::{
    evaluate, give_back, CounterState, CounterStore, Limits, RateHeaders, Refusal, StoreError,
    MAX_CAS_ATTEMPTS, STATE_BYTES,
};
use siphasher::sip::SipHasher13;
use std::hash::Hasher;

pub const DEFAULT_POOL_SIZE: usize = 1000;
pub const MAX_POOL_SIZE: u64 = 100_000;
/// Slots a client may use, from its home slot on.
pub const PROBES: usize = 8;
/// `Retry-After` when the pool is full, at most the window length.
pub const FULL_RETRY_AFTER_S: u64 = 60;

/// `jwt.max_dynamic_consumers`, checked: 1 to `MAX_POOL_SIZE` slots.
pub fn pool_size(configured: Option<u64>) -> Result<usize, ConfigError> {
    let size = configured.unwrap_or(DEFAULT_POOL_SIZE as u64);
    if !(1..=MAX_POOL_SIZE).contains(&size) {
        return Err(ConfigError::rule(
            "jwt.max_dynamic_consumers",
            format!("must be between 1 and {MAX_POOL_SIZE}"),
        ));
    }
    Ok(usize::try_from(size).unwrap_or(1))
}

/// Which pool: the one for the product's local limits, or the one that stands in for the
/// rate-limit service when it fails (`failure_mode: local`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    Local,
    GlobalFallback,
}

pub fn slot_key(pool: Pool, index: usize) -> String {
    match pool {
        Pool::Local => format!("tollgate/d/{index}"),
        Pool::GlobalFallback => format!("tollgate/dg/{index}"),
    }
}

/// Where the pool's hash key lives: one per Envoy process, so every worker finds a client's
/// slots in the same place; random, so nobody can choose client ids that collide.
pub const POOL_KEY: &str = "tollgate/d/key";

/// Creates the pool's hash key if there is none (at configure time, like the counters).
pub fn create_pool_key(store: &dyn CounterStore) -> Result<(), StoreError> {
    if store.load(POOL_KEY)?.0.is_some() {
        return Ok(());
    }
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).map_err(|_| StoreError::Unavailable)?;
    store.store(POOL_KEY, &key, None)
}

/// The first slot a client may use: SipHash-1-3 of its id under the process's pool key (read
/// per request, so all workers agree once configure has run; all zeros until it has).
fn home_slot(store: &dyn CounterStore, owner: &str, pool_size: usize) -> Result<usize, Refusal> {
    let stored = store.load(POOL_KEY).map_err(|_| Refusal::Unavailable)?.0;
    let mut key = [0u8; 16];
    if let Some(stored) = stored {
        for (byte, from) in key.iter_mut().zip(stored) {
            *byte = from;
        }
    }
    let mut hasher = SipHasher13::new_with_key(&key);
    hasher.write(owner.as_bytes());
    Ok(usize::try_from(hasher.finish() % pool_size.max(1) as u64).unwrap_or(0))
}

fn encode(state: &CounterState, owner: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(STATE_BYTES + owner.len());
    bytes.extend_from_slice(&state.encode());
    bytes.extend_from_slice(owner.as_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> (CounterState, &[u8]) {
    (
        CounterState::decode(bytes),
        bytes.get(STATE_BYTES..).unwrap_or_default(),
    )
}

/// Counts one request of dynamic consumer `owner`; returns the headers and the state written.
pub fn admit(
    store: &dyn CounterStore,
    pool: Pool,
    pool_size: usize,
    owner: &str,
    limits: &Limits,
    now_ms: u64,
) -> Result<(Option<RateHeaders>, CounterState), Refusal> {
    let size = pool_size.max(1);
    let home = home_slot(store, owner, size)?;
    for _ in 0..MAX_CAS_ATTEMPTS {
        // The client's own slot wins over a free one, wherever it is among its probes: a
        // client that moved on while its home slot was busy must not come back to a fresh
        // counter there when the slot frees (and so escape its exhausted window).
        let mut own = None;
        let mut free = None;
        for probe in 0..PROBES.min(size) {
            let key = slot_key(pool, (home + probe) % size);
            let (value, cas) = store.load(&key).map_err(|_| Refusal::Unavailable)?;
            let value = value.unwrap_or_default();
            let (state, holder) = decode(&value);
            if holder == owner.as_bytes() {
                own = Some((key, state, cas));
                break;
            }
            if free.is_none() && (holder.is_empty() || state.idle(limits, now_ms)) {
                free = Some((key, CounterState::default(), cas));
            }
        }
        let Some((key, start_from, cas)) = own.or(free) else {
            return Err(pool_full(limits));
        };
        let (next, headers) = evaluate(start_from, limits, now_ms)?;
        match store.store(&key, &encode(&next, owner), cas) {
            Ok(()) => return Ok((headers, next)),
            // Someone wrote one of the slots since: look again.
            Err(StoreError::CasMismatch) => continue,
            Err(StoreError::Unavailable) => return Err(Refusal::Unavailable),
        }
    }
    Err(Refusal::Unavailable)
}

/// Takes back one request of `owner` counted at `written`, in its own slot if it still holds
/// one (see `limits::give_back`).
pub fn refund(
    store: &dyn CounterStore,
    pool: Pool,
    pool_size: usize,
    owner: &str,
    limits: &Limits,
    written: &CounterState,
) -> Result<(), StoreError> {
    let size = pool_size.max(1);
    let home = home_slot(store, owner, size).map_err(|_| StoreError::Unavailable)?;
    for _ in 0..MAX_CAS_ATTEMPTS {
        let mut own = None;
        for probe in 0..PROBES.min(size) {
            let key = slot_key(pool, (home + probe) % size);
            let (value, cas) = store.load(&key)?;
            let value = value.unwrap_or_default();
            let (state, holder) = decode(&value);
            if holder == owner.as_bytes() {
                own = Some((key, state, cas));
                break;
            }
        }
        let Some((key, state, cas)) = own else {
            return Ok(());
        };
        let Some(next) = give_back(state, written, limits) else {
            return Ok(());
        };
        match store.store(&key, &encode(&next, owner), cas) {
            Err(StoreError::CasMismatch) => continue,
            done => return done,
        }
    }
    Err(StoreError::Unavailable)
}

/// Every slot the client may use is held by an active client: wait for a window to end.
fn pool_full(limits: &Limits) -> Refusal {
    let window_s = limits
        .rate
        .or(limits.quota)
        .map_or(FULL_RETRY_AFTER_S, |limit| limit.renewal_period_s);
    Refusal::RateLimited {
        retry_after_s: FULL_RETRY_AFTER_S.min(window_s).max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limit;
    use crate::testing::MemoryStore;

    fn limits() -> Limits {
        Limits {
            rate: Some(Limit {
                calls: 2,
                renewal_period_s: 10,
            }),
            quota: None,
        }
    }

    #[test]
    fn each_client_counts_on_its_own() {
        let store = MemoryStore::default();
        for _ in 0..2 {
            assert!(admit(&store, Pool::Local, 16, "jwt:a", &limits(), 0).is_ok());
            assert!(admit(&store, Pool::Local, 16, "jwt:b", &limits(), 0).is_ok());
        }
        assert!(matches!(
            admit(&store, Pool::Local, 16, "jwt:a", &limits(), 0),
            Err(Refusal::RateLimited { .. })
        ));
        assert!(admit(&store, Pool::Local, 16, "jwt:a", &limits(), 10_000).is_ok());
    }

    #[test]
    fn a_full_pool_refuses_newcomers_until_a_window_ends() {
        let store = MemoryStore::default();
        // Pool of 3: the first three clients take every slot.
        for client in ["jwt:a", "jwt:b", "jwt:c"] {
            assert!(
                admit(&store, Pool::Local, 3, client, &limits(), 0).is_ok(),
                "{client}"
            );
        }
        assert_eq!(
            admit(&store, Pool::Local, 3, "jwt:d", &limits(), 1_000),
            Err(Refusal::RateLimited { retry_after_s: 10 })
        );
        assert!(store.len() <= 3, "memory stays bounded");
        // Once the others' windows have ended, the newcomer takes a slot over.
        assert!(admit(&store, Pool::Local, 3, "jwt:d", &limits(), 10_000).is_ok());
        assert!(store.len() <= 3);
    }

    #[test]
    fn many_clients_never_grow_the_store_past_the_pool() {
        let store = MemoryStore::default();
        for n in 0..500 {
            let _ = admit(
                &store,
                Pool::Local,
                50,
                &format!("jwt:client-{n}"),
                &limits(),
                0,
            );
        }
        assert!(store.len() <= 50);
    }

    #[test]
    fn home_slot_is_stable_and_keyed() {
        let store = MemoryStore::default();
        create_pool_key(&store).unwrap();
        let home = |owner, size| home_slot(&store, owner, size).unwrap();
        assert_eq!(home("jwt:a", 1000), home("jwt:a", 1000));
        assert!(home("jwt:a", 7) < 7);
        assert_eq!(home("x", 0), 0);
        let (key, _) = store.load(POOL_KEY).unwrap();
        create_pool_key(&store).unwrap();
        assert_eq!(
            store.load(POOL_KEY).unwrap().0,
            key,
            "an existing key is kept"
        );
        // Another process (another key) puts the same clients elsewhere.
        let other = MemoryStore::default();
        create_pool_key(&other).unwrap();
        let spread = |store: &MemoryStore| -> Vec<usize> {
            (0..32)
                .map(|n| home_slot(store, &format!("jwt:{n}"), 1000).unwrap())
                .collect()
        };
        assert_ne!(spread(&store), spread(&other));
    }

    #[test]
    fn a_client_in_a_later_slot_never_escapes_its_window_through_its_freed_home() {
        let store = MemoryStore::default();
        create_pool_key(&store).unwrap();
        // Two clients with the same home slot in a pool of 2.
        let home_of = |owner: &str| home_slot(&store, owner, 2).unwrap();
        let first = "jwt:a".to_string();
        let second = (0..)
            .map(|n| format!("jwt:b{n}"))
            .find(|owner| home_of(owner) == home_of(&first))
            .unwrap();
        let limits = Limits {
            rate: Some(Limit {
                calls: 2,
                renewal_period_s: 10,
            }),
            quota: None,
        };
        let t0 = 1_800_000_000_000;
        assert!(admit(&store, Pool::Local, 2, &first, &limits, t0).is_ok());
        // The second client lives in the other slot and uses up its window.
        for _ in 0..2 {
            assert!(admit(&store, Pool::Local, 2, &second, &limits, t0 + 5_000).is_ok());
        }
        // At 10 s the first client's window is over (its home slot is idle), the second
        // client's is not: it stays refused.
        assert!(matches!(
            admit(&store, Pool::Local, 2, &second, &limits, t0 + 10_000),
            Err(Refusal::RateLimited { .. })
        ));
        assert!(admit(&store, Pool::Local, 2, &second, &limits, t0 + 15_000).is_ok());
    }
}
