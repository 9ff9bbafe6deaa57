//! Waypoint Gateways in the index: the Service a waypoint is reached
//! through, and what the status writer needs to say whether it is
//! `Programmed`.
//!
//! Callers find a waypoint through the Service named after it (the proxies'
//! only view of a waypoint), whose endpoints are the pods labelled
//! `gateway.networking.k8s.io/gateway-name: <name>`. On Kubernetes the
//! control plane creates that Service ([`crate::waypoints`]); in a YAML
//! directory nobody would, so the index implies it from the Gateway.

use std::{collections::BTreeMap, net::IpAddr};

use braid_crd::gateway::{GATEWAY_NAME_LABEL, HBONE_PORT, Waypoint};
use braid_model::{Service, WorkloadStatus};
use k8s_openapi::{
    api::core::v1::{Service as KubeService, ServicePort, ServiceSpec},
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};

/// The name of a waypoint Service's port.
pub const PORT_NAME: &str = "mesh";

/// What a waypoint Gateway has now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Its ready pods.
    pub ready: usize,
    /// Its Service's addresses (none for an implied Service).
    pub addresses: Vec<IpAddr>,
    /// The routes of its namespace attached to it.
    pub attached_routes: usize,
}

/// The states of one namespace's waypoints, by name.
pub type States = BTreeMap<String, State>;

// === impl State ===

impl State {
    /// The state of the waypoint whose Service is `service`.
    pub fn of(service: &Service) -> Self {
        Self {
            ready: service
                .endpoints
                .iter()
                .filter(|e| e.status == WorkloadStatus::Healthy)
                .count(),
            addresses: service.vips.clone(),
            attached_routes: 0,
        }
    }
}

/// The Service of `waypoint`: its name, selecting its pods, port 15008.
/// The same shape the control plane creates on Kubernetes, less the owner
/// reference and the cluster IP the API server would add.
pub fn implied_service(waypoint: &Waypoint) -> KubeService {
    KubeService {
        metadata: ObjectMeta {
            name: Some(waypoint.name.clone()),
            namespace: Some(waypoint.namespace.clone()),
            labels: Some(selector(waypoint)),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector(waypoint)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.to_string()),
                port: HBONE_PORT,
                target_port: Some(IntOrString::Int(HBONE_PORT)),
                protocol: Some("TCP".to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// `gateway.networking.k8s.io/gateway-name: <name>`: the label of the
/// waypoint's pods and of the objects made for it.
pub fn selector(waypoint: &Waypoint) -> BTreeMap<String, String> {
    BTreeMap::from([(GATEWAY_NAME_LABEL.to_string(), waypoint.name.clone())])
}

#[cfg(test)]
mod tests;
