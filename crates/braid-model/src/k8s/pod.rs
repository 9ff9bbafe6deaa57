//! PodInfo (+ Namespace) -> Workload.

use k8s_openapi::api::core::v1::{Namespace, Pod};

use super::{FieldError, MeshSettings, PodInfo, labels};
use crate::Workload;

pub(super) fn workload_from_pod(
    pod: &Pod,
    namespace: Option<&Namespace>,
    settings: &MeshSettings,
) -> Result<Option<Workload>, FieldError> {
    let info = PodInfo::from_pod(pod)?;
    Ok(info.map(|info| workload_from_info(&info, namespace, settings)))
}

/// The pod's own mode label wins, then the Namespace's, else none; the
/// waypoint comes from the Namespace.
pub(super) fn workload_from_info(
    info: &PodInfo,
    namespace: Option<&Namespace>,
    settings: &MeshSettings,
) -> Workload {
    let mode = info
        .mode()
        .or_else(|| labels::namespace_mode(namespace))
        .unwrap_or_default();
    let waypoint = labels::namespace_waypoint(namespace).and_then(|w| w.to_ref(info.namespace()));
    Workload {
        uid: info.uid(),
        name: info.name().to_string(),
        namespace: info.namespace().to_string(),
        service_account: info.service_account().to_string(),
        node: info.node().to_string(),
        addresses: info.addresses().to_vec(),
        labels: info.labels().clone(),
        mode,
        has_sidecar: info.has_sidecar(),
        waypoint,
        trust_domain: settings.trust_domain.clone(),
        status: info.status(),
    }
}

#[cfg(test)]
mod tests;
