//! How often a failing key source is logged: the first failure at once, then at most one line a
//! minute (saying how many failures went unlogged), so a provider that is down, or a cluster
//! that does not exist, cannot flood the log from every worker.

/// The shortest time between two logged failures.
pub const LOG_EVERY_S: u64 = 60;

#[derive(Debug, Default)]
pub struct FailureLog {
    last_logged_s: Option<u64>,
    unlogged: u64,
}

impl FailureLog {
    /// A failure at `now_s`: `Some(n)` when it is to be logged, `n` being the failures left
    /// unlogged since the last line; `None` to stay quiet.
    pub fn failed(&mut self, now_s: u64) -> Option<u64> {
        if self
            .last_logged_s
            .is_some_and(|last| now_s < last.saturating_add(LOG_EVERY_S))
        {
            self.unlogged = self.unlogged.saturating_add(1);
            return None;
        }
        self.last_logged_s = Some(now_s);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// The source works again: its next failure is logged at once.
    pub fn succeeded(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_then_one_a_minute() {
        let mut log = FailureLog::default();
        assert_eq!(log.failed(100), Some(0));
        let quiet: Vec<_> = (101..160).map(|now| log.failed(now)).collect();
        assert!(quiet.iter().all(Option::is_none));
        assert_eq!(log.failed(160), Some(59));
        assert_eq!(log.failed(161), None);
        log.succeeded();
        assert_eq!(log.failed(162), Some(0), "a new outage is logged at once");
    }
}
