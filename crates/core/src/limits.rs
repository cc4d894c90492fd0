//! Per-consumer rate limits and quotas over a shared counter store.
//!
//! One store entry per consumer holds both counters, so a request is counted in both or in
//! neither with a single compare-and-swap: a request that the rate limit admits but the quota
//! refuses costs nothing. Updates retry on CAS conflicts a bounded number of times and, when
//! out of attempts, deny: under contention tollgate errs towards refusing, never towards
//! admitting more than the limit.
//!
//! - Rate limit: a window opens with the consumer's first request and lasts
//!   `renewal_period_s`; at most `calls` are admitted in it; the first request after it ends
//!   opens the next one. A burst of any size admits exactly `calls`.
//! - Quota: fixed windows aligned to the Unix epoch (`now / renewal_period_s`), so a daily
//!   quota renews at midnight UTC.

use crate::config::{LimitConfig, Scope};
use crate::config_error::ConfigError;

/// At most `calls` per `renewal_period_s` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub calls: u64,
    pub renewal_period_s: u64,
}

/// The longest window: a year. Longer periods would overflow a window's arithmetic and no
/// rate-limit service counts them.
pub const MAX_PERIOD_S: u64 = 31_536_000;

impl Limit {
    /// A product's `rate_limit` or `quota` (`at` is its configuration path), and where it is
    /// counted; absent = none.
    pub fn compile(
        at: &str,
        limit: Option<LimitConfig>,
    ) -> Result<Option<(Self, Scope)>, ConfigError> {
        let Some(limit) = limit else {
            return Ok(None);
        };
        if limit.calls == 0 {
            return Err(ConfigError::rule(
                format!("{at}.calls"),
                "must be at least 1",
            ));
        }
        if limit.renewal_period_s == 0 {
            return Err(ConfigError::rule(
                format!("{at}.renewal_period_s"),
                "must be at least 1",
            ));
        }
        if limit.renewal_period_s > MAX_PERIOD_S {
            return Err(ConfigError::rule(
                format!("{at}.renewal_period_s"),
                format!("must be at most {MAX_PERIOD_S} (a year)"),
            ));
        }
        let compiled = Self {
            calls: limit.calls,
            renewal_period_s: limit.renewal_period_s,
        };
        Ok(Some((compiled, limit.scope)))
    }
}

/// Both counters of one consumer, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterState {
    pub rate_start_ms: u64,
    pub rate_count: u64,
    pub quota_window: u64,
    pub quota_count: u64,
}

pub const STATE_BYTES: usize = 32;

impl CounterState {
    pub fn encode(&self) -> [u8; STATE_BYTES] {
        let mut bytes = [0u8; STATE_BYTES];
        for (chunk, value) in bytes.chunks_exact_mut(8).zip([
            self.rate_start_ms,
            self.rate_count,
            self.quota_window,
            self.quota_count,
        ]) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        bytes
    }

    /// Reads the first `STATE_BYTES`; anything shorter is a fresh state.
    pub fn decode(bytes: &[u8]) -> Self {
        let Some(state) = bytes.get(..STATE_BYTES) else {
            return Self::default();
        };
        let mut words = state
            .chunks_exact(8)
            .map(|chunk| chunk.try_into().map_or(0, u64::from_le_bytes));
        Self {
            rate_start_ms: words.next().unwrap_or(0),
            rate_count: words.next().unwrap_or(0),
            quota_window: words.next().unwrap_or(0),
            quota_count: words.next().unwrap_or(0),
        }
    }

    /// True when every window this state counts in has ended: nothing would be lost by
    /// starting over (used to hand a dynamic consumer's slot to another).
    pub fn idle(&self, limits: &Limits, now_ms: u64) -> bool {
        let rate_over = limits.rate.is_none_or(|rate| {
            now_ms
                >= self
                    .rate_start_ms
                    .saturating_add(rate.renewal_period_s.saturating_mul(1000))
        });
        // Only a later window ends the stored one: a stamp from the window before counts in
        // the stored window (see `evaluate`), so that window is still running.
        let quota_over = limits
            .quota
            .is_none_or(|quota| quota_window(quota, now_ms) > self.quota_window);
        (rate_over || self.rate_count == 0) && (quota_over || self.quota_count == 0)
    }
}

/// The limits of a consumer's product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub rate: Option<Limit>,
    pub quota: Option<Limit>,
}

impl Limits {
    pub fn any(&self) -> bool {
        self.rate.is_some() || self.quota.is_some()
    }
}

/// The tighter of two reports: fewer calls left; on a tie, the longer wait.
pub fn tightest(a: Option<RateHeaders>, b: Option<RateHeaders>) -> Option<RateHeaders> {
    match (a, b) {
        (Some(a), Some(b)) => Some(
            if (b.remaining, std::cmp::Reverse(b.reset_s))
                < (a.remaining, std::cmp::Reverse(a.reset_s))
            {
                b
            } else {
                a
            },
        ),
        (a, None) => a,
        (None, b) => b,
    }
}

/// What an admitted response reports, for the tightest limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit: u64,
    pub remaining: u64,
    pub reset_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    RateLimited {
        retry_after_s: u64,
    },
    QuotaExceeded {
        retry_after_s: u64,
    },
    /// The store could not be updated (conflicts beyond the retry bound, or an error).
    Unavailable,
}

fn quota_window(quota: Limit, now_ms: u64) -> u64 {
    (now_ms / 1000) / quota.renewal_period_s.max(1)
}

fn ceil_seconds(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// The state after admitting one more request at `now_ms`, and the headers to report; or why
/// not. Pure: the store is not touched.
pub fn evaluate(
    state: CounterState,
    limits: &Limits,
    now_ms: u64,
) -> Result<(CounterState, Option<RateHeaders>), Refusal> {
    let mut next = state;
    let mut reports = Vec::with_capacity(2);

    if let Some(rate) = limits.rate {
        let window_ms = rate.renewal_period_s.saturating_mul(1000);
        // A clock read earlier than the window's start (another worker read the time before
        // us but wrote first) counts in the current window: a window never moves backwards.
        // Only a start more than a whole window ahead (a clock set back, a stale entry) is
        // abandoned.
        let ended = now_ms >= next.rate_start_ms.saturating_add(window_ms);
        let far_ahead = now_ms.saturating_add(window_ms) <= next.rate_start_ms;
        if ended || far_ahead {
            next.rate_start_ms = now_ms;
            next.rate_count = 0;
        }
        let left_ms = next
            .rate_start_ms
            .saturating_add(window_ms)
            .saturating_sub(now_ms);
        let reset_s = ceil_seconds(left_ms).clamp(1, rate.renewal_period_s);
        reports.push(take_call(
            &mut next.rate_count,
            rate,
            reset_s,
            |retry_after_s| Refusal::RateLimited { retry_after_s },
        )?);
    }

    if let Some(quota) = limits.quota {
        // A stamp from the window just before the stored one (a worker that read the clock
        // earlier but writes later) counts in the stored window: windows never move backwards.
        let read = quota_window(quota, now_ms);
        let window = if read.saturating_add(1) == next.quota_window {
            next.quota_window
        } else {
            read
        };
        if next.quota_window != window {
            next.quota_window = window;
            next.quota_count = 0;
        }
        let window_end_s = window
            .saturating_add(1)
            .saturating_mul(quota.renewal_period_s);
        let reset_s = window_end_s
            .saturating_sub(now_ms / 1000)
            .clamp(1, quota.renewal_period_s);
        reports.push(take_call(
            &mut next.quota_count,
            quota,
            reset_s,
            |retry_after_s| Refusal::QuotaExceeded { retry_after_s },
        )?);
    }

    let reported = reports
        .into_iter()
        .fold(None, |best, report| tightest(best, Some(report)));
    Ok((next, reported))
}

/// Takes one call from a window that has admitted `count` of `limit.calls`, or refuses.
fn take_call(
    count: &mut u64,
    limit: Limit,
    reset_s: u64,
    refusal: fn(u64) -> Refusal,
) -> Result<RateHeaders, Refusal> {
    if *count >= limit.calls {
        return Err(refusal(reset_s));
    }
    *count += 1;
    Ok(RateHeaders {
        limit: limit.calls,
        remaining: limit.calls - *count,
        reset_s,
    })
}

/// Why a store operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// Someone else wrote since our read.
    CasMismatch,
    Unavailable,
}

/// A process-wide key-value store with compare-and-swap (proxy-wasm shared data in Envoy).
pub trait CounterStore {
    /// The value and its CAS token; `(None, None)` when there is no entry.
    fn load(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError>;
    /// Writes if the entry is still at `cas`; `None` writes unconditionally.
    fn store(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

/// Where a configured consumer's counters live in the store.
pub fn counter_key(consumer_id: &str) -> String {
    format!("tollgate/c/{consumer_id}")
}

/// Where a configured consumer's global limits are counted locally while the rate-limit
/// service fails (`failure_mode: local`).
pub fn fallback_counter_key(consumer_id: &str) -> String {
    format!("tollgate/g/{consumer_id}")
}

/// How many times a conflicting update is retried before the request is refused.
pub const MAX_CAS_ATTEMPTS: usize = 32;

/// Counts one request for the consumer whose counters live at `key`.
#[cfg(test)]
pub fn admit(
    store: &dyn CounterStore,
    key: &str,
    limits: &Limits,
    now_ms: u64,
) -> Result<Option<RateHeaders>, Refusal> {
    admit_counted(store, key, limits, now_ms).map(|(headers, _)| headers)
}

/// `admit`, also returning the state it wrote, for `give_back`.
pub fn admit_counted(
    store: &dyn CounterStore,
    key: &str,
    limits: &Limits,
    now_ms: u64,
) -> Result<(Option<RateHeaders>, CounterState), Refusal> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (value, cas) = store.load(key).map_err(|_| Refusal::Unavailable)?;
        let state = value
            .as_deref()
            .map(CounterState::decode)
            .unwrap_or_default();
        let (next, headers) = evaluate(state, limits, now_ms)?;
        match store.store(key, &next.encode(), cas) {
            Ok(()) => return Ok((headers, next)),
            Err(StoreError::CasMismatch) => continue,
            Err(StoreError::Unavailable) => return Err(Refusal::Unavailable),
        }
    }
    Err(Refusal::Unavailable)
}

/// The state with one request counted at `written` taken back: only from windows that are
/// still the ones it was counted in (a window that has moved on owes nothing). `None` when
/// there is nothing to take back.
pub fn give_back(
    state: CounterState,
    written: &CounterState,
    limits: &Limits,
) -> Option<CounterState> {
    let mut next = state;
    if limits.rate.is_some() && state.rate_start_ms == written.rate_start_ms && state.rate_count > 0
    {
        next.rate_count -= 1;
    }
    if limits.quota.is_some() && state.quota_window == written.quota_window && state.quota_count > 0
    {
        next.quota_count -= 1;
    }
    (next != state).then_some(next)
}

/// Takes back one request counted at `written` in the entry at `key` (a global limit refused
/// the request after its local limits had counted it: counted only when admitted by all).
pub fn refund(
    store: &dyn CounterStore,
    key: &str,
    limits: &Limits,
    written: &CounterState,
) -> Result<(), StoreError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (value, cas) = store.load(key)?;
        let state = value
            .as_deref()
            .map(CounterState::decode)
            .unwrap_or_default();
        let Some(next) = give_back(state, written, limits) else {
            return Ok(());
        };
        match store.store(key, &next.encode(), cas) {
            Err(StoreError::CasMismatch) => continue,
            done => return done,
        }
    }
    Err(StoreError::Unavailable)
}

/// Creates the entry at `key` if there is none. Run at configure time, before any request,
/// for every consumer with limits: proxy-wasm has no "create if absent", so a first write
/// from the request path could overwrite a count another worker had just made.
pub fn ensure_entry(store: &dyn CounterStore, key: &str) -> Result<(), StoreError> {
    match store.load(key)? {
        (Some(_), _) => Ok(()),
        (None, _) => store.store(key, &CounterState::default().encode(), None),
    }
}

/// `ensure_entry` for each key (existing entries, from an earlier configuration, are kept);
/// returns the keys that could not be created, for the log.
pub fn create_entries<'k>(
    store: &dyn CounterStore,
    keys: &'k [String],
) -> Vec<(&'k str, StoreError)> {
    keys.iter()
        .filter_map(|key| {
            ensure_entry(store, key)
                .err()
                .map(|err| (key.as_str(), err))
        })
        .collect()
}

#[cfg(test)]
mod tests;
