//! Counting one request of a consumer in this process's counters: a configured consumer in its
//! own entry, a dynamic JWT consumer in a slot of the pool. The pipeline counts local limits
//! this way, and so does a global limit whose service failed under `failure_mode: local`.

use crate::deny::Denial;
use crate::dynamic_consumers::{self, Pool};
use crate::limits::{self, CounterState, CounterStore, Limits, RateHeaders, Refusal};

/// Whose counters.
pub(crate) enum Counter<'a> {
    /// A configured consumer's entry.
    Entry(&'a str),
    /// A dynamic consumer (`jwt:<client>`) in a pool of `size` slots.
    Slot {
        pool: Pool,
        size: usize,
        owner: &'a str,
    },
}

/// Counts one request in `limits`, or says which APIM error refuses it. Returns the headers
/// and the state written (for `give_back`).
pub(crate) fn count(
    counters: &dyn CounterStore,
    counter: Counter,
    limits: &Limits,
    now_ms: u64,
) -> Result<(Option<RateHeaders>, CounterState), Denial> {
    let counted = match counter {
        Counter::Entry(key) => limits::admit_counted(counters, key, limits, now_ms),
        Counter::Slot { pool, size, owner } => {
            dynamic_consumers::admit(counters, pool, size, owner, limits, now_ms)
        }
    };
    counted.map_err(|refusal| match refusal {
        Refusal::RateLimited { retry_after_s } => Denial::rate_limited(retry_after_s),
        Refusal::QuotaExceeded { retry_after_s } => Denial::quota_exceeded(retry_after_s),
        // Contention beyond the retry bound, or a store error: refuse, briefly.
        Refusal::Unavailable => Denial::rate_limited(1),
    })
}

/// Takes back one request counted at `written` (a later limit refused it). Best effort: a
/// store that fails now leaves the count, erring towards refusing, never towards admitting.
pub(crate) fn give_back(
    counters: &dyn CounterStore,
    counter: Counter,
    limits: &Limits,
    written: &CounterState,
) {
    let _ = match counter {
        Counter::Entry(key) => limits::refund(counters, key, limits, written),
        Counter::Slot { pool, size, owner } => {
            dynamic_consumers::refund(counters, pool, size, owner, limits, written)
        }
    };
}
