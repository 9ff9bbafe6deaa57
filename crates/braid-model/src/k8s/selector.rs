//! Endpoints of a Service with a selector: the pods it selects.

use std::{collections::BTreeMap, net::IpAddr};

use super::{PodInfo, syntax::IpFamily};
use crate::{Endpoint, ServicePort};

/// What the endpoints of one Service are resolved against.
pub(super) struct Scope<'a> {
    /// The Service's namespace; pods elsewhere are ignored.
    pub(super) namespace: &'a str,
    /// Preferred address family for dual-stack pods.
    pub(super) family: Option<IpFamily>,
}

/// One endpoint per selected pod with an IP, sorted by address (then
/// workload, as host-network pods share their node's IP).
pub(super) fn endpoints(
    scope: &Scope<'_>,
    selector: &BTreeMap<String, String>,
    ports: &[ServicePort],
    pods: &[&PodInfo],
) -> Vec<Endpoint> {
    let mut endpoints: Vec<Endpoint> = pods
        .iter()
        .filter(|p| p.namespace() == scope.namespace)
        .filter(|p| selects(selector, p.labels()))
        .filter_map(|p| endpoint(scope, ports, p))
        .collect();
    endpoints.sort_by(|a, b| (a.address, &a.workload).cmp(&(b.address, &b.workload)));
    endpoints
}

fn endpoint(scope: &Scope<'_>, ports: &[ServicePort], pod: &PodInfo) -> Option<Endpoint> {
    let address = pick_address(pod.addresses(), scope.family)?;
    Some(Endpoint {
        workload: Some(pod.uid()),
        address,
        ports: target_ports(pod, ports),
        status: pod.status(),
    })
}

/// Whether every selector pair is among the pod's labels.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
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
fn target_ports(pod: &PodInfo, ports: &[ServicePort]) -> BTreeMap<u16, u16> {
    ports
        .iter()
        .filter_map(|p| {
            let target = match (p.target_port, p.target_port_name.as_deref()) {
                (Some(number), _) => Some(number),
                (None, Some(name)) => pod.container_port(name, p.protocol),
                (None, None) => Some(p.port),
            }?;
            Some((p.port, target))
        })
        .collect()
}
