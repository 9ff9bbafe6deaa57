//! The background task that keeps one identity's certificate fresh: issue,
//! wait until renewal is due, renew; after a failure, back off and retry.
//!
//! It is the only writer of the identity's [`Snapshot`]; callers of `fetch`
//! only read it, so one request is in flight per identity however many
//! callers wait for it.
//!
//! Times: a certificate's validity is wall-clock time, but the task plans on
//! tokio's monotonic clock. At issue time the remaining validity and the
//! renewal delay are read from the wall clock once and turned into tokio
//! `Instant`s. A wall-clock step (NTP, an operator) then cannot make the
//! manager renew in a burst or sleep past expiry, and tests drive the whole
//! lifecycle with tokio's paused time. Because the monotonic clock stops
//! while a machine is suspended, `fetch` also checks the wall clock and
//! wakes this task when the two disagree.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use rustls::pki_types::UnixTime;
use tokio::{
    sync::{Notify, watch},
    time::Instant,
};

use super::{CertificateSource, FetchError, ManagerConfig};
use crate::{CertificateRequest, SpiffeId, TrustBundle, WorkloadCertificate, tls};

/// What the manager knows about one identity, published by its task.
#[derive(Clone, Debug)]
pub(super) struct Snapshot {
    pub(super) current: Option<Current>,
    /// Whether a request to the source is under way.
    pub(super) in_flight: bool,
    /// The error of the last attempt; `None` once one succeeds.
    pub(super) last_error: Option<FetchError>,
    pub(super) failures: u32,
    /// When the current certificate was received (wall clock).
    pub(super) last_renewal: Option<SystemTime>,
}

/// The latest certificate and where subscribers follow its successors.
#[derive(Clone, Debug)]
pub(super) struct Current {
    pub(super) cert: Arc<WorkloadCertificate>,
    /// Its expiry on tokio's clock.
    pub(super) valid_until: Instant,
    pub(super) updates: watch::Receiver<Arc<WorkloadCertificate>>,
}

/// What a caller of `fetch` should do, given a snapshot.
pub(super) enum Readiness {
    Ready(Current),
    Failed(FetchError),
    Wait,
    /// Expired by the wall clock before tokio's clock: ask for a renewal.
    Stale,
}

/// The task's state: everything it needs, none of it shared with callers.
pub(super) struct Worker {
    pub(super) id: SpiffeId,
    pub(super) source: Arc<dyn CertificateSource>,
    pub(super) config: Arc<ManagerConfig>,
    pub(super) state: watch::Sender<Snapshot>,
    pub(super) bundle: Arc<watch::Sender<Option<TrustBundle>>>,
    pub(super) renew_now: Arc<Notify>,
}

// === impl Snapshot ===

impl Snapshot {
    /// The state before the first attempt, which starts at once.
    pub(super) fn starting() -> Self {
        Self {
            current: None,
            in_flight: true,
            last_error: None,
            failures: 0,
            last_renewal: None,
        }
    }

    pub(super) fn readiness(&self, now: Instant, wall: SystemTime) -> Readiness {
        if let Some(current) = &self.current
            && now < current.valid_until
            && !current.cert.is_expired_at(wall)
        {
            return Readiness::Ready(current.clone());
        }
        if self.in_flight {
            return Readiness::Wait;
        }
        match (&self.last_error, &self.current) {
            (Some(error), _) => Readiness::Failed(error.clone()),
            (None, Some(_)) => Readiness::Stale,
            (None, None) => Readiness::Wait,
        }
    }
}

// === impl Worker ===

impl Worker {
    /// Issues, renews and retries until the task is aborted.
    pub(super) async fn run(self) {
        let mut updates: Option<watch::Sender<Arc<WorkloadCertificate>>> = None;
        loop {
            self.state.send_modify(|s| s.in_flight = true);
            match self.issue().await {
                Ok((cert, bundle, received)) => {
                    // The bundle first: whoever sees the new certificate
                    // can already verify peers from a new root.
                    self.bundle.send_if_modified(|current| {
                        let newer = current.as_ref() != Some(&bundle);
                        if newer {
                            *current = Some(bundle);
                        }
                        newer
                    });
                    let renew_at = self.publish(cert, received, &mut updates);
                    tokio::select! {
                        () = tokio::time::sleep_until(renew_at) => {}
                        () = self.renew_now.notified() => {}
                    }
                }
                Err(error) => {
                    let delay = self.fail(error);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One attempt: a fresh key, the source's signature, and checks that the
    /// result is a usable certificate for this identity.
    async fn issue(&self) -> Result<(WorkloadCertificate, TrustBundle, SystemTime), FetchError> {
        let id = &self.id;
        let request = CertificateRequest::generate(id).map_err(|source| FetchError::Request {
            id: id.clone(),
            source,
        })?;
        let issued = self
            .source
            .sign(request.csr.clone(), id.clone())
            .await
            .map_err(|source| FetchError::Source {
                id: id.clone(),
                source,
            })?;
        let invalid = |reason: String| FetchError::Invalid {
            id: id.clone(),
            reason,
        };
        let received = SystemTime::now();
        tls::verify_chain(&issued.chain, &issued.trust_bundle, UnixTime::now())
            .map_err(|e| invalid(format!("it does not verify against its trust bundle: {e}")))?;
        let cert = request
            .into_certificate(issued.chain)
            .map_err(|e| invalid(e.to_string()))?;
        if cert.spiffe_id() != id {
            return Err(invalid(format!("it names {}", cert.spiffe_id())));
        }
        Ok((cert, issued.trust_bundle, received))
    }

    /// Publishes a new certificate; returns when to renew it.
    fn publish(
        &self,
        cert: WorkloadCertificate,
        received: SystemTime,
        updates: &mut Option<watch::Sender<Arc<WorkloadCertificate>>>,
    ) -> Instant {
        let now = Instant::now();
        let valid_until = now + cert.remaining_at(received);
        let renew_in = self
            .config
            .renew_after(cert.not_before(), cert.not_after(), received);
        tracing::info!(
            id = %self.id,
            not_after = %crate::cert::fmt_time(cert.not_after()),
            renew_in = ?renew_in,
            "issued a workload certificate",
        );
        let cert = Arc::new(cert);
        let sender = updates.get_or_insert_with(|| watch::channel(cert.clone()).0);
        sender.send_replace(cert.clone());
        let current = Current {
            cert,
            valid_until,
            updates: sender.subscribe(),
        };
        self.state.send_modify(|s| {
            s.current = Some(current);
            s.in_flight = false;
            s.last_error = None;
            s.failures = 0;
            s.last_renewal = Some(received);
        });
        now + renew_in
    }

    /// Records a failed attempt; returns how long to wait before the next.
    fn fail(&self, error: FetchError) -> Duration {
        // This task is the only writer, so the count read here is current.
        let (failures, has_certificate) = {
            let s = self.state.borrow();
            (s.failures.saturating_add(1), s.current.is_some())
        };
        let delay = self.config.backoff(failures, error.is_retryable());
        tracing::warn!(
            id = %self.id,
            failures,
            retry_in = ?delay,
            has_certificate,
            "{error}",
        );
        self.state.send_modify(|s| {
            s.failures = failures;
            s.in_flight = false;
            s.last_error = Some(error);
        });
        delay
    }
}
