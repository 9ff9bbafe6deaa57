//! Rate limits for warnings a peer can trigger at will (a request for an
//! unknown type, a NACK, a refused or undecodable stream): one request must
//! not buy one log line, or an unauthenticated client fills the disk.
//!
//! A token bucket per kind of warning: `burst` lines at once, then one per
//! `every`; the next line that passes says how many were suppressed. Written
//! here rather than taken from a crate (`governor`) because it is the whole
//! need: twenty lines, no clock abstraction, a mutex that is never contended
//! on a path that matters.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// One kind of warning's budget.
#[derive(Debug)]
pub struct Throttle {
    burst: u32,
    every: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: u32,
    /// When the last token was added (or the first warning came).
    refilled: Option<Instant>,
    suppressed: u64,
}

/// Every throttled warning of the xDS server, shared by its streams.
#[derive(Debug)]
pub struct Warnings {
    /// "ignoring request for a type this control plane does not serve".
    pub unknown_type: Throttle,
    /// "proxy rejected configuration (NACK)".
    pub nack: Throttle,
    /// A stream refused or ended by a bad request.
    pub refused: Throttle,
}

// === impl Throttle ===

impl Throttle {
    /// `burst` warnings at once, then one per `every`.
    pub const fn new(burst: u32, every: Duration) -> Self {
        Self {
            burst,
            every,
            state: Mutex::new(State {
                tokens: burst,
                refilled: None,
                suppressed: 0,
            }),
        }
    }

    /// `Some(suppressed)` when a warning may be logged now, with how many
    /// were dropped since the last one that was; `None` to drop this one.
    pub fn check(&self) -> Option<u64> {
        self.check_at(Instant::now())
    }

    /// [`Throttle::check`] with the count as a log field wants it:
    /// `Some(None)` when a warning may be logged and none was dropped.
    pub fn admit(&self) -> Option<Option<u64>> {
        self.check().map(|dropped| (dropped > 0).then_some(dropped))
    }

    /// [`Throttle::check`] at `now`.
    pub fn check_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let since = *s.refilled.get_or_insert(now);
        if !self.every.is_zero() {
            let earned = now.saturating_duration_since(since).as_nanos() / self.every.as_nanos();
            if earned > 0 {
                let earned = u32::try_from(earned).unwrap_or(u32::MAX);
                s.tokens = s.tokens.saturating_add(earned).min(self.burst);
                s.refilled = Some(now);
            }
        }
        if s.tokens == 0 {
            s.suppressed += 1;
            return None;
        }
        s.tokens -= 1;
        Some(std::mem::take(&mut s.suppressed))
    }
}

// === impl Warnings ===

impl Default for Warnings {
    /// Ten lines at once, then one a second, per kind: a real incident (every
    /// proxy NACKing one bad push) still shows, with the count of the rest;
    /// metrics and `proxy-status` keep the full picture.
    fn default() -> Self {
        let every = Duration::from_secs(1);
        Self {
            unknown_type: Throttle::new(10, every),
            nack: Throttle::new(10, every),
            refused: Throttle::new(10, every),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_type_url_warning_is_rate_limited() {
        let t = Throttle::new(3, Duration::from_secs(1));
        let start = Instant::now();
        let logged: Vec<Option<u64>> = (0..1000).map(|_| t.check_at(start)).collect();
        assert_eq!(
            logged.iter().flatten().count(),
            3,
            "the burst, then nothing"
        );
        // A second later one more passes and reports what was dropped.
        assert_eq!(t.check_at(start + Duration::from_secs(1)), Some(997));
        assert_eq!(t.check_at(start + Duration::from_secs(1)), None);
        // The bucket refills up to the burst, no further.
        let later = start + Duration::from_secs(100);
        let passed = (0..10).filter(|_| t.check_at(later).is_some()).count();
        assert_eq!(passed, 3);
    }
}
