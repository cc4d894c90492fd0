//! Requests paused until a key fetch ends, by the host's context id, each with the time its
//! wait must end (the source's `timeout_ms` after it began).
//!
//! Every operation is O(log n) amortised, whatever the number waiting: the deadlines are a
//! min-heap, so the overdue come off its top; a request that stops waiting is forgotten in a
//! map and its heap entry skipped when it comes up. And the number waiting is capped per
//! worker: a flood of tokens naming unknown keys cannot park without bound.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// At most this many requests of one worker wait for keys at once; the next is refused
/// (it gets the 401 its token gets without the wait).
pub const MAX_KEY_WAITERS: usize = 4096;

#[derive(Debug, Default)]
pub struct KeyWaiters {
    /// (deadline in Unix ms, arrival number, context id), earliest deadline on top; may hold
    /// entries of requests that stopped waiting or waited again (not the arrival `current`
    /// holds for them).
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    /// Who waits: context id → its current arrival number.
    current: HashMap<u32, u64>,
    arrivals: u64,
}

impl KeyWaiters {
    /// `id` waits until `deadline_ms` at the latest; false when the cap is reached.
    pub fn add(&mut self, id: u32, deadline_ms: u64) -> bool {
        if !self.current.contains_key(&id) && self.current.len() >= MAX_KEY_WAITERS {
            return false;
        }
        self.arrivals += 1;
        self.current.insert(id, self.arrivals);
        self.heap.push(Reverse((deadline_ms, self.arrivals, id)));
        self.compact();
        true
    }

    pub fn remove(&mut self, id: u32) {
        self.current.remove(&id);
        self.compact();
    }

    /// Everyone, in arrival order: the fetch they waited for has ended.
    pub fn take_all(&mut self) -> Vec<u32> {
        let mut all: Vec<(u64, u32)> = self
            .current
            .drain()
            .map(|(id, arrival)| (arrival, id))
            .collect();
        all.sort_unstable();
        self.heap.clear();
        all.into_iter().map(|(_, id)| id).collect()
    }

    /// Those whose wait is over at `now_ms`, earliest deadline first.
    pub fn take_overdue(&mut self, now_ms: u64) -> Vec<u32> {
        let mut overdue = Vec::new();
        while let Some(&Reverse((deadline, arrival, id))) = self.heap.peek() {
            let live = self.current.get(&id) == Some(&arrival);
            if live && deadline > now_ms {
                break;
            }
            self.heap.pop();
            if live {
                self.current.remove(&id);
                overdue.push(id);
            }
        }
        overdue
    }

    pub fn len(&self) -> usize {
        self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    /// Drops stale heap entries once they outnumber the live ones (amortised O(1) each).
    fn compact(&mut self) {
        if self.heap.len() > 2 * self.current.len() + 64 {
            let current = &self.current;
            self.heap
                .retain(|Reverse((_, arrival, id))| current.get(id) == Some(arrival));
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
        assert!(waiters.heap.len() <= 64, "{}", waiters.heap.len());
        assert!(waiters.is_empty());
    }
}
