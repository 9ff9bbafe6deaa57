//! Mode status: for each workload, the data-plane mode its labels ask for
//! (effective), the one that serves it now (actual), the connected proxy
//! that serves it, and what a mode switch still waits for.
//!
//! Switching a namespace's `braid.dev/mode` changes every pod's effective
//! mode at once, but not what runs in the pod: a pod keeps its sidecar
//! until it is re-created (and the ztunnel never captures a pod that has
//! one), and a pod only gets a sidecar when it is re-created with
//! injection. This module is pure: workloads and connected proxies in, rows
//! out. `debug.rs` serves the rows; `braidctl status` prints them.

use std::collections::BTreeSet;

use braid_model::{DataPlaneMode, Workload};
use serde::Serialize;

/// What a workload still waits for before its actual data plane matches its
/// effective mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingRestart {
    /// Nothing: the actual data plane is the effective mode.
    None,
    /// Effective mode sidecar but no sidecar container: only a re-created
    /// (injected) pod gets one.
    ToGetSidecar,
    /// Effective mode none but the pod still runs its sidecar.
    ToLeaveSidecar,
    /// Effective mode ambient but the pod still runs its sidecar, so the
    /// ztunnel does not capture it.
    ToJoinAmbient,
}

/// The kind of proxy that serves a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyKind {
    /// The pod's own sidecar.
    Sidecar,
    /// The ztunnel of the pod's node.
    Ztunnel,
}

/// A proxy connected over xDS that serves a workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServingProxy {
    /// Sidecar or ztunnel.
    pub kind: ProxyKind,
    /// Its xDS node id (`sidecar~<ns>/<pod>`, `ztunnel~<node>`).
    pub node_id: String,
}

/// One workload's mode status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkloadMode {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Node the pod is scheduled on; empty when unscheduled.
    pub node: String,
    /// From labels: pod label, else namespace label, else none.
    pub effective: DataPlaneMode,
    /// What serves the pod now (see [`actual_mode`]).
    pub actual: DataPlaneMode,
    /// What a switch still waits for.
    pub pending: PendingRestart,
    /// The connected proxy that serves the pod, if any.
    pub proxy: Option<ServingProxy>,
}

/// The proxies connected over xDS, by what they serve: sidecars by pod
/// (`<ns>/<pod>`), ztunnels by node. Other node ids (braidctl, foreign
/// clients) are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectedProxies {
    sidecars: BTreeSet<String>,
    ztunnels: BTreeSet<String>,
}

/// Node id prefix of a sidecar: `sidecar~<namespace>/<pod>`.
const SIDECAR_PREFIX: &str = "sidecar~";
/// Node id prefix of a ztunnel: `ztunnel~<node>`.
const ZTUNNEL_PREFIX: &str = "ztunnel~";

// === impl ConnectedProxies ===

impl ConnectedProxies {
    /// Sorts the node ids of connected streams into sidecars and ztunnels.
    pub fn from_node_ids<'a>(node_ids: impl IntoIterator<Item = &'a str>) -> Self {
        let mut proxies = Self::default();
        for id in node_ids {
            if let Some(pod) = id.strip_prefix(SIDECAR_PREFIX) {
                proxies.sidecars.insert(pod.to_string());
            } else if let Some(node) = id.strip_prefix(ZTUNNEL_PREFIX) {
                proxies.ztunnels.insert(node.to_string());
            }
        }
        proxies
    }

    /// The connected proxy that serves `w`, given its actual mode: its own
    /// sidecar if that is connected, else (ambient pods only) its node's
    /// ztunnel.
    fn serving(&self, w: &Workload, actual: DataPlaneMode) -> Option<ServingProxy> {
        let pod = format!("{}/{}", w.namespace, w.name);
        if self.sidecars.contains(&pod) {
            return Some(ServingProxy {
                kind: ProxyKind::Sidecar,
                node_id: format!("{SIDECAR_PREFIX}{pod}"),
            });
        }
        let ztunnel = actual == DataPlaneMode::Ambient
            && !w.node.is_empty()
            && self.ztunnels.contains(&w.node);
        ztunnel.then(|| ServingProxy {
            kind: ProxyKind::Ztunnel,
            node_id: format!("{ZTUNNEL_PREFIX}{}", w.node),
        })
    }
}

/// What serves a pod now, from what the control plane knows: a pod with the
/// braid-proxy container is `sidecar` (whatever its labels say now);
/// otherwise an ambient pod is `ambient` (the CNI agent captures it when it
/// starts, or in place when it turns ambient while running); otherwise `none`.
pub fn actual_mode(w: &Workload) -> DataPlaneMode {
    if w.has_sidecar {
        DataPlaneMode::Sidecar
    } else if w.mode == DataPlaneMode::Ambient {
        DataPlaneMode::Ambient
    } else {
        DataPlaneMode::None
    }
}

/// What a pod in `actual` must do to reach `effective`. Only a restart can
/// add or remove a sidecar; capture by the ztunnel follows the label.
pub fn pending_restart(effective: DataPlaneMode, actual: DataPlaneMode) -> PendingRestart {
    use DataPlaneMode::{Ambient, None, Sidecar};
    match (effective, actual) {
        (Sidecar, Sidecar) | (Ambient, Ambient) | (None, None) => PendingRestart::None,
        (Sidecar, _) => PendingRestart::ToGetSidecar,
        (Ambient, _) => PendingRestart::ToJoinAmbient,
        (None, _) => PendingRestart::ToLeaveSidecar,
    }
}

/// One row per workload, sorted by namespace and name; only `namespace`'s
/// when given.
pub fn rows<'a>(
    workloads: impl IntoIterator<Item = &'a Workload>,
    proxies: &ConnectedProxies,
    namespace: Option<&str>,
) -> Vec<WorkloadMode> {
    let mut rows: Vec<WorkloadMode> = workloads
        .into_iter()
        .filter(|w| namespace.is_none_or(|ns| w.namespace == ns))
        .map(|w| {
            let actual = actual_mode(w);
            WorkloadMode {
                namespace: w.namespace.clone(),
                name: w.name.clone(),
                node: w.node.clone(),
                effective: w.mode,
                actual,
                pending: pending_restart(w.mode, actual),
                proxy: proxies.serving(w, actual),
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    rows
}

#[cfg(test)]
mod tests;
