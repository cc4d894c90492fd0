//! A process-wide counter store with proxy-wasm shared-data semantics, for a host that has no
//! shared data of its own (the native module: Envoy's dynamic-module ABI has none). The wasm
//! filter uses Envoy's shared data instead (`proxy.rs`).
//!
//! The semantics are Envoy's `SharedData` (source/extensions/common/wasm/context.cc), which the
//! core's counting relies on:
//! - `load` gives the value and its CAS token, `(None, None)` for a key never written;
//! - `store` with a token writes only if the entry still carries it (else `CasMismatch`);
//!   without one (or for a key not there yet) it writes unconditionally;
//! - every write takes a new token from one process-wide sequence that never gives 0;
//! - entries are never deleted.
//!
//! The map is split in shards, each behind its own mutex, so workers counting different
//! consumers rarely wait for each other; a shard is locked only for one lookup or one insert.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tollgate_core::{CounterStore, StoreError};

/// Shards of the map: enough that two workers rarely contend, few enough to stay small.
const SHARDS: usize = 16;

type Entries = HashMap<String, (Vec<u8>, u32)>;

/// The store. One per process (in a `static`), shared by every worker.
#[derive(Debug)]
pub struct SharedStore {
    shards: [Mutex<Entries>; SHARDS],
    /// The last CAS token given.
    last_cas: AtomicU32,
}

impl Default for SharedStore {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedStore {
    pub fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            last_cas: AtomicU32::new(0),
        }
    }

    fn shard(&self, key: &str) -> Option<MutexGuard<'_, Entries>> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % SHARDS as u64).ok()?;
        // A panic while a shard was locked can only have been an allocation failure between
        // two consistent states: the entries are still whole, keep counting with them.
        Some(
            self.shards
                .get(index)?
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// A new CAS token: one process-wide sequence, never 0 (0 means "no CAS" in proxy-wasm).
    fn next_cas(&self) -> u32 {
        loop {
            let token = self
                .last_cas
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1);
            if token != 0 {
                return token;
            }
        }
    }

    /// Entries in the store (for tests and logs).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CounterStore for SharedStore {
    fn load(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        let shard = self.shard(key).ok_or(StoreError::Unavailable)?;
        Ok(match shard.get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn store(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut shard = self.shard(key).ok_or(StoreError::Unavailable)?;
        match shard.get_mut(key) {
            Some(entry) => {
                if cas.is_some_and(|cas| cas != 0 && cas != entry.1) {
                    return Err(StoreError::CasMismatch);
                }
                entry.0.clear();
                entry.0.extend_from_slice(value);
                entry.1 = self.next_cas();
            }
            None => {
                let token = self.next_cas();
                shard.insert(key.to_string(), (value.to_vec(), token));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_missing_key_loads_as_nothing_and_any_write_creates_it() {
        let store = SharedStore::new();
        assert_eq!(store.load("k"), Ok((None, None)));
        store.store("k", b"1", Some(12345)).unwrap();
        let (value, cas) = store.load("k").unwrap();
        assert_eq!(value.as_deref(), Some(&b"1"[..]));
        assert!(cas.is_some_and(|cas| cas != 0));
        assert!(!store.is_empty() && store.len() == 1);
    }

    #[test]
    fn a_stale_token_is_refused_and_a_fresh_one_accepted() {
        let store = SharedStore::new();
        store.store("k", b"1", None).unwrap();
        let (_, first) = store.load("k").unwrap();
        store.store("k", b"2", first).unwrap();
        assert_eq!(
            store.store("k", b"3", first),
            Err(StoreError::CasMismatch),
            "the token changed with the write"
        );
        let (value, second) = store.load("k").unwrap();
        assert_eq!(value.as_deref(), Some(&b"2"[..]));
        assert_ne!(first, second);
        // No token: unconditional, as proxy-wasm's set_shared_data without CAS.
        store.store("k", b"4", None).unwrap();
        assert_eq!(store.load("k").unwrap().0.as_deref(), Some(&b"4"[..]));
    }

    #[test]
    fn tokens_are_unique_across_keys() {
        let store = SharedStore::new();
        let mut seen = std::collections::HashSet::new();
        for i in 0..100 {
            let key = format!("k{}", i % 7);
            store.store(&key, b"x", None).unwrap();
            let (_, cas) = store.load(&key).unwrap();
            assert!(seen.insert(cas.unwrap()));
        }
    }

    /// Threads incrementing one counter with load + CAS store, retrying on a mismatch, as the
    /// core's counting does: no increment is lost, none counted twice.
    #[test]
    fn compare_and_swap_is_exact_across_threads() {
        let store = Arc::new(SharedStore::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        loop {
                            let (value, cas) = store.load("counter").unwrap();
                            let n: u64 = value
                                .map(|v| String::from_utf8(v).unwrap().parse().unwrap())
                                .unwrap_or(0);
                            match store.store("counter", (n + 1).to_string().as_bytes(), cas) {
                                Ok(()) => break,
                                Err(StoreError::CasMismatch) => continue,
                                Err(err) => panic!("{err:?}"),
                            }
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let (value, _) = store.load("counter").unwrap();
        assert_eq!(value.as_deref(), Some(&b"16000"[..]));
    }
}
