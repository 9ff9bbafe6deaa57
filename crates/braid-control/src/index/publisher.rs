//! The index task: applies source changes as they arrive and publishes a new
//! snapshot once the changes settle, so a burst of edits becomes one push.

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

use super::{Index, NamespaceModes};
use crate::{
    identities::Identities,
    metrics::Metrics,
    snapshot::Snapshot,
    source::{Change, ConfigErrors},
    status::Findings,
};

/// When to publish after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Debounce {
    /// Publish once no change arrived for this long.
    pub quiet: Duration,
    /// ...but never later than this after the first unpublished change, so
    /// a steady stream of edits still reaches proxies.
    pub max: Duration,
}

/// Where the index publishes.
#[derive(Debug)]
pub struct Outputs {
    /// xDS resources, for the ADS streams.
    pub snapshots: watch::Sender<Arc<Snapshot>>,
    /// Who may hold which identity, for the certificate service.
    pub identities: watch::Sender<Arc<Identities>>,
    /// Namespaces and their mode labels, for the injection webhook.
    pub namespaces: watch::Sender<Arc<NamespaceModes>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Where the index reports what it finds wrong with objects the
    /// sources accepted (HTTPRoute references that do not resolve).
    pub errors: ConfigErrors,
    /// The same route problems and each waypoint's state, for the status
    /// writer (`ResolvedRefs`, `Programmed`).
    pub findings: watch::Sender<Arc<Findings>>,
}

/// Applies every change in `batch` and publishes. Used for the initial load,
/// before any proxy can connect.
pub fn apply_and_publish(index: &mut Index, batch: Vec<Change>, outputs: &Outputs) {
    for change in batch {
        index.apply(change);
    }
    publish(index, outputs);
}

/// Runs until the change channel closes.
pub async fn run(
    mut index: Index,
    mut changes: mpsc::Receiver<Vec<Change>>,
    outputs: Outputs,
    debounce: Debounce,
) {
    while let Some(batch) = changes.recv().await {
        batch.into_iter().for_each(|c| index.apply(c));
        let first = Instant::now();
        let mut deadline = first + debounce.quiet;
        let cap = first + debounce.max;
        loop {
            tokio::select! {
                more = changes.recv() => match more {
                    Some(batch) => {
                        batch.into_iter().for_each(|c| index.apply(c));
                        deadline = (Instant::now() + debounce.quiet).min(cap);
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        publish(&mut index, &outputs);
    }
}

fn publish(index: &mut Index, outputs: &Outputs) {
    if let Some(identities) = index.identities() {
        outputs.identities.send_replace(Arc::new(identities));
    }
    if let Some(modes) = index.namespace_modes() {
        outputs.namespaces.send_replace(Arc::new(modes));
    }
    if !index.is_dirty() {
        return;
    }
    let current = outputs.snapshots.borrow().clone();
    let updates = index.updates(&current);
    let errors = index.take_config_errors();
    if let Some(findings) = index.take_findings() {
        outputs.findings.send_replace(Arc::new(findings));
    }
    for (path, errors) in errors {
        if let Some(first) = errors.first() {
            tracing::warn!(object = %path.display(), error = %first, count = errors.len(), "route references do not resolve");
        }
        outputs.errors.set(&path, errors);
    }
    let Some(next) = current.next(updates) else {
        tracing::debug!("changes produced no resource updates");
        return;
    };
    if let Some(change) = next.history.back() {
        tracing::info!(
            version = next.version,
            workloads = change.names[0].len(),
            services = change.names[1].len(),
            authorizations = change.names[2].len(),
            peer_authentications = change.names[3].len(),
            http_routes = change.names[4].len(),
            "publishing configuration"
        );
    }
    outputs.metrics.record_snapshot(&next);
    outputs.snapshots.send_replace(Arc::new(next));
}
