//! Translation from Kubernetes objects (k8s-openapi types) into the domain
//! model. Every function here is pure; callers hand in the related objects.
//!
//! Errors name the field that is wrong (`spec.ports[1].targetPort`), so the
//! configuration source can report file, document and field.

use k8s_openapi::api::{
    core::v1::{Namespace, Pod, Service as KubeService},
    discovery::v1::EndpointSlice,
};

use crate::{Service, Workload};

mod pod;
mod service;

/// The label EndpointSlices carry to name their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Name of the sidecar container the injector adds; a pod with a container
/// (or restartable init container) of this name runs a sidecar.
pub const SIDECAR_CONTAINER: &str = "braid-proxy";

/// Mesh-wide settings the translation needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshSettings {
    /// Trust domain of workload identities.
    pub trust_domain: String,
    /// Cluster DNS domain for service host names.
    pub cluster_domain: String,
}

/// A field of a Kubernetes object that cannot be translated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// JSON-path-like location, e.g. `status.podIPs[1].ip`.
    pub field: String,
    /// What is wrong and, where possible, what to write instead.
    pub message: String,
}

// === impl MeshSettings ===

impl Default for MeshSettings {
    fn default() -> Self {
        Self {
            trust_domain: crate::DEFAULT_TRUST_DOMAIN.to_string(),
            cluster_domain: crate::DEFAULT_CLUSTER_DOMAIN.to_string(),
        }
    }
}

// === impl FieldError ===

impl FieldError {
    /// An error at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Translates a pod into a workload.
///
/// `namespace` is the pod's Namespace object when known (its labels supply
/// the mode and waypoint defaults). Returns `Ok(None)` for pods that are not
/// workloads: finished pods (phase Succeeded or Failed) whose IPs may already
/// be reused, and pods without a name.
pub fn workload_from_pod(
    pod: &Pod,
    namespace: Option<&Namespace>,
    settings: &MeshSettings,
) -> Result<Option<Workload>, FieldError> {
    pod::workload_from_pod(pod, namespace, settings)
}

/// Translates a Service into the model, resolving its endpoints.
///
/// With a selector, endpoints are the `pods` (all pods of the Service's
/// namespace may be passed; they are filtered by the selector) that have an
/// IP, with named target ports resolved against each pod's container ports.
/// Without a selector, endpoints come from `slices` (the EndpointSlices
/// labelled `kubernetes.io/service-name=<name>` in the namespace).
pub fn service_from_kube(
    service: &KubeService,
    namespace: Option<&Namespace>,
    pods: &[&Pod],
    slices: &[&EndpointSlice],
    settings: &MeshSettings,
) -> Result<Service, FieldError> {
    service::service_from_kube(service, namespace, pods, slices, settings)
}
