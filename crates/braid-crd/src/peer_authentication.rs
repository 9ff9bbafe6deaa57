//! `PeerAuthentication` (`braid.dev/v1alpha1`): whether the selected
//! workloads accept plaintext connections or only mutual TLS. The shape
//! mirrors Istio's `security.istio.io` PeerAuthentication (without
//! port-level modes).
//!
//! Doc comments on the spec types become the field descriptions of the
//! generated CRD schema (and so `kubectl explain`), so they are written for
//! users.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::selector::WorkloadSelector;

mod convert;

/// The desired state of a PeerAuthentication.
// Two printer columns share `type_ = "string"`, which clippy mistakes for a
// repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "braid.dev",
    version = "v1alpha1",
    kind = "PeerAuthentication",
    namespaced,
    shortname = "bpa",
    category = "braid",
    status = "PeerAuthenticationStatus",
    derive = "PartialEq",
    doc = "PeerAuthentication sets whether workloads accept plaintext connections (PERMISSIVE) or only mutual TLS (STRICT): for selected workloads, for a namespace, or, without a selector in the root namespace (braid-system), for the whole mesh.",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mtls.mode"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Accepted")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthenticationSpec {
    /// Selects the workloads (pods) of this namespace the policy applies to.
    /// When absent, the policy applies to every workload in the namespace;
    /// in the root namespace (braid-system), to every workload in the mesh.
    /// A policy with a selector beats one without in the same namespace,
    /// which beats a mesh-wide one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,

    /// Mutual TLS settings of the selected workloads.
    pub mtls: MutualTls,
}

/// Mutual TLS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MutualTls {
    /// STRICT: only mutual TLS connections reach the workloads; plaintext is
    /// refused. PERMISSIVE: both are accepted. Workloads no policy selects are
    /// PERMISSIVE.
    pub mode: MtlsMode,
}

/// Whether workloads accept plaintext connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum MtlsMode {
    /// Only mutual TLS; plaintext connections are refused.
    Strict,
    /// Mutual TLS and plaintext are both accepted.
    #[default]
    Permissive,
}

/// The observed state of a PeerAuthentication, written by the control plane.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerAuthenticationStatus {
    /// The `metadata.generation` the control plane last judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current conditions. `Accepted` is True when the policy is enforced, and
    /// False with reason `Invalid` and a message naming the offending field
    /// when it is not. Each condition's observedGeneration says which
    /// `metadata.generation` it describes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["type"]
    ))]
    pub conditions: Vec<Condition>,
}

// === impl MtlsMode ===

impl From<MtlsMode> for braid_model::MtlsMode {
    fn from(mode: MtlsMode) -> Self {
        match mode {
            MtlsMode::Strict => Self::Strict,
            MtlsMode::Permissive => Self::Permissive,
        }
    }
}

#[cfg(test)]
mod tests;
