//! Workloads: the pods the mesh knows about.

use std::{collections::BTreeMap, net::IpAddr};

use serde::{Deserialize, Serialize};

use crate::{DataPlaneMode, WorkloadUid};

/// One pod, as proxies see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// Stable id (`<namespace>/<name>`).
    pub uid: WorkloadUid,
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// ServiceAccount the pod runs as (its identity).
    pub service_account: String,
    /// Node the pod is scheduled on; empty when unscheduled.
    pub node: String,
    /// Pod IPs, primary first.
    pub addresses: Vec<IpAddr>,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// Effective mode: pod label, else namespace label, else none.
    pub mode: DataPlaneMode,
    /// Whether the pod actually runs a braid sidecar.
    pub has_sidecar: bool,
    /// Waypoint for ambient traffic to this workload.
    pub waypoint: Option<WaypointRef>,
    /// Trust domain of the workload's identity.
    pub trust_domain: String,
    /// Readiness.
    pub status: WorkloadStatus,
}

/// Whether a workload may receive new connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadStatus {
    /// Ready.
    #[default]
    Healthy,
    /// Not ready.
    Unhealthy,
    /// Being deleted: finish existing connections, accept no new ones.
    Terminating,
}

/// A reference to a waypoint (a Gateway).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WaypointRef {
    /// Gateway name.
    pub name: String,
    /// Gateway namespace.
    pub namespace: String,
}

// === impl Workload ===

impl Workload {
    /// The workload's SPIFFE identity, `spiffe://<td>/ns/<ns>/sa/<sa>`.
    pub fn spiffe_id(&self) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}
