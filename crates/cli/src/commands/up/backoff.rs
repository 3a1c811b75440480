//! When `neuroshard up` restarts a node that exited: a back-off over plain durations, no I/O.

use std::time::Duration;

/// A restart back-off: the first restart waits `first`, each quick exit after a restart doubles
/// the wait up to `cap`, and an exit after the node ran for `stable` starts over at `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Backoff {
    /// The wait before the first restart, and after a node that had stayed up.
    pub(super) first: Duration,
    /// The longest wait: a node that keeps failing is retried this often.
    pub(super) cap: Duration,
    /// How long a node must run for its next exit to count as a fresh failure.
    pub(super) stable: Duration,
}

/// `neuroshard up`'s policy: 1 s, doubling to 30 s, reset after a minute up.
pub(super) const RESTART: Backoff = Backoff {
    first: Duration::from_secs(1),
    cap: Duration::from_secs(30),
    stable: Duration::from_secs(60),
};

impl Backoff {
    /// The wait before restarting a node that exited after running for `ran`, when the wait
    /// before its last start was `last` (`None`: it never restarted).
    pub(super) fn delay(self, last: Option<Duration>, ran: Duration) -> Duration {
        match last {
            Some(last) if ran < self.stable => last.saturating_mul(2).clamp(self.first, self.cap),
            _ => self.first,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(300);

    /// The waits, in milliseconds, before `n` restarts of a node that exits after `ran` each time.
    fn waits(policy: Backoff, n: usize, ran: Duration) -> Vec<u128> {
        let mut last = None;
        (0..n)
            .map(|_| {
                let wait = policy.delay(last, ran);
                last = Some(wait);
                wait.as_millis()
            })
            .collect()
    }

    #[test]
    fn quick_exits_double_the_wait_up_to_the_cap() {
        let secs: Vec<u128> = waits(RESTART, 8, QUICK)
            .iter()
            .map(|ms| ms / 1000)
            .collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn a_node_that_stayed_up_starts_over() {
        let long_after = RESTART.delay(Some(Duration::from_secs(30)), RESTART.stable);
        assert_eq!(long_after, RESTART.first);
        let just_before = RESTART.delay(Some(Duration::from_secs(8)), RESTART.stable - QUICK);
        assert_eq!(just_before, Duration::from_secs(16));
    }

    #[test]
    fn the_first_restart_waits_first_however_long_the_node_ran() {
        assert_eq!(RESTART.delay(None, Duration::ZERO), RESTART.first);
        assert_eq!(
            RESTART.delay(None, Duration::from_secs(3600)),
            RESTART.first
        );
    }

    #[test]
    fn another_policy_keeps_its_own_numbers() {
        let policy = Backoff {
            first: Duration::from_millis(250),
            cap: Duration::from_secs(1),
            stable: Duration::from_secs(5),
        };
        assert_eq!(waits(policy, 4, QUICK), [250, 500, 1000, 1000]);
    }
}
