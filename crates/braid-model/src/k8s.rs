//! Translation from Kubernetes objects (k8s-openapi types) into the domain
//! model. Every function here is pure; callers hand in the related objects.
//!
//! Errors name the field that is wrong (`spec.ports[1].targetPort`), so the
//! configuration source can report file, document and field.
//!
//! A pod is checked once, into a [`PodInfo`]: the few fields translation
//! reads, small enough for a control plane to keep for every pod instead of
//! the Pod object.

use k8s_openapi::api::{
    core::v1::{Namespace, Pod, Service as KubeService},
    discovery::v1::EndpointSlice,
};

use crate::{Service, Workload};

pub use pod_info::PodInfo;

mod labels;
mod pod;
mod pod_info;
mod ports;
mod selector;
mod service;
mod slices;
mod syntax;

#[cfg(test)]
mod fixtures;

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

/// Translates a pod into a workload: [`PodInfo::from_pod`], then
/// [`workload_from_info`].
///
/// `namespace` is the pod's Namespace object when known (its labels supply
/// the mode and waypoint defaults; an invalid label there counts as absent,
/// see [`validate_namespace`]). Returns `Ok(None)` for pods that are not
/// workloads: finished pods (phase Succeeded or Failed) whose IPs may
/// already be reused.
///
/// Errors on a missing or invalid `metadata.name`, an invalid namespace or
/// ServiceAccount name, an unknown `braid.dev/mode` label value and pod IPs
/// that do not parse.
pub fn workload_from_pod(
    pod: &Pod,
    namespace: Option<&Namespace>,
    settings: &MeshSettings,
) -> Result<Option<Workload>, FieldError> {
    pod::workload_from_pod(pod, namespace, settings)
}

/// Translates a checked pod into a workload.
///
/// `namespace` is the pod's Namespace object when known: the pod's own
/// `braid.dev/mode` label wins, else the Namespace's applies, else the pod
/// is not in the mesh; the waypoint is the Namespace's. An invalid label on
/// the Namespace counts as absent (see [`validate_namespace`]). Cannot fail:
/// [`PodInfo::from_pod`] did the checking.
pub fn workload_from_info(
    info: &PodInfo,
    namespace: Option<&Namespace>,
    settings: &MeshSettings,
) -> Workload {
    pod::workload_from_info(info, namespace, settings)
}

/// Translates a Service into the model, resolving its endpoints.
///
/// With a selector, endpoints are the `pods` (all pods of the Service's
/// namespace may be passed; they are filtered by namespace and selector)
/// that have an IP, with named target ports resolved against each pod's
/// container ports (see [`PodInfo::container_port`]; a port the pod does not
/// declare is left out of that endpoint) and the pod's
/// [status](PodInfo::status). A pod gives one endpoint, at its first IP of
/// the Service's preferred family (first `spec.ipFamilies` entry, else that
/// of the first VIP), else at its primary IP. Pods that
/// [`PodInfo::from_pod`] rejects or skips (finished pods) have no `PodInfo`
/// and so are no endpoints. Without a selector, endpoints come from `slices`
/// (the EndpointSlices labelled `kubernetes.io/service-name=<name>` in the
/// namespace): one per address, merged across slices. Either way they are
/// sorted by address.
///
/// Related objects that are themselves invalid are left out rather than
/// failing the Service: an EndpointSlice that [`validate_endpoint_slice`]
/// rejects adds none, and an invalid Namespace label counts as absent.
/// Errors concern the Service itself: its name, cluster IPs, IP families,
/// ports and `braid.dev/waypoint` label.
pub fn service_from_kube(
    service: &KubeService,
    namespace: Option<&Namespace>,
    pods: &[&PodInfo],
    slices: &[&EndpointSlice],
    settings: &MeshSettings,
) -> Result<Service, FieldError> {
    service::service_from_kube(service, namespace, pods, slices, settings)
}

/// Checks the `braid.dev/mode` and `braid.dev/waypoint` labels of a
/// Namespace.
///
/// Translation treats an invalid Namespace label as absent, so a source
/// calls this to report the Namespace itself.
pub fn validate_namespace(ns: &Namespace) -> Result<(), FieldError> {
    labels::validate_namespace(ns)
}

/// Checks an EndpointSlice: the `kubernetes.io/service-name` label, an
/// `addressType` of `IPv4`, `IPv6` or `FQDN` with every address of that type,
/// port numbers from 1 to 65535 and known protocols.
///
/// [`service_from_kube`] skips slices that fail this check, so a source calls
/// it to report them.
pub fn validate_endpoint_slice(slice: &EndpointSlice) -> Result<(), FieldError> {
    slices::validate(slice)
}
