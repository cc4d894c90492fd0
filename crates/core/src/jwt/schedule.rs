//! When one VM fetches a key source: at configure time, every `refresh_interval_s`, sooner after
//! a failed fetch, on an unknown `kid` at most every `unknown_kid_refetch_s`, and at once when a
//! request waits for keys (within that same bound). A call the host will not even dispatch (a
//! missing or misnamed cluster) is retried with an exponential backoff (1 s, 2 s, 4 s ... at most
//! a minute, or the refresh interval if shorter): a broken configuration then costs each worker
//! an attempt a minute, not one a second forever.

use super::keys::KeySet;
use super::remote::{FetchError, RemoteKeys};
use std::rc::Rc;

/// After a failed fetch, try again this soon (or at the refresh interval, if shorter).
pub const RETRY_AFTER_FAILURE_S: u64 = 10;
/// The longest wait between dispatches the host refused.
pub const MAX_BACKOFF_S: u64 = 60;

/// The last good key set of one VM and when to fetch again.
#[derive(Debug, Default)]
pub struct RemoteKeyState {
    pub keys: Option<Rc<KeySet>>,
    last_attempt_s: Option<u64>,
    last_failed: bool,
    in_flight_since_s: Option<u64>,
    unknown_kid_seen: bool,
    /// Dispatches the host refused in a row; more than none means backing off.
    refused_in_a_row: u32,
    /// A waiting request asked for a fetch at once.
    wanted: bool,
}

impl RemoteKeyState {
    /// Whether a fetch should start now.
    pub fn due(&self, remote: &RemoteKeys, now_s: u64) -> bool {
        if self.in_flight(remote, now_s) {
            return false;
        }
        let Some(last) = self.last_attempt_s else {
            return true;
        };
        if self.refused_in_a_row > 0 {
            // Nothing brings a backed-off retry forward: no token makes a cluster appear.
            return now_s >= last.saturating_add(self.backoff_s(remote));
        }
        if self.wanted {
            return true;
        }
        let mut wait = remote.refresh_interval_s;
        // A call the host never answered counts as failed.
        if self.last_failed || self.in_flight_since_s.is_some() {
            wait = wait.min(RETRY_AFTER_FAILURE_S);
        }
        if self.unknown_kid_seen && remote.unknown_kid_refetch_s > 0 {
            wait = wait.min(remote.unknown_kid_refetch_s);
        }
        now_s >= last.saturating_add(wait)
    }

    /// Whether a fetch is under way. A call the host never answered must not block refreshing
    /// forever: past twice its timeout it no longer counts.
    pub fn in_flight(&self, remote: &RemoteKeys, now_s: u64) -> bool {
        let stale_after_s = remote.timeout_ms.div_ceil(1000).saturating_mul(2).max(2);
        self.in_flight_since_s
            .is_some_and(|since| now_s < since.saturating_add(stale_after_s))
    }

    /// Whether a token the keys may not know yet may trigger a fetch now: the bound
    /// `unknown_kid_refetch_s` since the last attempt, and no backoff running.
    pub fn refetch_allowed(&self, remote: &RemoteKeys, now_s: u64) -> bool {
        if remote.unknown_kid_refetch_s == 0 {
            return false;
        }
        let Some(last) = self.last_attempt_s else {
            return true;
        };
        let backed_off =
            self.refused_in_a_row > 0 && now_s < last.saturating_add(self.backoff_s(remote));
        !backed_off && now_s >= last.saturating_add(remote.unknown_kid_refetch_s)
    }

    /// A waiting request asks for a fetch at the next tick.
    pub fn want(&mut self) {
        self.wanted = true;
    }

    /// Nobody waits any more: the schedule alone says when to fetch.
    pub fn unwant(&mut self) {
        self.wanted = false;
    }

    pub fn wanted(&self) -> bool {
        self.wanted
    }

    pub fn started(&mut self, now_s: u64) {
        self.last_attempt_s = Some(now_s);
        self.in_flight_since_s = Some(now_s);
        self.unknown_kid_seen = false;
        self.refused_in_a_row = 0;
        self.wanted = false;
    }

    /// The host refused to dispatch the call: back off.
    pub fn refused(&mut self, now_s: u64) {
        self.last_attempt_s = Some(now_s);
        self.in_flight_since_s = None;
        self.refused_in_a_row = self.refused_in_a_row.saturating_add(1);
        self.wanted = false;
    }

    /// A fetch ended: a new key set replaces the previous one; a failure keeps it.
    pub fn finished(&mut self, result: Result<KeySet, FetchError>) -> Result<usize, FetchError> {
        self.in_flight_since_s = None;
        match result {
            Ok(keys) => {
                let count = keys.len();
                self.keys = Some(Rc::new(keys));
                self.last_failed = false;
                Ok(count)
            }
            Err(err) => {
                self.last_failed = true;
                Err(err)
            }
        }
    }

    /// A token named a `kid` no key has.
    pub fn saw_unknown_kid(&mut self) {
        self.unknown_kid_seen = true;
    }

    /// 1 s after the first refusal, doubling, at most [`MAX_BACKOFF_S`] or the refresh
    /// interval.
    fn backoff_s(&self, remote: &RemoteKeys) -> u64 {
        let doublings = self.refused_in_a_row.saturating_sub(1).min(16);
        let cap = MAX_BACKOFF_S.min(remote.refresh_interval_s);
        (1u64 << doublings).min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::remote::{parse_url, RemoteKind};

    fn remote(refresh: u64, refetch: u64) -> RemoteKeys {
        RemoteKeys {
            kind: RemoteKind::JwksUri,
            target: parse_url("https://idp/keys").unwrap(),
            cluster: "idp".into(),
            refresh_interval_s: refresh,
            timeout_ms: 5000,
            unknown_kid_refetch_s: refetch,
        }
    }

    #[test]
    fn schedule_first_fetch_refresh_and_failure_retry() {
        let remote = remote(3600, 300);
        let mut state = RemoteKeyState::default();
        assert!(state.due(&remote, 1000));
        state.started(1000);
        assert!(!state.due(&remote, 1001), "in flight");
        assert_eq!(state.finished(Ok(KeySet::default())), Ok(0));
        assert!(!state.due(&remote, 4599));
        assert!(state.due(&remote, 4600));
        state.started(4600);
        assert!(state.finished(Err(FetchError::Empty)).is_err());
        assert!(
            state.keys.is_some(),
            "a failed fetch keeps the last good set"
        );
        assert!(!state.due(&remote, 4609));
        assert!(state.due(&remote, 4610), "failures retry sooner");
    }

    #[test]
    fn unknown_kid_refetch_is_bounded() {
        let remote = remote(3600, 300);
        let mut state = RemoteKeyState::default();
        state.started(0);
        state.finished(Ok(KeySet::default())).unwrap();
        state.saw_unknown_kid();
        assert!(!state.due(&remote, 299));
        assert!(state.due(&remote, 300));
        state.started(300);
        state.finished(Ok(KeySet::default())).unwrap();
        state.saw_unknown_kid();
        assert!(!state.due(&remote, 599));
        let never = RemoteKeys {
            unknown_kid_refetch_s: 0,
            ..remote
        };
        assert!(!state.due(&never, 3899));
    }

    #[test]
    fn an_unanswered_call_does_not_block_forever() {
        let remote = remote(3600, 300);
        let mut state = RemoteKeyState::default();
        state.started(0);
        assert!(!state.due(&remote, 9));
        assert!(state.due(&remote, 10));
    }

    #[test]
    fn refused_dispatches_back_off_exponentially_up_to_a_minute() {
        let remote = remote(3600, 1);
        let mut state = RemoteKeyState::default();
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..9 {
            assert!(state.due(&remote, now));
            state.refused(now);
            // Neither an unknown kid nor a waiting request shortens the wait.
            state.saw_unknown_kid();
            let mut wait = 1;
            while !state.due(&remote, now + wait) {
                assert!(!state.refetch_allowed(&remote, now + wait));
                wait += 1;
            }
            waits.push(wait);
            now += wait;
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        // A dispatch the host takes ends the backoff.
        state.started(now);
        state.finished(Ok(KeySet::default())).unwrap();
        state.refused(now + 3600);
        assert!(state.due(&remote, now + 3601));
    }

    #[test]
    fn the_backoff_never_exceeds_the_refresh_interval() {
        let remote = remote(5, 300);
        let mut state = RemoteKeyState::default();
        for _ in 0..10 {
            state.refused(100);
        }
        assert!(!state.due(&remote, 104));
        assert!(state.due(&remote, 105));
    }

    #[test]
    fn a_waiting_request_may_bring_a_fetch_forward_within_the_bound() {
        let remote = remote(3600, 300);
        let mut state = RemoteKeyState::default();
        assert!(state.refetch_allowed(&remote, 0), "nothing fetched yet");
        state.started(0);
        state.finished(Ok(KeySet::default())).unwrap();
        assert!(!state.refetch_allowed(&remote, 299));
        assert!(state.refetch_allowed(&remote, 300));
        state.want();
        assert!(state.due(&remote, 300), "wanted: due at once");
        state.started(300);
        assert!(!state.wanted());
        assert!(state.in_flight(&remote, 301));
        assert!(
            !state.in_flight(&remote, 310),
            "stale after twice the timeout"
        );
        let never = RemoteKeys {
            unknown_kid_refetch_s: 0,
            ..remote
        };
        assert!(!state.refetch_allowed(&never, 100_000));
    }
}
