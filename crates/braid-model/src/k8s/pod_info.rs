//! Pod -> PodInfo: the validated facts about a pod that translation needs.
//!
//! A control plane keeps one of these per pod instead of the Pod itself: a
//! k8s-openapi Pod holds its whole spec (every container, probe and volume)
//! and status, several kilobytes, while translation reads a dozen fields.

use std::{collections::BTreeMap, net::IpAddr};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};

use super::{FieldError, SIDECAR_CONTAINER, labels, ports, syntax};
use crate::{DataPlaneMode, PortProtocol, WorkloadStatus, WorkloadUid};

/// ServiceAccount of pods that name none, as the API server defaults it.
const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// What translation needs of a Pod, checked once.
///
/// Built only by [`PodInfo::from_pod`], which does all the validation pod
/// translation needs, so [`workload_from_info`](super::workload_from_info)
/// and [`service_from_kube`](super::service_from_kube) cannot fail on it.
/// It depends on the pod alone, not on its Namespace object: a change of
/// the Namespace's labels needs no new `PodInfo`.
///
/// Finished pods (phase `Succeeded` or `Failed`) have no `PodInfo`: they are
/// no workloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    /// `metadata.namespace`, `default` when absent; a DNS label.
    namespace: String,
    /// `metadata.name`; a DNS subdomain.
    name: String,
    /// `metadata.labels`, for selectors and the workload.
    labels: BTreeMap<String, String>,
    /// The pod's own `braid.dev/mode` label; `None` when absent, so the
    /// Namespace's label applies.
    mode: Option<DataPlaneMode>,
    /// The ServiceAccount (`default` when unnamed); a DNS subdomain.
    service_account: String,
    /// `spec.nodeName`; empty when unscheduled.
    node: String,
    /// Pod IPs, primary first, without duplicates.
    addresses: Vec<IpAddr>,
    /// Named container ports that a Service's named `targetPort` can resolve
    /// to, in lookup order; see [`PodInfo::container_port`].
    named_ports: Vec<NamedPort>,
    /// Whether the pod runs the braid sidecar, as a regular container or as
    /// a native sidecar.
    has_sidecar: bool,
    /// Whether deletion started (`metadata.deletionTimestamp` is set).
    terminating: bool,
    /// Whether the pod's Ready condition is True.
    ready: bool,
}

/// A container port with a name, as a named `targetPort` looks it up.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NamedPort {
    /// `ports[].name`, a valid port name.
    name: String,
    /// `ports[].containerPort`, from 1 to 65535.
    port: u16,
    /// `ports[].protocol`.
    protocol: PortProtocol,
}

// === impl PodInfo ===

impl PodInfo {
    /// Reads and checks what translation needs of `pod`.
    ///
    /// Returns `Ok(None)` for pods that are not workloads: finished pods
    /// (phase `Succeeded` or `Failed`), whose IPs may already be reused.
    ///
    /// Errors on a missing or invalid `metadata.name`, an invalid namespace
    /// or ServiceAccount name, an unknown `braid.dev/mode` label value and pod
    /// IPs that do not parse. Container ports are not checked: one that is
    /// invalid is simply never a named target port.
    pub fn from_pod(pod: &Pod) -> Result<Option<Self>, FieldError> {
        let meta = &pod.metadata;
        let name = syntax::object_name_subdomain(meta)?;
        let namespace = syntax::object_namespace(meta)?;
        let status = pod.status.as_ref();
        if is_finished(status) {
            // The kubelet may already have handed its IPs to a new pod.
            return Ok(None);
        }
        let spec = pod.spec.as_ref();
        let mode = labels::mode(meta.labels.as_ref())?;
        let service_account = service_account(spec)?.to_string();
        let addresses = addresses(status)?;
        Ok(Some(Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            labels: meta.labels.clone().unwrap_or_default(),
            mode,
            service_account,
            node: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            addresses,
            named_ports: named_ports(spec),
            has_sidecar: has_sidecar(spec),
            terminating: meta.deletion_timestamp.is_some(),
            ready: is_ready(status),
        }))
    }

    /// The pod's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The pod's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The uid of the workload this pod becomes, `<namespace>/<name>`.
    pub fn uid(&self) -> WorkloadUid {
        WorkloadUid::new(&self.namespace, &self.name)
    }

    /// The pod's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// The mode the pod's own `braid.dev/mode` label asks for; `None` when
    /// the label is absent.
    pub fn mode(&self) -> Option<DataPlaneMode> {
        self.mode
    }

    /// The ServiceAccount the pod runs as.
    pub fn service_account(&self) -> &str {
        &self.service_account
    }

    /// The node the pod is scheduled on; empty when unscheduled.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Pod IPs, primary first, without duplicates; empty before the pod has
    /// one.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// Whether the pod runs the braid sidecar.
    pub fn has_sidecar(&self) -> bool {
        self.has_sidecar
    }

    /// Whether the pod is being deleted.
    pub fn is_terminating(&self) -> bool {
        self.terminating
    }

    /// Whether the pod's Ready condition is True (also while terminating).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Terminating once deletion started (even if still Ready: it should get
    /// no new connections); otherwise Healthy exactly when Ready.
    pub fn status(&self) -> WorkloadStatus {
        if self.terminating {
            WorkloadStatus::Terminating
        } else if self.ready {
            WorkloadStatus::Healthy
        } else {
            WorkloadStatus::Unhealthy
        }
    }

    /// The container port named `name` for `protocol`, as a Service's named
    /// `targetPort` resolves it.
    ///
    /// Like Kubernetes, matches name and protocol, in regular containers
    /// first, then in native sidecars (restartable init containers).
    pub fn container_port(&self, name: &str, protocol: PortProtocol) -> Option<u16> {
        self.named_ports
            .iter()
            .find(|p| p.name == name && p.protocol == protocol)
            .map(|p| p.port)
    }
}

/// Whether the pod has run to completion: phase `Succeeded` or `Failed`.
fn is_finished(status: Option<&PodStatus>) -> bool {
    let phase = status.and_then(|s| s.phase.as_deref());
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
    // Kept for the pod's lifetime: no spare capacity.
    addresses.shrink_to_fit();
    Ok(addresses)
}

/// The container ports a named `targetPort` can resolve to, regular
/// containers first, then native sidecars.
///
/// Only the first usable port of each (name, protocol) is kept, since a
/// lookup stops there. Ports that can never match are dropped: unnamed, an
/// invalid name (a named `targetPort` must be a valid port name), an unknown
/// protocol or a number outside 1 to 65535.
fn named_ports(spec: Option<&PodSpec>) -> Vec<NamedPort> {
    let Some(spec) = spec else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_native_sidecar(c));
    let mut out: Vec<NamedPort> = Vec::new();
    for port in spec
        .containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
    {
        let Some(name) = port.name.as_deref() else {
            continue;
        };
        let (Ok(number), Ok(protocol)) = (
            u16::try_from(port.container_port),
            ports::protocol(port.protocol.as_deref()),
        ) else {
            continue;
        };
        let usable = number != 0 && syntax::port_name(name).is_ok();
        if usable && !out.iter().any(|p| p.name == name && p.protocol == protocol) {
            out.push(NamedPort {
                name: name.to_string(),
                port: number,
                protocol,
            });
        }
    }
    out.shrink_to_fit();
    out
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

/// Whether the Ready condition is True.
fn is_ready(status: Option<&PodStatus>) -> bool {
    status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[cfg(test)]
mod tests;
