//! Services and their endpoints.

use std::{collections::BTreeMap, net::IpAddr};

use serde::{Deserialize, Serialize};

use crate::{ServiceRef, WaypointRef, WorkloadStatus, WorkloadUid};

/// A Kubernetes Service with its resolved endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Namespace and name.
    pub reference: ServiceRef,
    /// `<name>.<namespace>.svc.<cluster domain>`.
    pub hostname: String,
    /// Cluster IPs; empty when headless.
    pub vips: Vec<IpAddr>,
    /// Exposed ports.
    pub ports: Vec<ServicePort>,
    /// Every backend, ready or not, sorted by address.
    pub endpoints: Vec<Endpoint>,
    /// Waypoint for ambient traffic to this service.
    pub waypoint: Option<WaypointRef>,
    /// `clusterIP: None`.
    pub headless: bool,
}

/// One port a service exposes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    /// Port name; empty for a single unnamed port.
    pub name: String,
    /// Port on the VIP.
    pub port: u16,
    /// Numeric target port, or `None` when `target_port_name` is used.
    pub target_port: Option<u16>,
    /// Named target port, resolved against each pod's container ports.
    pub target_port_name: Option<String>,
    /// Declared application protocol (`appProtocol`, or a `http-`/`grpc-` style port name).
    pub app_protocol: Option<String>,
    /// Transport protocol.
    pub protocol: PortProtocol,
}

/// Transport protocol of a service port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// One backend of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The workload behind the address, when it is a known pod.
    pub workload: Option<WorkloadUid>,
    /// Endpoint address.
    pub address: IpAddr,
    /// Service port -> port on this endpoint. A service port that cannot be
    /// resolved on this endpoint (named port the pod lacks) is absent.
    pub ports: BTreeMap<u16, u16>,
    /// Readiness of this endpoint.
    pub status: WorkloadStatus,
}
