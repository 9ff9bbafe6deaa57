//! The certificate manager: gets a workload certificate for an identity on
//! first use, caches it, and keeps it fresh in the background.
//!
//! The manager does no network I/O: certificates come from a
//! [`CertificateSource`] the caller provides (the control plane's
//! certificate service over gRPC, or a [`LocalCa`]). Per identity, one tokio
//! task issues the certificate, renews it at about half its lifetime (with
//! jitter, so workloads started together spread their renewals), and backs
//! off exponentially when the source fails. While renewals fail, the current
//! certificate is served until it expires; an expired certificate is never
//! handed out.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::SystemTime,
};

use tokio::{
    sync::{Notify, watch},
    task::AbortHandle,
    time::Instant,
};

use crate::{SpiffeId, TrustBundle, WorkloadCertificate};

mod config;
mod error;
mod source;
mod worker;

pub use config::ManagerConfig;
pub use error::FetchError;
pub use source::{CertificateSource, IssuedChain, LocalCa, SignFuture, SourceError};

use worker::{Current, Readiness, Snapshot, Worker};

/// Workload certificates for any number of identities, each fetched on
/// first use and renewed in the background.
///
/// Clones share the same certificates. When the last clone is dropped (or
/// [`shutdown`](Self::shutdown) is called) every background task stops.
/// Methods that start a background task must be called within a tokio
/// runtime.
#[derive(Clone)]
pub struct CertificateManager {
    inner: Arc<Inner>,
}

/// What the manager knows about one identity: for metrics and the admin
/// port.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CertStatus {
    /// The identity.
    pub id: SpiffeId,
    /// When the current certificate expires; `None` before the first one.
    pub not_after: Option<SystemTime>,
    /// When the current certificate was received.
    pub last_renewal: Option<SystemTime>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// Why the last attempt failed; `None` once one succeeds.
    pub last_error: Option<String>,
}

struct Inner {
    source: Arc<dyn CertificateSource>,
    config: Arc<ManagerConfig>,
    slots: Mutex<HashMap<SpiffeId, Slot>>,
    bundle: Arc<watch::Sender<Option<TrustBundle>>>,
}

/// A managed identity: how to read its state and how to stop its task.
struct Slot {
    state: watch::Receiver<Snapshot>,
    renew_now: Arc<Notify>,
    task: AbortHandle,
}

// === impl CertificateManager ===

impl CertificateManager {
    /// A manager getting certificates from `source`, renewing them as
    /// `config` says.
    pub fn new(source: Arc<dyn CertificateSource>, config: ManagerConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                config: Arc::new(config),
                slots: Mutex::new(HashMap::new()),
                bundle: Arc::new(watch::channel(None).0),
            }),
        }
    }

    /// A valid certificate for `id`.
    ///
    /// The first call for an identity asks the source and waits for it
    /// (concurrent first callers share that one request), then keeps the
    /// certificate fresh in the background until [`forget`](Self::forget).
    /// Later calls return the cached certificate, which changes when it is
    /// renewed. When there is no valid certificate, the call waits for an
    /// attempt under way, or else returns why the last attempt failed
    /// without asking the source again (retries follow the backoff).
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime for an identity not yet managed.
    pub async fn fetch(&self, id: &SpiffeId) -> Result<Arc<WorkloadCertificate>, FetchError> {
        self.ready(id).await.map(|current| current.cert)
    }

    /// The certificates for `id`, current and future: the receiver holds a
    /// valid certificate now and changes with every renewal, so a TLS server
    /// can swap its configuration. It is never cleared: if renewals fail
    /// until expiry, it keeps the expired certificate. Its `changed` fails
    /// once the identity is forgotten or the manager shut down.
    ///
    /// Waits and fails as [`fetch`](Self::fetch) does.
    pub async fn watch(
        &self,
        id: &SpiffeId,
    ) -> Result<watch::Receiver<Arc<WorkloadCertificate>>, FetchError> {
        let mut updates = self.ready(id).await?.updates;
        updates.mark_unchanged();
        Ok(updates)
    }

    /// The cached certificate for `id` if it is valid, without waiting or
    /// starting anything: for synchronous callers such as a rustls
    /// certificate resolver.
    pub fn current(&self, id: &SpiffeId) -> Option<Arc<WorkloadCertificate>> {
        let slots = self.inner.slots();
        let snapshot = slots.get(id)?.state.borrow();
        match snapshot.readiness(Instant::now(), SystemTime::now()) {
            Readiness::Ready(current) => Some(current.cert),
            _ => None,
        }
    }

    /// The newest trust bundle any source response carried; `None` before
    /// the first certificate. During a root rotation the source sends both
    /// roots; the newest bundle replaces the previous one.
    pub fn trust_bundle(&self) -> Option<TrustBundle> {
        self.inner.bundle.borrow().clone()
    }

    /// The trust bundle as it changes: a new value each time a source
    /// response carries a bundle different from the current one.
    pub fn watch_trust_bundle(&self) -> watch::Receiver<Option<TrustBundle>> {
        self.inner.bundle.subscribe()
    }

    /// Stops managing `id`: its renewal stops, callers waiting for it get
    /// [`FetchError::Stopped`], and the next `fetch` starts afresh. Returns
    /// whether `id` was managed.
    pub fn forget(&self, id: &SpiffeId) -> bool {
        let removed = self.inner.slots().remove(id);
        // Dropped outside the lock: dropping a slot aborts its task.
        removed.is_some()
    }

    /// Stops managing every identity, as if each were forgotten.
    pub fn shutdown(&self) {
        let slots = std::mem::take(&mut *self.inner.slots());
        drop(slots);
    }

    /// The state of every managed identity, ordered by identity.
    pub fn status(&self) -> Vec<CertStatus> {
        let mut statuses: Vec<CertStatus> = self
            .inner
            .slots()
            .iter()
            .map(|(id, slot)| {
                let snapshot = slot.state.borrow();
                CertStatus {
                    id: id.clone(),
                    not_after: snapshot.current.as_ref().map(|c| c.cert.not_after()),
                    last_renewal: snapshot.last_renewal,
                    consecutive_failures: snapshot.failures,
                    last_error: snapshot.last_error.as_ref().map(ToString::to_string),
                }
            })
            .collect();
        statuses.sort_by(|a, b| a.id.cmp(&b.id));
        statuses
    }

    /// Waits until `id` has a valid certificate or its last attempt failed.
    async fn ready(&self, id: &SpiffeId) -> Result<Current, FetchError> {
        let (mut state, renew_now) = self.inner.slot(id);
        loop {
            // The borrow ends before the await: the worker needs the lock
            // inside the channel to publish.
            let readiness = state
                .borrow_and_update()
                .readiness(Instant::now(), SystemTime::now());
            match readiness {
                Readiness::Ready(current) => return Ok(current),
                Readiness::Failed(error) => return Err(error),
                Readiness::Stale => renew_now.notify_one(),
                Readiness::Wait => {}
            }
            if state.changed().await.is_err() {
                return Err(FetchError::Stopped { id: id.clone() });
            }
        }
    }
}

impl std::fmt::Debug for CertificateManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateManager")
            .field("config", &self.inner.config)
            .field("identities", &self.inner.slots().len())
            .finish_non_exhaustive()
    }
}

// === impl Inner ===

impl Inner {
    fn slots(&self) -> MutexGuard<'_, HashMap<SpiffeId, Slot>> {
        // Nothing panics while holding the lock; a poisoned map is intact.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state of `id`, starting its task if it is not managed yet.
    fn slot(&self, id: &SpiffeId) -> (watch::Receiver<Snapshot>, Arc<Notify>) {
        let mut slots = self.slots();
        let slot = slots.entry(id.clone()).or_insert_with(|| {
            let (state, receiver) = watch::channel(Snapshot::starting());
            let renew_now = Arc::new(Notify::new());
            let worker = Worker {
                id: id.clone(),
                source: self.source.clone(),
                config: self.config.clone(),
                state,
                bundle: self.bundle.clone(),
                renew_now: renew_now.clone(),
            };
            Slot {
                state: receiver,
                renew_now,
                task: tokio::spawn(worker.run()).abort_handle(),
            }
        });
        (slot.state.clone(), slot.renew_now.clone())
    }
}

// === impl Slot ===

impl Drop for Slot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests;
