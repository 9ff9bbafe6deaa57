//! Adopting running pods the agent has no record of: pods that were
//! running before Braid's agent was installed on the node (the usual case
//! when a cluster adopts Braid), or whose records were lost with the state
//! directory. Without this they would be captured only when re-created,
//! while every proxy already treated them as ambient.
//!
//! The control plane says which pods run on this node and their addresses;
//! the agent finds the network namespace holding one of them
//! ([`Redirect::find_netns`](super::Redirect::find_netns)) and captures it
//! as an ADD would, under a uid of its own (`adopted_<ns>_<pod>`). A later
//! ADD of the same pod (same namespace) takes the capture over under the
//! runtime's uid without new listeners; a DEL finds an adopted record by
//! the pod's name.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use tokio::time::Instant;

use super::{Agent, AgentError, PodRecord, modes::NodeWorkload, open_pod_netns};

/// The first pause before looking again for a pod whose namespace was not
/// found; it doubles up to [`MAX_PAUSE`]. Looking means reading every
/// process's namespace, so a pod that is listed here but not running (not
/// started yet, or gone) must not cost that on every pass.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause between two searches for the same pod.
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// What adoption remembers between passes.
#[derive(Debug, Default)]
pub(super) struct Adoption {
    /// Pods (`<namespace>/<pod>`) a DEL released: going away, so never
    /// adopted, even while the control plane still lists them and their
    /// namespace lingers. Cleared by an ADD of that name.
    deleted: HashSet<String>,
    /// Pods whose namespace was not found: when to look again, and the
    /// pause after that.
    unfound: HashMap<String, (Instant, Duration)>,
}

impl Adoption {
    /// A CNI ADD for `workload`: a new pod of that name.
    pub(super) fn added(&mut self, workload: &str) {
        self.deleted.remove(workload);
        self.unfound.remove(workload);
    }

    /// A CNI DEL for `workload`.
    pub(super) fn deleted(&mut self, workload: String) {
        self.deleted.insert(workload);
    }

    /// Forgets pods the control plane no longer places on this node.
    fn keep_only(&mut self, on_node: &[NodeWorkload]) {
        let listed = |workload: &String| on_node.iter().any(|pod| &pod.workload == workload);
        self.deleted.retain(listed);
        self.unfound.retain(|workload, _| listed(workload));
    }

    /// Whether to look for `workload`'s namespace now.
    fn due(&self, workload: &str, now: Instant) -> bool {
        !self.deleted.contains(workload)
            && self.unfound.get(workload).is_none_or(|(at, _)| now >= *at)
    }

    /// `workload`'s namespace was not found at `now`.
    fn not_found(&mut self, workload: &str, now: Instant) {
        let pause = self
            .unfound
            .get(workload)
            .map_or(FIRST_PAUSE, |(_, pause)| (*pause * 2).min(MAX_PAUSE));
        self.unfound
            .insert(workload.to_string(), (now + pause, pause));
    }
}

/// What one adoption attempt came to.
enum Adopted {
    /// The pod is captured.
    Captured,
    /// No namespace holds its addresses (not running here yet).
    NotFound,
    /// An ADD or DEL for it came while its namespace was searched for.
    Overtaken,
}

/// The start of every adopted pod's uid. Runtime uids are UUIDs, so the
/// two never collide.
const ADOPTED: &str = "adopted_";

/// The uid an adopted `<namespace>/<pod>` is recorded under (names are DNS
/// labels, so `_` separates them unambiguously and is a safe file name).
pub(super) fn adopted_uid(workload: &str) -> String {
    format!("{ADOPTED}{}", workload.replacen('/', "_", 1))
}

// === impl Agent ===

impl Agent {
    /// Captures this node's ambient pods that no record covers. `recorded`
    /// holds the workload names of every record.
    pub(super) async fn adopt_unrecorded(&self, recorded: &HashSet<String>) {
        let on_node = self.inner.modes.on_this_node();
        let now = Instant::now();
        let due: Vec<NodeWorkload> = {
            let mut adoption = self.adoption();
            adoption.keep_only(&on_node);
            on_node
                .into_iter()
                .filter(|pod| {
                    pod.mode.captured()
                        && !pod.addresses.is_empty()
                        && !recorded.contains(&pod.workload)
                        && adoption.due(&pod.workload, now)
                })
                .collect()
        };
        for pod in due {
            match self.adopt(&pod).await {
                Ok(Adopted::Captured) => {
                    tracing::info!(workload = %pod.workload, "running pod adopted: captured without a CNI ADD");
                }
                Ok(Adopted::Overtaken) => {}
                // Not running here (yet): its ADD will capture it.
                Ok(Adopted::NotFound) => {
                    tracing::debug!(workload = %pod.workload, addresses = ?pod.addresses, "no network namespace holds the pod's address");
                    self.adoption().not_found(&pod.workload, now);
                }
                Err(error) => {
                    tracing::warn!(workload = %pod.workload, %error, "cannot adopt a running pod");
                }
            }
        }
    }

    /// Finds `pod`'s namespace and captures it.
    async fn adopt(&self, pod: &NodeWorkload) -> Result<Adopted, AgentError> {
        let redirect = self.inner.redirect.clone();
        let addresses = pod.addresses.clone();
        let found = tokio::task::spawn_blocking(move || redirect.find_netns(&addresses))
            .await
            .ok()
            .flatten();
        let Some(path) = found else {
            return Ok(Adopted::NotFound);
        };
        let _pods = self.inner.pods.lock().await;
        // An ADD may have recorded the pod while the search ran, or a DEL
        // released it.
        if self.adoption().deleted.contains(&pod.workload)
            || self
                .inner
                .state
                .all()?
                .iter()
                .any(|r| r.workload == pod.workload)
        {
            return Ok(Adopted::Overtaken);
        }
        let netns = open_pod_netns(&pod.workload, &path)?;
        let record = PodRecord {
            uid: adopted_uid(&pod.workload),
            workload: pod.workload.clone(),
            netns: path,
            captured: true,
        };
        self.capture(&record, &netns).await?;
        Ok(Adopted::Captured)
    }

    /// The adopted record of `workload`, if any.
    pub(super) fn adopted(&self, workload: &str) -> Result<Option<PodRecord>, AgentError> {
        Ok(self.inner.state.load(&adopted_uid(workload))?)
    }
}
