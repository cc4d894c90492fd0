//! Requests paused until a key fetch ends, by the host's context id, each with the time its
//! wait must end (the source's `timeout_ms` after it began).
//!
//! Every operation is O(1) amortised, whatever the number waiting: waits begin in deadline
//! order (one timeout per source, a clock that does not go back), so the overdue are at the
//! front of a queue; a request that stops waiting is forgotten in a map and its queue entry
//! skipped when it comes up. And the number waiting is capped per worker: a flood of tokens
//! naming unknown keys cannot park without bound.

use std::collections::{HashMap, VecDeque};

/// At most this many requests of one worker wait for keys at once; the next is refused
/// (it gets the 401 its token gets without the wait).
pub const MAX_KEY_WAITERS: usize = 4096;

#[derive(Debug, Default)]
pub struct KeyWaiters {
    /// (context id, deadline in Unix ms), in arrival order; may hold entries of requests that
    /// stopped waiting (not in `deadlines`, or there with another deadline).
    queue: VecDeque<(u32, u64)>,
    /// Who waits, and until when.
    deadlines: HashMap<u32, u64>,
}

impl KeyWaiters {
    /// `id` waits until `deadline_ms` at the latest; false when the cap is reached.
    pub fn add(&mut self, id: u32, deadline_ms: u64) -> bool {
        if !self.deadlines.contains_key(&id) && self.deadlines.len() >= MAX_KEY_WAITERS {
            return false;
        }
        self.deadlines.insert(id, deadline_ms);
        self.queue.push_back((id, deadline_ms));
        self.compact();
        true
    }

    pub fn remove(&mut self, id: u32) {
        self.deadlines.remove(&id);
        self.compact();
    }

    /// Everyone: the fetch they waited for has ended.
    pub fn take_all(&mut self) -> Vec<u32> {
        let mut all = Vec::with_capacity(self.deadlines.len());
        for (id, deadline) in self.queue.drain(..) {
            if self.deadlines.get(&id) == Some(&deadline) {
                self.deadlines.remove(&id);
                all.push(id);
            }
        }
        self.deadlines.clear();
        all
    }

    /// Those whose wait is over at `now_ms`.
    pub fn take_overdue(&mut self, now_ms: u64) -> Vec<u32> {
        let mut overdue = Vec::new();
        while let Some(&(id, deadline)) = self.queue.front() {
            let current = self.deadlines.get(&id) == Some(&deadline);
            if current && deadline > now_ms {
                break;
            }
            self.queue.pop_front();
            if current {
                self.deadlines.remove(&id);
                overdue.push(id);
            }
        }
        overdue
    }

    pub fn len(&self) -> usize {
        self.deadlines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }

    /// Drops stale queue entries once they outnumber the live ones (amortised O(1)).
    fn compact(&mut self) {
        if self.queue.len() > 2 * self.deadlines.len() + 64 {
            let deadlines = &self.deadlines;
            self.queue
                .retain(|(id, deadline)| deadlines.get(id) == Some(deadline));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overdue_waiters_leave_first_and_everyone_at_the_end() {
        let mut waiters = KeyWaiters::default();
        assert!(waiters.add(7, 1_000));
        assert!(waiters.add(8, 2_000));
        assert!(waiters.add(7, 1_500));
        assert_eq!(waiters.len(), 2, "one entry per request");
        assert!(waiters.take_overdue(1_499).is_empty());
        assert_eq!(waiters.take_overdue(1_500), vec![7]);
        assert!(waiters.add(9, 5_000));
        assert_eq!(waiters.take_all(), vec![8, 9]);
        assert!(waiters.is_empty());
    }

    #[test]
    fn a_request_that_stops_waiting_is_never_woken() {
        let mut waiters = KeyWaiters::default();
        waiters.add(1, 100);
        waiters.add(2, 200);
        waiters.remove(1);
        assert_eq!(waiters.take_overdue(1_000), vec![2]);
        waiters.add(3, 300);
        waiters.remove(3);
        assert!(waiters.take_all().is_empty());
    }

    #[test]
    fn the_number_waiting_is_capped() {
        let mut waiters = KeyWaiters::default();
        for id in 0..MAX_KEY_WAITERS {
            assert!(waiters.add(u32::try_from(id).unwrap_or(u32::MAX), 1_000));
        }
        assert!(!waiters.add(u32::MAX - 1, 1_000), "one over the cap");
        // One already waiting may renew its wait; one leaving makes room.
        assert!(waiters.add(0, 2_000));
        waiters.remove(1);
        assert!(waiters.add(u32::MAX - 1, 1_000));
        assert_eq!(waiters.len(), MAX_KEY_WAITERS);
    }

    #[test]
    fn many_waits_and_removals_keep_the_queue_small() {
        // Waits that end by removal (requests gone) must not pile up in the queue.
        let mut waiters = KeyWaiters::default();
        for id in 0..100_000u32 {
            waiters.add(id, u64::from(id));
            waiters.remove(id);
        }
        assert!(waiters.queue.len() <= 64, "{}", waiters.queue.len());
        assert!(waiters.is_empty());
    }
}
