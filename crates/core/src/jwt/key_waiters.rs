//! Requests paused until a key fetch ends, by the host's context id, each with the time its
//! wait must end (the source's `timeout_ms` after it began).

#[derive(Debug, Default)]
pub struct KeyWaiters {
    /// (context id, deadline in Unix ms), in arrival order.
    waiting: Vec<(u32, u64)>,
}

impl KeyWaiters {
    /// `id` waits until `deadline_ms` at the latest.
    pub fn add(&mut self, id: u32, deadline_ms: u64) {
        self.remove(id);
        self.waiting.push((id, deadline_ms));
    }

    pub fn remove(&mut self, id: u32) {
        self.waiting.retain(|(waiting, _)| *waiting != id);
    }

    /// Everyone: the fetch they waited for has ended.
    pub fn take_all(&mut self) -> Vec<u32> {
        self.waiting.drain(..).map(|(id, _)| id).collect()
    }

    /// Those whose wait is over at `now_ms`.
    pub fn take_overdue(&mut self, now_ms: u64) -> Vec<u32> {
        let mut overdue = Vec::new();
        self.waiting.retain(|&(id, deadline_ms)| {
            let over = now_ms >= deadline_ms;
            if over {
                overdue.push(id);
            }
            !over
        });
        overdue
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overdue_waiters_leave_first_and_everyone_at_the_end() {
        let mut waiters = KeyWaiters::default();
        waiters.add(7, 1_000);
        waiters.add(8, 2_000);
        waiters.add(7, 1_500);
        assert_eq!(waiters.len(), 2, "one entry per request");
        assert!(waiters.take_overdue(1_499).is_empty());
        assert_eq!(waiters.take_overdue(1_500), vec![7]);
        waiters.add(9, 5_000);
        assert_eq!(waiters.take_all(), vec![8, 9]);
        assert!(waiters.is_empty());
    }
}
