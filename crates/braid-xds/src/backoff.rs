//! Exponential backoff with jitter between connection attempts.

use std::time::Duration;

use rand::Rng;

/// How long to wait between failed connection attempts.
///
/// The n-th consecutive failure waits a random duration in
/// `[base / 2, base]` where `base = min(initial * 2^(n-1), max)`. The jitter
/// keeps a fleet of proxies from reconnecting in lockstep after a control
/// plane restart; the lower bound keeps the growth real. The count resets
/// once a stream delivers a response, not merely when it opens, so a server
/// that accepts and immediately drops streams is still backed off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The base delay after the first failure.
    pub initial: Duration,
    /// The cap on the base delay.
    pub max: Duration,
}

/// Consecutive failures and the delays they earn.
#[derive(Debug)]
pub(crate) struct Attempts {
    config: Backoff,
    failures: u32,
}

// === impl Backoff ===

impl Backoff {
    /// A backoff from `initial` doubling up to `max` (raised to `initial` if
    /// smaller).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
        }
    }
}

impl Default for Backoff {
    /// 250 ms doubling to 30 s: quick after a blip, gentle on a control plane
    /// that is down for long.
    fn default() -> Self {
        Self::new(Duration::from_millis(250), Duration::from_secs(30))
    }
}

// === impl Attempts ===

impl Attempts {
    pub(crate) fn new(config: Backoff) -> Self {
        Self {
            config,
            failures: 0,
        }
    }

    /// Failures since the last reset.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failure and returns how long to wait before the next attempt.
    pub(crate) fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let base = self.base();
        let half = base / 2;
        if half.is_zero() {
            return base;
        }
        rand::rng().random_range(half..=base)
    }

    /// Forgets past failures after a healthy stream.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    fn base(&self) -> Duration {
        // 2^30 times any sane initial delay is past any sane max; capping the
        // exponent keeps the multiplication from overflowing.
        let exponent = self.failures.saturating_sub(1).min(30);
        self.config
            .initial
            .saturating_mul(1u32 << exponent)
            .min(self.config.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_within_jitter_bounds_and_cap() {
        let mut a = Attempts::new(Backoff::new(10 * MS, 100 * MS));
        let expected_bases = [10, 20, 40, 80, 100, 100];
        for base in expected_bases {
            let d = a.fail();
            let base = base * MS;
            assert!(
                d >= base / 2 && d <= base,
                "delay {d:?} outside [{:?}, {base:?}]",
                base / 2
            );
        }
        assert_eq!(a.failures(), 6);
    }

    #[test]
    fn reset_starts_over() {
        let mut a = Attempts::new(Backoff::new(10 * MS, 100 * MS));
        for _ in 0..5 {
            a.fail();
        }
        a.reset();
        assert!(a.fail() <= 10 * MS);
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut a = Attempts::new(Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
        ));
        for _ in 0..100 {
            assert!(a.fail() <= Duration::from_secs(60));
        }
    }

    #[test]
    fn max_below_initial_is_raised() {
        let b = Backoff::new(10 * MS, MS);
        assert_eq!(b.max, 10 * MS);
    }
}
