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
    evaluate, CounterState, CounterStore, Limits, RateHeaders, Refusal, StoreError,
    MAX_CAS_ATTEMPTS, STATE_BYTES,
};

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

/// FNV-1a: stable across VMs and runs, unlike std's randomly keyed hasher.
fn home_slot(owner: &str, pool_size: usize) -> usize {
    let hash = owner.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    usize::try_from(hash % pool_size.max(1) as u64).unwrap_or(0)
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

/// Counts one request of dynamic consumer `owner`.
pub fn admit(
    store: &dyn CounterStore,
    pool: Pool,
    pool_size: usize,
    owner: &str,
    limits: &Limits,
    now_ms: u64,
) -> Result<Option<RateHeaders>, Refusal> {
    let home = home_slot(owner, pool_size);
    for probe in 0..PROBES.min(pool_size) {
        let key = slot_key(pool, (home + probe) % pool_size);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (value, cas) = store.load(&key).map_err(|_| Refusal::Unavailable)?;
            let value = value.unwrap_or_default();
            let (state, holder) = decode(&value);
            let start_from = if holder == owner.as_bytes() {
                state
            } else if holder.is_empty() || state.idle(limits, now_ms) {
                CounterState::default()
            } else {
                break; // held by another active client: try the next slot
            };
            let (next, headers) = evaluate(start_from, limits, now_ms)?;
            match store.store(&key, &encode(&next, owner), cas) {
                Ok(()) => return Ok(headers),
                Err(StoreError::CasMismatch) => continue,
                Err(StoreError::Unavailable) => return Err(Refusal::Unavailable),
            }
        }
    }
    let window_s = limits
        .rate
        .or(limits.quota)
        .map_or(FULL_RETRY_AFTER_S, |limit| limit.renewal_period_s);
    Err(Refusal::RateLimited {
        retry_after_s: FULL_RETRY_AFTER_S.min(window_s).max(1),
    })
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
    fn home_slot_is_stable() {
        assert_eq!(home_slot("jwt:a", 1000), home_slot("jwt:a", 1000));
        assert!(home_slot("jwt:a", 7) < 7);
        assert_eq!(home_slot("x", 0), 0);
    }
}
