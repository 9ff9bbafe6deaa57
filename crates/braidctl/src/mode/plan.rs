//! What switching a namespace's mode does to each of its pods, decided
//! without I/O: the facts of a pod and the old and new namespace labels in,
//! an [`Effect`] out.
//!
//! The rules mirror the data plane: only a re-created pod gains or loses a
//! sidecar (the injector acts at creation); the CNI agent captures a pod
//! for the ztunnel when the pod starts, captures a running pod in place as
//! soon as its mode turns ambient, and releases a captured pod within
//! seconds once the pod's mode leaves ambient.

use std::fmt;

use braid_model::{DataPlaneMode, MODE_LABEL, k8s::SIDECAR_CONTAINER};
use k8s_openapi::api::core::v1::Pod;

/// What `braidctl mode` needs to know about a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PodFacts {
    /// Pod name.
    pub(super) name: String,
    /// Its own `braid.dev/mode` label, as written.
    pub(super) label: Option<String>,
    /// It runs the `braid-proxy` container (injected or declared).
    pub(super) has_sidecar: bool,
    /// Where it is in its life.
    pub(super) phase: Phase,
    /// What re-creates it.
    pub(super) owner: Owner,
}

/// Where a pod is in its life, as far as capture is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Pending: its network is not set up yet, or only just.
    NotStarted,
    /// Running.
    Running,
    /// Succeeded or failed: nothing will change for it.
    Finished,
}

/// What re-creates a pod: how to restart it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Owner {
    /// A workload `kubectl rollout restart` knows: (`deployment`, name) etc.
    Rollout(&'static str, String),
    /// Anything else (a bare pod, a Job, a standalone ReplicaSet).
    Other,
}

/// What the switch does to one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Effect {
    /// The pod has finished.
    Finished,
    /// Its own label is not a mode, so the control plane rejects the pod.
    InvalidLabel(String),
    /// Its own label decides its mode, not the namespace's.
    PinnedByLabel(DataPlaneMode),
    /// Already what the new mode asks for.
    Stays(DataPlaneMode),
    /// Not started yet: the ztunnel captures it when it starts.
    CapturedAtStart,
    /// Running without a sidecar: the node's agent captures it in place.
    CapturedInPlace,
    /// Only a re-created pod gets a sidecar; `released` when the ztunnel
    /// lets go of it meanwhile (out of the mesh until the restart).
    RestartToGetSidecar {
        /// The ztunnel releases it now.
        released: bool,
    },
    /// Keeps its sidecar until restarted, then follows `then`.
    KeepsSidecar {
        /// The data plane after the restart.
        then: DataPlaneMode,
    },
    /// The ztunnel releases it within seconds: out of the mesh.
    Released,
}

/// A pod's data plane now and the effect of the switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PodPlan {
    /// What serves the pod now.
    pub(super) now: DataPlaneMode,
    /// What the switch does.
    pub(super) effect: Effect,
}

// === impl PodFacts ===

impl PodFacts {
    /// The facts of `pod`.
    pub(super) fn from_pod(pod: &Pod) -> Self {
        let labels = pod.metadata.labels.as_ref();
        let spec = pod.spec.as_ref();
        let named_proxy = |c: &k8s_openapi::api::core::v1::Container| c.name == SIDECAR_CONTAINER;
        let has_sidecar = spec.is_some_and(|s| {
            s.containers.iter().any(named_proxy)
                || s.init_containers.iter().flatten().any(named_proxy)
        });
        let phase = match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Running") => Phase::Running,
            Some("Succeeded" | "Failed") => Phase::Finished,
            _ => Phase::NotStarted,
        };
        Self {
            name: pod.metadata.name.clone().unwrap_or_default(),
            label: labels.and_then(|l| l.get(MODE_LABEL)).cloned(),
            has_sidecar,
            phase,
            owner: owner_of(pod),
        }
    }

    /// The decision for this pod when the namespace's label goes from
    /// `old` to `new`.
    pub(super) fn plan(&self, old: Option<DataPlaneMode>, new: DataPlaneMode) -> PodPlan {
        use DataPlaneMode::{Ambient, None, Sidecar};
        let own = self.label.as_deref().map(str::parse::<DataPlaneMode>);
        let was = match &own {
            Some(Ok(mode)) => *mode,
            _ => old.unwrap_or_default(),
        };
        let now = if self.has_sidecar {
            Sidecar
        } else if was == Ambient {
            Ambient
        } else {
            None
        };
        let effect = match (own, self.phase, now, new) {
            (_, Phase::Finished, ..) => Effect::Finished,
            (Some(Err(e)), ..) => Effect::InvalidLabel(e.0),
            (Some(Ok(mode)), ..) => Effect::PinnedByLabel(mode),
            (_, _, Sidecar, Sidecar) | (_, _, Ambient, Ambient) | (_, _, None, None) => {
                Effect::Stays(now)
            }
            (_, _, Sidecar, then) => Effect::KeepsSidecar { then },
            (_, _, Ambient, None) => Effect::Released,
            (_, _, Ambient, Sidecar) => Effect::RestartToGetSidecar { released: true },
            (_, _, None, Sidecar) => Effect::RestartToGetSidecar { released: false },
            (_, Phase::NotStarted, None, Ambient) => Effect::CapturedAtStart,
            (_, _, None, Ambient) => Effect::CapturedInPlace,
        };
        PodPlan { now, effect }
    }

    /// The command that re-creates the pod, for `namespace`.
    pub(super) fn restart_command(&self, namespace: &str) -> String {
        match &self.owner {
            Owner::Rollout(kind, name) => {
                format!("kubectl rollout restart {kind}/{name} -n {namespace}")
            }
            Owner::Other => format!(
                "kubectl delete pod {} -n {namespace}   # then create it again",
                self.name
            ),
        }
    }
}

/// The controller that re-creates `pod`, when `kubectl rollout restart`
/// can restart it. A Deployment's ReplicaSet is `<deployment>-<hash>`,
/// with the hash in the pod's `pod-template-hash` label.
fn owner_of(pod: &Pod) -> Owner {
    let Some(controller) = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
    else {
        return Owner::Other;
    };
    match controller.kind.as_str() {
        "StatefulSet" => Owner::Rollout("statefulset", controller.name.clone()),
        "DaemonSet" => Owner::Rollout("daemonset", controller.name.clone()),
        "ReplicaSet" => {
            let hash = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash"));
            match hash.and_then(|h| controller.name.strip_suffix(&format!("-{h}"))) {
                Some(deployment) => Owner::Rollout("deployment", deployment.to_string()),
                Option::None => Owner::Other,
            }
        }
        _ => Owner::Other,
    }
}

// === impl Effect ===

impl Effect {
    /// Whether the pod must be re-created to finish the switch.
    pub(super) fn needs_restart(&self) -> bool {
        matches!(
            self,
            Self::RestartToGetSidecar { .. } | Self::KeepsSidecar { .. }
        )
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Finished => f.write_str("finished; not affected"),
            Self::InvalidLabel(value) => write!(
                f,
                "its own label {MODE_LABEL}={value:?} is not a mode, so the control plane rejects the pod; fix the label (ambient, sidecar or none)"
            ),
            Self::PinnedByLabel(mode) => write!(
                f,
                "not affected: its own label {MODE_LABEL}={mode} overrides the namespace"
            ),
            Self::Stays(DataPlaneMode::Sidecar) => f.write_str("keeps its sidecar"),
            Self::Stays(DataPlaneMode::Ambient) => f.write_str("stays captured by the node's ztunnel"),
            Self::Stays(DataPlaneMode::None) => f.write_str("stays out of the mesh"),
            Self::CapturedAtStart => f.write_str("captured by the node's ztunnel when it starts"),
            Self::CapturedInPlace => f.write_str(
                "captured in place by the node's agent within seconds (no restart needed)",
            ),
            Self::RestartToGetSidecar { released: false } => {
                f.write_str("needs a restart to get a sidecar")
            }
            Self::RestartToGetSidecar { released: true } => f.write_str(
                "released by the node's ztunnel within seconds, so out of the mesh until it is restarted and gets a sidecar",
            ),
            Self::KeepsSidecar { then: DataPlaneMode::Ambient } => f.write_str(
                "keeps its sidecar until restarted; then the node's ztunnel captures it",
            ),
            Self::KeepsSidecar { .. } => {
                f.write_str("keeps its sidecar until restarted; then it leaves the mesh")
            }
            Self::Released => {
                f.write_str("released by the node's ztunnel within seconds: out of the mesh")
            }
        }
    }
}

#[cfg(test)]
mod tests;
