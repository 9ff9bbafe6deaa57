//! The accept loop every Braid listener shares (control plane, proxies, CNI
//! agent): [`Gate::accept`] retries a failing `accept` with a backoff and
//! caps how many accepted connections may be open at once.
//!
//! Why a crate of its own: `braid-control`, `braid-proxy` and `braid-cni`
//! all accept connections, and the only crates all three depend on are
//! `braid-model` (no I/O, no async) and `braid-identity` (certificates, no
//! networking). `braid-capture` is synchronous and the control plane has no
//! use for it. This crate is small, has no Braid dependencies and is
//! reusable alone.
//!
//! What it is:
//!
//! * [`Backoff`]: the pure schedule — 5 ms doubling to 1 s, reset by the
//!   next success — and when to log (the first failure of a burst, then at
//!   most one reminder per [`REMIND_EVERY`], and one line when accepting
//!   works again). Out of file descriptors (`EMFILE`/`ENFILE`), `accept`
//!   fails at once, every time; retrying without a pause spins a core and a
//!   log line per retry fills the disk.
//! * [`Gate`]: an accept loop around any `accept` function (TCP, Unix,
//!   seqpacket) with that backoff and an optional cap on open connections.
//!   A connection over the cap is closed at once (dropped) and logged the
//!   same rate-limited way; a [`Permit`] travels with each admitted
//!   connection and frees its slot when dropped.
//!
//! What it is not: no protocol, no TLS, no timeouts (handshake and idle
//! timeouts depend on the protocol and live with each server).

use std::{
    fmt,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The first pause after a failed accept.
pub const FIRST_DELAY: Duration = Duration::from_millis(5);

/// The longest pause between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// While a burst of failures (or refusals) lasts, one log line this often.
pub const REMIND_EVERY: Duration = Duration::from_secs(30);

/// The accept backoff's schedule: how long to wait after each failure and
/// whether to log it. Pure: the caller sleeps and logs.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    burst: Burst,
}

/// What [`Backoff::failed`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Wait this long before the next attempt.
    pub delay: Duration,
    /// `Some(n)`: log now; `n` failures happened since the last line
    /// (including this one).
    pub log: Option<u64>,
}

/// Counts the events of a burst and says when one is worth a log line.
#[derive(Debug, Clone, Default)]
struct Burst {
    /// Events since the burst began.
    total: u64,
    /// Events since the last line.
    unlogged: u64,
    last_line: Option<Instant>,
}

/// Accepts connections: retries failures with a [`Backoff`], closes
/// connections over the cap.
#[derive(Debug)]
pub struct Gate {
    what: &'static str,
    backoff: Backoff,
    limit: Option<(Arc<Semaphore>, usize)>,
    refused: Burst,
}

/// An admitted connection's slot under the cap; dropping it frees the slot.
/// Keep it as long as the connection lives (e.g. inside its I/O object).
#[derive(Debug)]
pub struct Permit {
    _slot: Option<OwnedSemaphorePermit>,
}

// === impl Backoff ===

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: FIRST_DELAY,
            burst: Burst::default(),
        }
    }
}

impl Backoff {
    /// Records a failed attempt at `now`.
    pub fn failed(&mut self, now: Instant) -> Retry {
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        Retry {
            delay,
            log: self.burst.hit(now),
        }
    }

    /// Records a successful attempt. `Some(n)` when it ends a burst of `n`
    /// failures (log that accepting works again).
    pub fn succeeded(&mut self) -> Option<u64> {
        self.next = FIRST_DELAY;
        self.burst.end()
    }
}

// === impl Burst ===

impl Burst {
    /// One more event; `Some(n)` when a line is due (`n` events since the
    /// last one).
    fn hit(&mut self, now: Instant) -> Option<u64> {
        self.total += 1;
        self.unlogged += 1;
        let due = self
            .last_line
            .is_none_or(|at| now.saturating_duration_since(at) >= REMIND_EVERY);
        if !due {
            return None;
        }
        self.last_line = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// The burst is over; `Some(total)` if there was one.
    fn end(&mut self) -> Option<u64> {
        let total = self.total;
        *self = Self::default();
        (total > 0).then_some(total)
    }
}

// === impl Gate ===

impl Gate {
    /// A gate without a cap; `what` names the listener in log lines (e.g.
    /// `"xDS"`, `"admin"`).
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            backoff: Backoff::default(),
            limit: None,
            refused: Burst::default(),
        }
    }

    /// At most `max` admitted connections open at once (0 means no cap).
    pub fn with_limit(mut self, max: usize) -> Self {
        self.limit = (max > 0).then(|| (Arc::new(Semaphore::new(max)), max));
        self
    }

    /// Connections admitted and still open.
    pub fn open(&self) -> usize {
        self.limit
            .as_ref()
            .map_or(0, |(slots, max)| max - slots.available_permits())
    }

    /// The next connection under the cap. Calls `accept` until it succeeds
    /// and a slot is free: after a failure it sleeps as [`Backoff`] says
    /// (logging once per burst), and a connection over the cap is dropped
    /// (closed) at once. Cancel-safe as far as `accept` is: dropping the
    /// future loses no admitted connection.
    pub async fn accept<T, E, F, Fut>(&mut self, mut accept: F) -> (T, Permit)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        loop {
            let conn = match accept().await {
                Ok(conn) => conn,
                Err(error) => {
                    let retry = self.backoff.failed(Instant::now());
                    if let Some(failures) = retry.log {
                        tracing::warn!(
                            listener = self.what,
                            %error,
                            failures,
                            retry_in = ?retry.delay,
                            "accept failed; backing off (out of file descriptors? raise `ulimit -n` or lower the listener's connection cap)"
                        );
                    }
                    tokio::time::sleep(retry.delay).await;
                    continue;
                }
            };
            if let Some(failures) = self.backoff.succeeded() {
                tracing::info!(listener = self.what, failures, "accepting again");
            }
            match self.admit() {
                Some(permit) => {
                    if let Some(refused) = self.refused.end() {
                        tracing::info!(
                            listener = self.what,
                            refused,
                            "below the connection cap again"
                        );
                    }
                    return (conn, permit);
                }
                None => {
                    drop(conn);
                    if let Some(refused) = self.refused.hit(Instant::now()) {
                        tracing::warn!(
                            listener = self.what,
                            max = self.limit.as_ref().map_or(0, |(_, max)| *max),
                            refused,
                            "connection cap reached; closing new connections until some end (raise the listener's max-connections flag if this load is expected)"
                        );
                    }
                }
            }
        }
    }

    fn admit(&self) -> Option<Permit> {
        match &self.limit {
            None => Some(Permit { _slot: None }),
            Some((slots, _)) => slots
                .clone()
                .try_acquire_owned()
                .ok()
                .map(|p| Permit { _slot: Some(p) }),
        }
    }
}

#[cfg(test)]
mod tests;
