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

use std::collections::HashSet;

use super::{Agent, AgentError, PodRecord, modes::NodeWorkload, open_pod_netns};

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
        let deleted = {
            let mut deleted = self.deleted();
            deleted.retain(|workload| on_node.iter().any(|pod| &pod.workload == workload));
            deleted.clone()
        };
        for pod in on_node {
            if !pod.mode.captured()
                || pod.addresses.is_empty()
                || recorded.contains(&pod.workload)
                || deleted.contains(&pod.workload)
            {
                continue;
            }
            match self.adopt(&pod).await {
                Ok(true) => {
                    tracing::info!(workload = %pod.workload, "running pod adopted: captured without a CNI ADD");
                }
                // Not running here (yet): its ADD will capture it.
                Ok(false) => {
                    tracing::debug!(workload = %pod.workload, addresses = ?pod.addresses, "no network namespace holds the pod's address");
                }
                Err(error) => {
                    tracing::warn!(workload = %pod.workload, %error, "cannot adopt a running pod");
                }
            }
        }
    }

    /// Finds `pod`'s namespace and captures it; `false` if none holds its
    /// addresses.
    async fn adopt(&self, pod: &NodeWorkload) -> Result<bool, AgentError> {
        let redirect = self.inner.redirect.clone();
        let addresses = pod.addresses.clone();
        let found = tokio::task::spawn_blocking(move || redirect.find_netns(&addresses))
            .await
            .ok()
            .flatten();
        let Some(path) = found else {
            return Ok(false);
        };
        let _pods = self.inner.pods.lock().await;
        // An ADD may have recorded the pod while the search ran, or a DEL
        // released it.
        if self.deleted().contains(&pod.workload) {
            return Ok(false);
        }
        if self
            .inner
            .state
            .all()?
            .iter()
            .any(|r| r.workload == pod.workload)
        {
            return Ok(true);
        }
        let netns = open_pod_netns(&pod.workload, &path)?;
        let record = PodRecord {
            uid: adopted_uid(&pod.workload),
            workload: pod.workload.clone(),
            netns: path,
            captured: true,
        };
        self.capture(&record, &netns).await?;
        Ok(true)
    }

    /// The adopted record of `workload`, if any.
    pub(super) fn adopted(&self, workload: &str) -> Result<Option<PodRecord>, AgentError> {
        Ok(self.inner.state.load(&adopted_uid(workload))?)
    }
}
