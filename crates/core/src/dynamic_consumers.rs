//! Counters for dynamic JWT consumers (`jwt:<client>`, admitted through `jwt.default_product`)
//! in a fixed set of store entries, so memory stays bounded whoever calls.
//!
//! The pool is cut into buckets of up to `BUCKET_PLACES` places; a client belongs to one
//! bucket (a keyed hash of its id, the same on every worker) and its counters live in a place
//! of that bucket's entry, tagged with a second keyed hash of its id. Every change to a
//! client's counters is one compare-and-swap of that one entry, so two requests of one client
//! can never count in two places: the race a pool of separately written slots has (one
//! request reads a slot as held, another a moment later as free, and each claims a different
//! one) cannot happen. A newcomer takes a free place, or the place of a client whose windows
//! all ended at least `HANDOVER_MARGIN_MS` ago; when every place of its bucket is held by an
//! active client, the request is refused with 429 and a `Retry-After`: the bucket is full until
//! someone's window ends. The pool size is `jwt.max_dynamic_consumers`.

use crate::config_error::ConfigError;
use crate::limits::{
    evaluate, give_back, CounterState, CounterStore, Limits, RateHeaders, Refusal, StoreError,
    MAX_CAS_ATTEMPTS, STATE_BYTES,
};
use siphasher::sip128::{Hasher128, SipHasher13};
use std::hash::Hasher;

pub const DEFAULT_POOL_SIZE: usize = 1000;
pub const MAX_POOL_SIZE: u64 = 100_000;
/// Places per bucket: the clients a newcomer may have to wait behind.
pub const BUCKET_PLACES: usize = 8;
/// `Retry-After` when the bucket is full, at most the window length.
pub const FULL_RETRY_AFTER_S: u64 = 60;
/// How long after its windows end a place stays its holder's. A request of the holder that read
/// the clock just before the end (and writes just after) must still find its counters: taken
/// over at once, the holder would start a fresh window while its last one runs.
pub const HANDOVER_MARGIN_MS: u64 = 1000;

const TAG_BYTES: usize = 16;
const PLACE_BYTES: usize = TAG_BYTES + STATE_BYTES;

/// `jwt.max_dynamic_consumers`, checked: 1 to `MAX_POOL_SIZE` places.
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

fn bucket_count(pool_size: usize) -> usize {
    pool_size.max(1).div_ceil(BUCKET_PLACES)
}

/// Places in bucket `index`: `BUCKET_PLACES`, fewer in the last so the pool holds exactly
/// `pool_size` clients.
fn bucket_places(pool_size: usize, index: usize) -> usize {
    pool_size
        .max(1)
        .saturating_sub(index.saturating_mul(BUCKET_PLACES))
        .min(BUCKET_PLACES)
}

pub fn bucket_key(pool: Pool, index: usize) -> String {
    match pool {
        Pool::Local => format!("tollgate/dp/{index}"),
        Pool::GlobalFallback => format!("tollgate/dpg/{index}"),
    }
}

/// Every entry a pool of `pool_size` clients uses (created at configure time).
pub fn entry_keys(pool: Pool, pool_size: usize) -> impl Iterator<Item = String> {
    (0..bucket_count(pool_size)).map(move |index| bucket_key(pool, index))
}

/// Where the pool's hash key lives: one per Envoy process, so every worker finds a client in
/// the same place; random, so nobody can choose client ids that collide.
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

/// Where a client's counters are: its bucket's entry, the bucket's places, and its tag there.
struct Home {
    key: String,
    places: usize,
    tag: [u8; TAG_BYTES],
}

/// SipHash-1-3 (128 bits) of the client's id under the process's pool key (read per request,
/// so all workers agree once configure has run; all zeros until it has): one half picks the
/// bucket, the whole is the tag.
fn home(
    store: &dyn CounterStore,
    pool: Pool,
    pool_size: usize,
    owner: &str,
) -> Result<Home, StoreError> {
    let stored = store.load(POOL_KEY)?.0;
    let mut key = [0u8; 16];
    if let Some(stored) = stored {
        for (byte, from) in key.iter_mut().zip(stored) {
            *byte = from;
        }
    }
    let mut hasher = SipHasher13::new_with_key(&key);
    hasher.write(owner.as_bytes());
    let hash = hasher.finish128();
    let buckets = bucket_count(pool_size) as u64;
    let index = usize::try_from(hash.h1 % buckets).unwrap_or(0);
    Ok(Home {
        key: bucket_key(pool, index),
        places: bucket_places(pool_size, index),
        tag: hash.as_bytes(),
    })
}

/// One client's counters in a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    tag: [u8; TAG_BYTES],
    state: CounterState,
}

/// The places in an entry's value (a partial place at the end, such as the empty counter that
/// configure time creates, holds no one).
fn decode_bucket(bytes: &[u8]) -> Vec<Place> {
    bytes
        .chunks_exact(PLACE_BYTES)
        .map(|chunk| {
            let (tag_bytes, state) = chunk.split_at(TAG_BYTES);
            let mut tag = [0u8; TAG_BYTES];
            tag.copy_from_slice(tag_bytes);
            Place {
                tag,
                state: CounterState::decode(state),
            }
        })
        .collect()
}

fn encode_bucket(places: &[Place]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(places.len() * PLACE_BYTES);
    for place in places {
        bytes.extend_from_slice(&place.tag);
        bytes.extend_from_slice(&place.state.encode());
    }
    bytes
}

/// What a bucket entry's value holds for `owner`.
#[cfg(test)]
pub fn state_in(
    store: &dyn CounterStore,
    pool: Pool,
    pool_size: usize,
    owner: &str,
    value: &[u8],
) -> Option<CounterState> {
    let home = home(store, pool, pool_size, owner).ok()?;
    decode_bucket(value)
        .into_iter()
        .find(|place| place.tag == home.tag)
        .map(|place| place.state)
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
    let home = home(store, pool, pool_size, owner).map_err(|_| Refusal::Unavailable)?;
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (value, cas) = store.load(&home.key).map_err(|_| Refusal::Unavailable)?;
        let mut places = decode_bucket(&value.unwrap_or_default());
        let Some(index) = place_for(&mut places, &home, limits, now_ms) else {
            return Err(pool_full(limits));
        };
        let Some(place) = places.get_mut(index) else {
            return Err(Refusal::Unavailable);
        };
        let (next, headers) = evaluate(place.state, limits, now_ms)?;
        place.state = next;
        match store.store(&home.key, &encode_bucket(&places), cas) {
            Ok(()) => return Ok((headers, next)),
            // Someone wrote the bucket since: look again.
            Err(StoreError::CasMismatch) => continue,
            Err(StoreError::Unavailable) => return Err(Refusal::Unavailable),
        }
    }
    Err(Refusal::Unavailable)
}

/// The client's place in `places`, made if it has none: a free one, else the first whose
/// holder's windows all ended a margin ago (taken over with fresh counters). `None` when the
/// bucket is full of active clients.
fn place_for(places: &mut Vec<Place>, home: &Home, limits: &Limits, now_ms: u64) -> Option<usize> {
    if let Some(index) = places.iter().position(|place| place.tag == home.tag) {
        return Some(index);
    }
    let fresh = Place {
        tag: home.tag,
        state: CounterState::default(),
    };
    if places.len() < home.places {
        let index = places.len();
        places.push(fresh);
        return Some(index);
    }
    let handed_over_at = now_ms.saturating_sub(HANDOVER_MARGIN_MS);
    let index = places
        .iter()
        .position(|place| place.state.idle(limits, handed_over_at))?;
    let place = places.get_mut(index)?;
    *place = fresh;
    Some(index)
}

/// Takes back one request of `owner` counted at `written`, if the client still has its place
/// (see `limits::give_back`).
pub fn refund(
    store: &dyn CounterStore,
    pool: Pool,
    pool_size: usize,
    owner: &str,
    limits: &Limits,
    written: &CounterState,
) -> Result<(), StoreError> {
    let home = home(store, pool, pool_size, owner)?;
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (value, cas) = store.load(&home.key)?;
        let mut places = decode_bucket(&value.unwrap_or_default());
        let Some(place) = places.iter_mut().find(|place| place.tag == home.tag) else {
            return Ok(());
        };
        let Some(next) = give_back(place.state, written, limits) else {
            return Ok(());
        };
        place.state = next;
        match store.store(&home.key, &encode_bucket(&places), cas) {
            Err(StoreError::CasMismatch) => continue,
            done => return done,
        }
    }
    Err(StoreError::Unavailable)
}

/// Every place of the client's bucket is held by an active client: wait for a window to end.
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

    fn admitted(store: &MemoryStore, size: usize, owner: &str, at: u64) -> bool {
        admit(store, Pool::Local, size, owner, &limits(), at).is_ok()
    }

    #[test]
    fn each_client_counts_on_its_own() {
        let store = MemoryStore::default();
        for _ in 0..2 {
            assert!(admitted(&store, 16, "jwt:a", 0));
            assert!(admitted(&store, 16, "jwt:b", 0));
        }
        assert!(matches!(
            admit(&store, Pool::Local, 16, "jwt:a", &limits(), 0),
            Err(Refusal::RateLimited { .. })
        ));
        assert!(admitted(&store, 16, "jwt:a", 10_000));
    }

    #[test]
    fn a_full_pool_refuses_newcomers_until_a_window_ends_and_a_margin_passes() {
        let store = MemoryStore::default();
        // Pool of 3: one bucket of three places, taken by the first three clients.
        for client in ["jwt:a", "jwt:b", "jwt:c"] {
            assert!(admitted(&store, 3, client, 0), "{client}");
        }
        assert_eq!(
            admit(&store, Pool::Local, 3, "jwt:d", &limits(), 1_000),
            Err(Refusal::RateLimited { retry_after_s: 10 })
        );
        // Not at the very end of the others' windows (their late requests may still write)...
        assert!(!admitted(&store, 3, "jwt:d", 10_000));
        // ...but once the hand-over margin has passed, the newcomer takes a place over.
        assert!(admitted(&store, 3, "jwt:d", 11_000));
        assert_eq!(store.len(), 1, "memory stays bounded");
        let (value, _) = store.load(&bucket_key(Pool::Local, 0)).unwrap();
        assert_eq!(value.unwrap().len(), 3 * PLACE_BYTES);
    }

    #[test]
    fn the_pool_holds_exactly_its_size() {
        assert_eq!(bucket_count(10), 2);
        assert_eq!(bucket_places(10, 0), 8);
        assert_eq!(bucket_places(10, 1), 2);
        assert_eq!(bucket_count(16), 2);
        assert_eq!(bucket_places(16, 1), 8);
        assert_eq!(bucket_count(1), 1);
        assert_eq!(bucket_places(1, 0), 1);
        assert_eq!(
            entry_keys(Pool::GlobalFallback, 9).collect::<Vec<_>>(),
            ["tollgate/dpg/0", "tollgate/dpg/1"]
        );
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
        assert!(store.len() <= bucket_count(50));
        let held: usize = entry_keys(Pool::Local, 50)
            .map(|key| store.load(&key).unwrap().0.unwrap_or_default().len() / PLACE_BYTES)
            .sum();
        assert_eq!(held, 50, "every place taken, none more");
    }

    #[test]
    fn home_is_stable_and_keyed() {
        let store = MemoryStore::default();
        create_pool_key(&store).unwrap();
        let of =
            |store: &MemoryStore, owner: &str, size| home(store, Pool::Local, size, owner).unwrap();
        assert_eq!(of(&store, "jwt:a", 1000).tag, of(&store, "jwt:a", 1000).tag);
        assert_eq!(of(&store, "jwt:a", 1000).key, of(&store, "jwt:a", 1000).key);
        assert_ne!(of(&store, "jwt:a", 1000).tag, of(&store, "jwt:b", 1000).tag);
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
        let spread = |store: &MemoryStore| -> Vec<String> {
            (0..32)
                .map(|n| of(store, &format!("jwt:{n}"), 1000).key)
                .collect()
        };
        assert_ne!(spread(&store), spread(&other));
    }

    #[test]
    fn a_returning_client_whose_place_was_taken_is_a_newcomer() {
        let store = MemoryStore::default();
        let t0 = 1_800_000_000_000;
        // A pool of one place.
        assert!(admitted(&store, 1, "jwt:a", t0));
        assert!(!admitted(&store, 1, "jwt:b", t0 + 5_000));
        assert!(admitted(&store, 1, "jwt:b", t0 + 11_000));
        // a comes back while b's window runs: the bucket is full for a.
        assert_eq!(
            admit(&store, Pool::Local, 1, "jwt:a", &limits(), t0 + 12_000),
            Err(Refusal::RateLimited { retry_after_s: 10 })
        );
        let (value, _) = store.load(&bucket_key(Pool::Local, 0)).unwrap();
        let value = value.unwrap();
        assert!(state_in(&store, Pool::Local, 1, "jwt:a", &value).is_none());
        assert_eq!(
            state_in(&store, Pool::Local, 1, "jwt:b", &value).map(|s| s.rate_count),
            Some(1)
        );
    }

    #[test]
    fn a_refund_takes_back_the_count_in_the_clients_place() {
        let store = MemoryStore::default();
        let (_, written) = admit(&store, Pool::Local, 8, "jwt:a", &limits(), 0).unwrap();
        assert!(admitted(&store, 8, "jwt:b", 0));
        refund(&store, Pool::Local, 8, "jwt:a", &limits(), &written).unwrap();
        let (value, _) = store.load(&bucket_key(Pool::Local, 0)).unwrap();
        let value = value.unwrap();
        assert_eq!(
            state_in(&store, Pool::Local, 8, "jwt:a", &value).map(|s| s.rate_count),
            Some(0)
        );
        assert_eq!(
            state_in(&store, Pool::Local, 8, "jwt:b", &value).map(|s| s.rate_count),
            Some(1)
        );
        // A client without a place has nothing to give back.
        refund(&store, Pool::Local, 8, "jwt:c", &limits(), &written).unwrap();
    }

    #[test]
    fn a_damaged_entry_is_read_whole_places_only() {
        let place = Place {
            tag: [7; TAG_BYTES],
            state: CounterState::default(),
        };
        let mut bytes = encode_bucket(&[place]);
        bytes.extend_from_slice(&[1, 2, 3]);
        assert_eq!(decode_bucket(&bytes), vec![place]);
        assert!(decode_bucket(&[]).is_empty());
        // What configure time creates: an empty counter, shorter than a place.
        assert!(decode_bucket(&CounterState::default().encode()).is_empty());
    }
}
