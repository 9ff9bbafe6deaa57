//! The Kubernetes source (`--source kube`): kube-rs watchers on the API
//! server feed the same [`Change`]s as the YAML directory.
//!
//! Each kind has its own watch ([`watches`]); the watcher resumes from the
//! last resource version after a disconnect and re-lists when that version
//! has expired, and the re-list replaces what it had reported
//! ([`state`]), so a deletion missed while disconnected is still seen.
//! Until every kind has listed once the control plane does not serve: a
//! proxy must never receive a partial mesh (it would drop what is missing).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use braid_model::k8s::MeshSettings;
use futures::{FutureExt as _, StreamExt as _, stream::BoxStream};
use kube::Client;
use tokio::sync::{mpsc, watch};

use super::{Change, ConfigErrors, Kind, ObjectKey};

pub mod state;
pub mod watches;

use state::{CrdVerdict, SourceState, WatchEvent};

/// The most events taken in one batch before handing changes on.
const MAX_BATCH: usize = 512;

/// The verdicts on Braid CRD objects and HTTPRoutes, for the status writer.
pub type VerdictMap = BTreeMap<ObjectKey, CrdVerdict>;

/// The Kubernetes source could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeSourceError {
    /// No kubeconfig and not in a cluster.
    #[error(
        "cannot configure a Kubernetes client: {0}; set KUBECONFIG (or run in a pod with a ServiceAccount)"
    )]
    Client(#[source] kube::Error),
    /// Some kinds never listed within the timeout.
    #[error("the first list of {kinds} did not complete within {timeout:?}: {last_errors}")]
    Sync {
        /// The kinds still missing.
        kinds: String,
        /// The timeout.
        timeout: Duration,
        /// What went wrong, per kind, with what to do.
        last_errors: String,
    },
}

/// Watches the API server.
pub struct KubeSource {
    state: SourceState,
    events: BoxStream<'static, watches::Item>,
    verdicts: watch::Sender<Arc<VerdictMap>>,
    last_errors: BTreeMap<Kind, String>,
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

// === impl KubeSource ===

impl KubeSource {
    /// A client from `KUBECONFIG` (or `~/.kube/config`), else the pod's
    /// in-cluster configuration.
    pub async fn client() -> Result<Client, KubeSourceError> {
        Client::try_default().await.map_err(KubeSourceError::Client)
    }

    /// Starts the watches; nothing is read until [`KubeSource::initial`].
    pub fn new(client: &Client, settings: &MeshSettings, errors: ConfigErrors) -> Self {
        let (verdicts, _) = tokio::sync::watch::channel(Arc::new(VerdictMap::new()));
        Self {
            state: SourceState::new(watches::KINDS, errors),
            events: watches::all(client, settings),
            verdicts,
            last_errors: BTreeMap::new(),
        }
    }

    /// The verdicts on Braid CRD objects, updated as they change.
    pub fn verdicts(&self) -> tokio::sync::watch::Receiver<Arc<VerdictMap>> {
        self.verdicts.subscribe()
    }

    /// Waits until every kind has been listed once and returns the whole
    /// configuration as changes.
    pub async fn initial(&mut self, timeout: Duration) -> Result<Vec<Change>, KubeSourceError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = Vec::new();
        while !self.state.unsynced().is_empty() {
            match tokio::time::timeout_at(deadline, self.events.next()).await {
                Ok(Some(item)) => self.handle(item, &mut changes),
                Ok(None) => break,
                Err(_) => {
                    let kinds: Vec<&str> =
                        self.state.unsynced().iter().map(|k| k.as_str()).collect();
                    let last_errors = match self.last_errors.is_empty() {
                        true => "no error reported; is the API server slow?".to_string(),
                        false => self
                            .last_errors
                            .iter()
                            .map(|(k, e)| format!("{}: {e}", k.as_str()))
                            .collect::<Vec<_>>()
                            .join("; "),
                    };
                    return Err(KubeSourceError::Sync {
                        kinds: kinds.join(", "),
                        timeout,
                        last_errors,
                    });
                }
            }
        }
        self.publish_verdicts();
        Ok(changes)
    }

    /// Forwards changes to `tx` until it closes, batching whatever the
    /// watches have ready.
    pub async fn run(mut self, tx: mpsc::Sender<Vec<Change>>) {
        loop {
            let first = tokio::select! {
                item = self.events.next() => item,
                _ = tx.closed() => return,
            };
            let Some(first) = first else { return };
            let mut changes = Vec::new();
            self.handle(first, &mut changes);
            for _ in 0..MAX_BATCH {
                match self.events.next().now_or_never() {
                    Some(Some(item)) => self.handle(item, &mut changes),
                    _ => break,
                }
            }
            self.publish_verdicts();
            if !changes.is_empty() && tx.send(changes).await.is_err() {
                return;
            }
        }
    }

    fn handle(&mut self, (kind, event): watches::Item, changes: &mut Vec<Change>) {
        match event {
            Ok(event) => {
                // A retry starts with `Init` before it lists anything: only a
                // completed list or a watch event shows the watch works again.
                let works = !matches!(event, WatchEvent::Init | WatchEvent::InitApply(_));
                if works && self.last_errors.remove(&kind).is_some() {
                    tracing::info!(kind = kind.as_str(), "watch recovered");
                }
                self.state.handle(kind, event, changes);
            }
            Err(e) => {
                let message = explain(kind, &e);
                // The watcher retries with backoff; log each new error once.
                if self.last_errors.get(&kind) != Some(&message) {
                    tracing::warn!(kind = kind.as_str(), error = %message, "watch failed; retrying, and the last listed state keeps serving");
                }
                self.last_errors.insert(kind, message);
            }
        }
    }

    fn publish_verdicts(&self) {
        self.verdicts.send_if_modified(|current| {
            if **current == *self.state.verdicts() {
                return false;
            }
            *current = Arc::new(self.state.verdicts().clone());
            true
        });
    }
}

/// A watch error with what to do about it.
fn explain(kind: Kind, error: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as E;
    let status = match error {
        E::InitialListFailed(kube::Error::Api(s))
        | E::WatchStartFailed(kube::Error::Api(s))
        | E::WatchFailed(kube::Error::Api(s)) => Some(&**s),
        E::WatchError(s) => Some(&**s),
        _ => None,
    };
    let text = match status {
        Some(s) => format!("the API server answered {}: {}", s.code, s.message),
        None => error.to_string(),
    };
    let status = status.map(|s| s.code);
    let hint = match (status, kind) {
        (Some(404), Kind::AuthorizationPolicy | Kind::PeerAuthentication) => {
            " (the Braid CRDs are not installed: kubectl apply -f manifests/crds/)"
        }
        (Some(401), _) => {
            " (the API server refused our credentials: check the kubeconfig or the ServiceAccount token)"
        }
        (Some(403), _) => {
            " (RBAC: the control plane's ServiceAccount needs get, list and watch on this kind; see manifests/install)"
        }
        _ => "",
    };
    format!("{text}{hint}")
}
