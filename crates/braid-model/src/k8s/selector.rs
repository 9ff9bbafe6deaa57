//! Endpoints of a Service with a selector: the pods it selects.

use std::{collections::BTreeMap, net::IpAddr};

use k8s_openapi::api::core::v1::{Namespace, Pod};

use super::{
    MeshSettings, pod,
    syntax::{self, IpFamily},
};
use crate::{Endpoint, ServicePort};

/// What the endpoints of one Service are resolved against.
pub(super) struct Scope<'a> {
    /// The Service's namespace; pods elsewhere are ignored.
    pub(super) namespace: &'a str,
    /// The Namespace object, for translating the pods.
    pub(super) namespace_object: Option<&'a Namespace>,
    /// Preferred address family for dual-stack pods.
    pub(super) family: Option<IpFamily>,
    pub(super) settings: &'a MeshSettings,
}

/// One endpoint per selected pod that is a workload with an IP, sorted by
/// address (then workload, as host-network pods share their node's IP).
pub(super) fn endpoints(
    scope: &Scope<'_>,
    selector: &BTreeMap<String, String>,
    ports: &[ServicePort],
    pods: &[&Pod],
) -> Vec<Endpoint> {
    let mut endpoints: Vec<Endpoint> = pods
        .iter()
        .filter(|p| syntax::namespace_or_default(&p.metadata) == scope.namespace)
        .filter(|p| selects(selector, p))
        .filter_map(|p| endpoint(scope, ports, p))
        .collect();
    endpoints.sort_by(|a, b| (a.address, &a.workload).cmp(&(b.address, &b.workload)));
    endpoints
}

fn endpoint(scope: &Scope<'_>, ports: &[ServicePort], pod: &Pod) -> Option<Endpoint> {
    // A pod that does not translate is reported on its own; it must not take
    // the whole Service down, and it is no workload a proxy could reach.
    let workload = pod::workload_from_pod(pod, scope.namespace_object, scope.settings)
        .ok()
        .flatten()?;
    let address = pick_address(&workload.addresses, scope.family)?;
    Some(Endpoint {
        workload: Some(workload.uid),
        address,
        ports: target_ports(pod, ports),
        status: workload.status,
    })
}

/// Whether every selector pair is among the pod's labels.
fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(key, value)| labels.and_then(|l| l.get(key)) == Some(value))
}

/// The first address of the preferred family, else the primary one.
fn pick_address(addresses: &[IpAddr], family: Option<IpFamily>) -> Option<IpAddr> {
    family
        .and_then(|f| addresses.iter().find(|a| IpFamily::of(a) == f))
        .or(addresses.first())
        .copied()
}

/// Service port -> port on this pod. A named target port the pod does not
/// declare leaves that service port out.
fn target_ports(pod: &Pod, ports: &[ServicePort]) -> BTreeMap<u16, u16> {
    ports
        .iter()
        .filter_map(|p| {
            let target = match (p.target_port, p.target_port_name.as_deref()) {
                (Some(number), _) => Some(number),
                (None, Some(name)) => pod::container_port(pod, name, p.protocol),
                (None, None) => Some(p.port),
            }?;
            Some((p.port, target))
        })
        .collect()
}
