//! When the manager renews and how long it waits after a failure.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// How a [`CertificateManager`](super::CertificateManager) schedules renewals
/// and retries.
///
/// Fractions outside `0.0..=1.0` are clamped. `max_backoff` should be well
/// below the certificate lifetime: the manager retries no more often than
/// the backoff allows, even when the current certificate is about to expire.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ManagerConfig {
    /// When to renew, as a fraction of the certificate's usable lifetime
    /// (default 0.5: at half-life).
    pub renew_fraction: f64,
    /// Up to this fraction of the usable lifetime (chosen at random each
    /// time) is taken off the renewal point, so workloads that started
    /// together do not renew together (default 0.1).
    pub renew_jitter: f64,
    /// The delay before the first retry after a failure (default 1 s); it
    /// doubles with every consecutive failure.
    pub initial_backoff: Duration,
    /// The longest delay between retries (default 60 s); also the delay after
    /// a refusal, which retrying soon would not change.
    pub max_backoff: Duration,
}

// === impl ManagerConfig ===

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            renew_fraction: 0.5,
            renew_jitter: 0.1,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl ManagerConfig {
    /// How long after receiving a certificate, at `received` (wall clock), to
    /// renew it.
    ///
    /// The usable lifetime runs from `max(not_before, received)` to
    /// `not_after`: CAs backdate `not_before` to tolerate clock skew (Braid's
    /// by five minutes), and counting that backdated part would renew a
    /// short-lived certificate at once, over and over.
    pub(crate) fn renew_after(
        &self,
        not_before: SystemTime,
        not_after: SystemTime,
        received: SystemTime,
    ) -> Duration {
        let start = not_before.max(received);
        let usable = not_after.duration_since(start).unwrap_or_default();
        let fraction = clamp_fraction(self.renew_fraction);
        let jitter = clamp_fraction(self.renew_jitter).min(fraction);
        let jitter = if jitter > 0.0 {
            rand::rng().random_range(0.0..=jitter)
        } else {
            0.0
        };
        usable.mul_f64(fraction - jitter)
    }

    /// The delay before the next attempt after `failures` consecutive
    /// failures (at least one), the last of which was `retryable` or not.
    ///
    /// The nominal delay is `initial_backoff * 2^(failures - 1)`, capped at
    /// `max_backoff` (or `max_backoff` at once when not retryable); the
    /// actual delay is uniform in the upper half of it, so the delays grow
    /// while workloads failing together spread out.
    pub(crate) fn backoff(&self, failures: u32, retryable: bool) -> Duration {
        let nominal = self.nominal_backoff(failures, retryable);
        nominal.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// The delay [`Self::backoff`] jitters.
    pub(crate) fn nominal_backoff(&self, failures: u32, retryable: bool) -> Duration {
        let max = self.max_backoff.max(self.initial_backoff);
        if !retryable {
            return max;
        }
        let doublings = failures.saturating_sub(1).min(31);
        self.initial_backoff
            .checked_mul(1 << doublings)
            .map_or(max, |delay| delay.min(max))
    }
}

fn clamp_fraction(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn renewal_is_at_half_the_usable_lifetime_minus_jitter() {
        let config = ManagerConfig::default();
        let now = SystemTime::now();
        // Backdated by five minutes, valid for two more: the usable lifetime
        // is two minutes, not seven.
        for _ in 0..100 {
            let after = config.renew_after(now - 5 * MINUTE, now + 2 * MINUTE, now);
            assert!(after >= Duration::from_secs(48), "{after:?}");
            assert!(after <= Duration::from_secs(60), "{after:?}");
        }
        let fixed = ManagerConfig {
            renew_jitter: 0.0,
            ..config.clone()
        };
        assert_eq!(fixed.renew_after(now, now + 2 * MINUTE, now), MINUTE);
        // Out of range fractions are clamped, never panic.
        let odd = ManagerConfig {
            renew_fraction: 7.0,
            renew_jitter: f64::NAN,
            ..config
        };
        assert_eq!(odd.renew_after(now, now + MINUTE, now), MINUTE);
        assert_eq!(
            odd.renew_after(now, now - MINUTE, now),
            Duration::ZERO,
            "an expired certificate is renewed at once"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let config = ManagerConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            ..ManagerConfig::default()
        };
        let nominal: Vec<u64> = (1..=6)
            .map(|n| config.nominal_backoff(n, true).as_secs())
            .collect();
        assert_eq!(nominal, [1, 2, 4, 8, 8, 8]);
        assert_eq!(config.nominal_backoff(u32::MAX, true).as_secs(), 8);
        assert_eq!(config.nominal_backoff(1, false).as_secs(), 8);
        for n in 1..=6 {
            let delay = config.backoff(n, true);
            let nominal = config.nominal_backoff(n, true);
            assert!(delay >= nominal / 2 && delay <= nominal, "{n}: {delay:?}");
        }
    }
}
