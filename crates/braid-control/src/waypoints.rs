//! What the control plane runs for a waypoint Gateway on Kubernetes: a
//! ServiceAccount (the waypoint's SPIFFE identity), a Service (where
//! callers find it: port 15008, selecting its pods) and a Deployment of
//! `braid-proxy waypoint`, each named after the Gateway and owned by it, so
//! deleting the Gateway deletes them (the garbage collector's work).
//!
//! Built here as k8s-openapi types (pure); [`apply`] writes them with
//! server-side apply as the leader's status writer judges the Gateway. The
//! Deployment leaves `replicas` unset, so `kubectl scale` or an autoscaler
//! owns the count; every other field Braid sets is Braid's.

use std::collections::BTreeMap;

use braid_crd::gateway::{HBONE_PORT, Waypoint};
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{Container, ContainerPort, PodSpec, PodTemplateSpec, Service, ServiceAccount},
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
};

use crate::{index::waypoints as implied, inject::InjectConfig};

pub mod apply;

/// The objects of one waypoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Objects {
    /// Its identity.
    pub service_account: ServiceAccount,
    /// Where callers reach it.
    pub service: Service,
    /// Its pods.
    pub deployment: Deployment,
}

/// The objects for `waypoint`, owned by the Gateway whose `uid` is given.
pub fn objects(waypoint: &Waypoint, uid: &str, config: &InjectConfig) -> Objects {
    let meta = || ObjectMeta {
        name: Some(waypoint.name.clone()),
        namespace: Some(waypoint.namespace.clone()),
        labels: Some(labels(waypoint)),
        annotations: (!waypoint.annotations.is_empty()).then(|| waypoint.annotations.clone()),
        owner_references: Some(vec![owner(waypoint, uid)]),
        ..Default::default()
    };
    let mut service = implied::implied_service(waypoint);
    service.metadata = meta();
    let deployment = Deployment {
        metadata: meta(),
        spec: Some(DeploymentSpec {
            selector: LabelSelector {
                match_labels: Some(implied::selector(waypoint)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(waypoint)),
                    annotations: (!waypoint.annotations.is_empty())
                        .then(|| waypoint.annotations.clone()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(waypoint.name.clone()),
                    containers: vec![container(waypoint, config)],
                    volumes: Some(crate::inject::template::volumes()),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    };
    Objects {
        service_account: ServiceAccount {
            metadata: meta(),
            ..Default::default()
        },
        service,
        deployment,
    }
}

/// The sidecar's proxy container, running as a waypoint: a regular
/// container (it is the pod's only one), its HBONE port declared. Its name
/// (`braid-proxy`) is what makes the pod meshed (it gets its identity) and
/// keeps the injector and the ztunnel away from it.
fn container(waypoint: &Waypoint, config: &InjectConfig) -> Container {
    let mut container = crate::inject::template::proxy_container(config);
    container.restart_policy = None;
    container.args = Some(vec![
        "waypoint".to_string(),
        "--pod".to_string(),
        "$(BRAID_POD_NAMESPACE)/$(BRAID_POD_NAME)".to_string(),
        "--waypoint".to_string(),
        format!("{}/{}", waypoint.namespace, waypoint.name),
    ]);
    container.ports = Some(vec![ContainerPort {
        name: Some(implied::PORT_NAME.to_string()),
        container_port: HBONE_PORT,
        protocol: Some("TCP".to_string()),
        ..Default::default()
    }]);
    container
}

/// The Gateway's `spec.infrastructure.labels` and the Gateway name label
/// (which wins: the Service selects it).
fn labels(waypoint: &Waypoint) -> BTreeMap<String, String> {
    let mut labels = waypoint.labels.clone();
    labels.extend(implied::selector(waypoint));
    labels
}

/// The owner reference to the Gateway (`controller: true`: Braid manages
/// the object for it).
fn owner(waypoint: &Waypoint, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: format!("{}/v1", braid_crd::httproute::GATEWAY_GROUP),
        kind: "Gateway".to_string(),
        name: waypoint.name.clone(),
        uid: uid.to_string(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

#[cfg(test)]
mod tests;
