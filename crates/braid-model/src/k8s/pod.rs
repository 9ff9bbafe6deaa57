//! Pod -> Workload.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, PodStatus};

use super::{FieldError, MeshSettings, SIDECAR_CONTAINER, labels, ports, syntax};
use crate::{PortProtocol, Workload, WorkloadStatus, WorkloadUid};

/// ServiceAccount of pods that name none, as the API server defaults it.
const DEFAULT_SERVICE_ACCOUNT: &str = "default";

pub(super) fn workload_from_pod(
    pod: &Pod,
    namespace: Option<&Namespace>,
    settings: &MeshSettings,
) -> Result<Option<Workload>, FieldError> {
    let meta = &pod.metadata;
    let name = syntax::object_name_subdomain(meta)?;
    let ns = syntax::object_namespace(meta)?;
    if is_finished(pod) {
        // The kubelet may already have handed its IPs to a new pod.
        return Ok(None);
    }

    let spec = pod.spec.as_ref();
    let mode = match labels::mode(meta.labels.as_ref())? {
        Some(mode) => mode,
        None => labels::namespace_mode(namespace).unwrap_or_default(),
    };
    let waypoint = labels::namespace_waypoint(namespace).and_then(|w| w.to_ref(ns));

    Ok(Some(Workload {
        uid: WorkloadUid::new(ns, name),
        name: name.to_string(),
        namespace: ns.to_string(),
        service_account: service_account(spec)?.to_string(),
        node: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        addresses: addresses(pod.status.as_ref())?,
        labels: meta.labels.clone().unwrap_or_default(),
        mode,
        has_sidecar: has_sidecar(spec),
        waypoint,
        trust_domain: settings.trust_domain.clone(),
        status: status(pod),
    }))
}

/// Looks up the named container port a Service's `targetPort` refers to.
///
/// Like Kubernetes, matches name and protocol, in regular containers first,
/// then in native sidecars (restartable init containers).
pub(super) fn container_port(pod: &Pod, name: &str, protocol: PortProtocol) -> Option<u16> {
    let spec = pod.spec.as_ref()?;
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_native_sidecar(c));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.name.as_deref() == Some(name))
        .filter(|p| ports::protocol(p.protocol.as_deref()).ok() == Some(protocol))
        .find_map(|p| {
            u16::try_from(p.container_port)
                .ok()
                .filter(|port| *port != 0)
        })
}

/// Whether the pod has run to completion: phase `Succeeded` or `Failed`.
fn is_finished(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// `spec.serviceAccountName`, else the deprecated `spec.serviceAccount`
/// (old manifests still use it, and the API server copies it over), else
/// `default`. The name becomes part of the SPIFFE ID, so it is checked.
fn service_account(spec: Option<&PodSpec>) -> Result<&str, FieldError> {
    fn non_empty(value: &Option<String>) -> Option<&str> {
        value.as_deref().filter(|s| !s.is_empty())
    }
    let Some(spec) = spec else {
        return Ok(DEFAULT_SERVICE_ACCOUNT);
    };
    let (field, name) = match (
        non_empty(&spec.service_account_name),
        non_empty(&spec.service_account),
    ) {
        (Some(name), _) => ("spec.serviceAccountName", name),
        (None, Some(name)) => ("spec.serviceAccount", name),
        (None, None) => return Ok(DEFAULT_SERVICE_ACCOUNT),
    };
    syntax::dns_subdomain(name).map_err(|msg| FieldError::new(field, msg))?;
    Ok(name)
}

/// Pod IPs, primary first: `status.podIPs`, else the older single
/// `status.podIP`. Duplicates are dropped, keeping the first position.
fn addresses(status: Option<&PodStatus>) -> Result<Vec<IpAddr>, FieldError> {
    let Some(status) = status else {
        return Ok(Vec::new());
    };
    let mut addresses = Vec::new();
    match status.pod_ips.as_deref() {
        Some(ips) if !ips.is_empty() => {
            for (i, pod_ip) in ips.iter().enumerate() {
                let ip = syntax::ip(&pod_ip.ip, || format!("status.podIPs[{i}].ip"))?;
                if !addresses.contains(&ip) {
                    addresses.push(ip);
                }
            }
        }
        _ => {
            // An empty string is how Kubernetes spells "not assigned yet".
            if let Some(ip) = status.pod_ip.as_deref().filter(|ip| !ip.is_empty()) {
                addresses.push(syntax::ip(ip, || "status.podIP".to_string())?);
            }
        }
    }
    Ok(addresses)
}

/// Whether the pod runs the braid sidecar, as a regular container or as a
/// native sidecar.
fn has_sidecar(spec: Option<&PodSpec>) -> bool {
    let Some(spec) = spec else {
        return false;
    };
    spec.containers.iter().any(|c| c.name == SIDECAR_CONTAINER)
        || spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == SIDECAR_CONTAINER && is_native_sidecar(c))
}

/// An init container with `restartPolicy: Always` keeps running next to the
/// app containers (a Kubernetes "native sidecar").
fn is_native_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// Terminating once deletion started (even if still Ready: it should get no
/// new connections); otherwise Healthy exactly when the Ready condition is
/// True.
fn status(pod: &Pod) -> WorkloadStatus {
    if pod.metadata.deletion_timestamp.is_some() {
        return WorkloadStatus::Terminating;
    }
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if ready {
        WorkloadStatus::Healthy
    } else {
        WorkloadStatus::Unhealthy
    }
}

#[cfg(test)]
mod tests;
