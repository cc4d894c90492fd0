//! Test doubles shared by the core's unit tests: an in-memory counter store with proxy-wasm's
//! CAS semantics, a clock that says what it is told, and signed tokens (`tokens`).

pub mod tokens;

use crate::limits::{CounterStore, StoreError};
use crate::pipeline::Clock;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// An in-memory store with proxy-wasm's semantics: a CAS token per entry, bumped on each
/// write; a write with a stale token fails. `conflicts` makes the next N writes fail as if
/// another worker had written first (and bumps the token, as such a write would).
#[derive(Default)]
pub struct MemoryStore {
    entries: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    next_cas: Cell<u32>,
    pub conflicts: Cell<usize>,
    pub writes: Cell<usize>,
}

impl MemoryStore {
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }
}

impl CounterStore for MemoryStore {
    fn load(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        Ok(match self.entries.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn store(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut entries = self.entries.borrow_mut();
        self.next_cas.set(self.next_cas.get() + 1);
        let token = self.next_cas.get();
        if self.conflicts.get() > 0 {
            self.conflicts.set(self.conflicts.get() - 1);
            if let Some(entry) = entries.get_mut(key) {
                entry.1 = token; // someone else's write
            }
            return Err(StoreError::CasMismatch);
        }
        if let (Some(entry), Some(cas)) = (entries.get(key), cas) {
            if entry.1 != cas {
                return Err(StoreError::CasMismatch);
            }
        }
        entries.insert(key.to_string(), (value.to_vec(), token));
        self.writes.set(self.writes.get() + 1);
        Ok(())
    }
}

/// A clock stopped at a Unix time in milliseconds.
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0
    }
}
