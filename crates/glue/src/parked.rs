//! Paused requests the root context must reach — waiting for keys, or for a rate-limit answer
//! that comes to the root — by context id, and the rate-limit calls whose answers the root
//! hands on. A request that ends while parked leaves a dead `Weak` (its context is gone
//! without a callback to the root): dead entries are swept when the table has doubled since
//! the last sweep, so parking stays O(1) amortised however many wait.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

/// Below this size no sweep is worth its scan.
const MIN_SWEEP: usize = 64;

pub struct Parked<T> {
    requests: HashMap<u32, Weak<RefCell<T>>>,
    /// Call token → the context id of the request it answers.
    calls: HashMap<u32, u32>,
    /// Sweep when `requests` (or `calls`) reaches this size.
    sweep_at: usize,
    /// Entries looked at by sweeps so far: O(parks), never O(parks²).
    swept: usize,
}

impl<T> Default for Parked<T> {
    fn default() -> Self {
        Self {
            requests: HashMap::new(),
            calls: HashMap::new(),
            sweep_at: MIN_SWEEP,
            swept: 0,
        }
    }
}

impl<T> Parked<T> {
    pub fn park(&mut self, id: u32, request: Weak<RefCell<T>>) {
        self.sweep_if_due();
        self.requests.insert(id, request);
    }

    /// The parked request `id`, taken out, if it still exists.
    pub fn unpark(&mut self, id: u32) -> Option<Rc<RefCell<T>>> {
        self.requests
            .remove(&id)
            .and_then(|request| request.upgrade())
    }

    /// The answer to call `token` goes to request `id` (parked).
    pub fn route_call(&mut self, token: u32, id: u32) {
        self.sweep_if_due();
        self.calls.insert(token, id);
    }

    /// The request call `token` answers, forgotten here.
    pub fn routed(&mut self, token: u32) -> Option<u32> {
        self.calls.remove(&token)
    }

    /// Entries looked at by sweeps so far.
    #[cfg(test)]
    pub fn swept(&self) -> usize {
        self.swept
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    fn sweep_if_due(&mut self) {
        if self.requests.len().max(self.calls.len()) < self.sweep_at {
            return;
        }
        self.swept += self.requests.len() + self.calls.len();
        self.requests
            .retain(|_, request| request.strong_count() > 0);
        // Calls of requests that ended are never answered.
        let requests = &self.requests;
        self.calls.retain(|_, id| requests.contains_key(id));
        self.sweep_at = MIN_SWEEP.max(2 * self.requests.len().max(self.calls.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parking_many_sweeps_logarithmically_and_forgets_the_dead() {
        let mut parked: Parked<u32> = Parked::default();
        let mut alive = Vec::new();
        for id in 0..40_000u32 {
            let request = Rc::new(RefCell::new(id));
            parked.park(id, Rc::downgrade(&request));
            if id % 2 == 0 {
                alive.push(request);
            }
        }
        // Thresholds double with what survives a sweep: the work is a small multiple of the
        // parks (one scan per park would be 800 million entries here).
        assert!(
            parked.swept() <= 4 * 40_000,
            "{} entries swept",
            parked.swept()
        );
        assert!(parked.len() <= 2 * alive.len() + MIN_SWEEP);
        assert!(parked.unpark(1).is_none(), "ended while parked");
        assert_eq!(parked.unpark(2).map(|r| *r.borrow()), Some(2));
        assert!(parked.unpark(2).is_none(), "taken once");
    }

    #[test]
    fn calls_are_routed_once_and_dropped_with_their_request() {
        let mut parked: Parked<u32> = Parked::default();
        let request = Rc::new(RefCell::new(7));
        parked.park(7, Rc::downgrade(&request));
        parked.route_call(100, 7);
        assert_eq!(parked.routed(100), Some(7));
        assert_eq!(parked.routed(100), None);
        // Calls of requests that ended go at the next sweep.
        for token in 0..200u32 {
            parked.route_call(1_000 + token, 9_999);
        }
        assert!(parked.calls.len() < 200);
    }
}
