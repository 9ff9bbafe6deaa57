//! Conversions between wire types and `braid-model`: `*_to_proto` out,
//! `TryFrom` in. A failed conversion is a NACK reason, so errors name the
//! resource and the field.

use std::net::IpAddr;

use braid_model as model;

use crate::braid::{security::v1alpha1 as sec, workload::v1alpha1 as wl};

mod route;

pub use route::http_route_to_proto;

/// A resource received over xDS that does not convert to the model.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{kind} {name:?}: field {field}: {message}")]
pub struct ConvertError {
    /// Resource kind, e.g. `Workload`.
    pub kind: &'static str,
    /// Resource name (uid, `<ns>/<name>`).
    pub name: String,
    /// Field path within the message.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn ip_to_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Result<IpAddr, String> {
    match bytes.len() {
        4 => Ok(IpAddr::from(
            <[u8; 4]>::try_from(bytes).map_err(|e| e.to_string())?,
        )),
        16 => Ok(IpAddr::from(
            <[u8; 16]>::try_from(bytes).map_err(|e| e.to_string())?,
        )),
        n => Err(format!("an IP address must be 4 or 16 bytes, got {n}")),
    }
}

fn port_from_u32(port: u32) -> Result<u16, String> {
    u16::try_from(port).map_err(|_| format!("port {port} is out of range 0-65535"))
}

// === Workload ===

/// The wire form of a data-plane mode.
pub fn mode_to_proto(mode: model::DataPlaneMode) -> wl::DataPlaneMode {
    match mode {
        model::DataPlaneMode::None => wl::DataPlaneMode::None,
        model::DataPlaneMode::Sidecar => wl::DataPlaneMode::Sidecar,
        model::DataPlaneMode::Ambient => wl::DataPlaneMode::Ambient,
    }
}

fn status_to_proto(status: model::WorkloadStatus) -> wl::WorkloadStatus {
    match status {
        model::WorkloadStatus::Healthy => wl::WorkloadStatus::Healthy,
        model::WorkloadStatus::Unhealthy => wl::WorkloadStatus::Unhealthy,
        model::WorkloadStatus::Terminating => wl::WorkloadStatus::Terminating,
    }
}

fn status_from_proto(status: wl::WorkloadStatus) -> model::WorkloadStatus {
    match status {
        // Fail closed: no new connections to a workload of unknown health.
        wl::WorkloadStatus::Unspecified => model::WorkloadStatus::Unhealthy,
        wl::WorkloadStatus::Healthy => model::WorkloadStatus::Healthy,
        wl::WorkloadStatus::Unhealthy => model::WorkloadStatus::Unhealthy,
        wl::WorkloadStatus::Terminating => model::WorkloadStatus::Terminating,
    }
}

fn waypoint_to_proto(w: &model::WaypointRef) -> wl::WaypointRef {
    wl::WaypointRef {
        name: w.name.clone(),
        namespace: w.namespace.clone(),
    }
}

fn waypoint_from_proto(w: wl::WaypointRef) -> model::WaypointRef {
    model::WaypointRef {
        name: w.name,
        namespace: w.namespace,
    }
}

/// The wire form of a workload.
pub fn workload_to_proto(w: &model::Workload) -> wl::Workload {
    wl::Workload {
        uid: w.uid.to_string(),
        name: w.name.clone(),
        namespace: w.namespace.clone(),
        service_account: w.service_account.clone(),
        node: w.node.clone(),
        addresses: w.addresses.iter().map(ip_to_bytes).collect(),
        labels: w.labels.clone(),
        mode: mode_to_proto(w.mode) as i32,
        has_sidecar: w.has_sidecar,
        waypoint: w.waypoint.as_ref().map(waypoint_to_proto),
        trust_domain: w.trust_domain.clone(),
        status: status_to_proto(w.status) as i32,
    }
}

impl TryFrom<wl::Workload> for model::Workload {
    type Error = ConvertError;

    fn try_from(w: wl::Workload) -> Result<Self, Self::Error> {
        let err = |field: &str, message: String| ConvertError {
            kind: "Workload",
            name: w.uid.clone(),
            field: field.to_string(),
            message,
        };
        if w.uid.is_empty() {
            return Err(err("uid", "must not be empty".into()));
        }
        let addresses = w
            .addresses
            .iter()
            .enumerate()
            .map(|(i, a)| ip_from_bytes(a).map_err(|m| err(&format!("addresses[{i}]"), m)))
            .collect::<Result<Vec<_>, _>>()?;
        let mode = match wl::DataPlaneMode::try_from(w.mode) {
            Ok(wl::DataPlaneMode::Sidecar) => model::DataPlaneMode::Sidecar,
            Ok(wl::DataPlaneMode::Ambient) => model::DataPlaneMode::Ambient,
            Ok(wl::DataPlaneMode::None | wl::DataPlaneMode::Unspecified) => {
                model::DataPlaneMode::None
            }
            Err(_) => return Err(err("mode", format!("unknown mode {}", w.mode))),
        };
        let status = wl::WorkloadStatus::try_from(w.status)
            .map(status_from_proto)
            .map_err(|_| err("status", format!("unknown status {}", w.status)))?;
        Ok(model::Workload {
            uid: model::WorkloadUid::from_raw(w.uid.clone()),
            name: w.name,
            namespace: w.namespace,
            service_account: w.service_account,
            node: w.node,
            addresses,
            labels: w.labels,
            mode,
            has_sidecar: w.has_sidecar,
            waypoint: w.waypoint.map(waypoint_from_proto),
            trust_domain: w.trust_domain,
            status,
        })
    }
}

// === Service ===

/// The wire form of a service.
pub fn service_to_proto(s: &model::Service) -> wl::Service {
    wl::Service {
        name: s.reference.name.clone(),
        namespace: s.reference.namespace.clone(),
        hostname: s.hostname.clone(),
        vips: s.vips.iter().map(ip_to_bytes).collect(),
        ports: s
            .ports
            .iter()
            .map(|p| wl::ServicePort {
                name: p.name.clone(),
                port: u32::from(p.port),
                target_port: p.target_port.map(u32::from).unwrap_or(0),
                target_port_name: p.target_port_name.clone().unwrap_or_default(),
                app_protocol: p.app_protocol.clone().unwrap_or_default(),
                protocol: match p.protocol {
                    model::PortProtocol::Tcp => wl::PortProtocol::Tcp,
                    model::PortProtocol::Udp => wl::PortProtocol::Udp,
                    model::PortProtocol::Sctp => wl::PortProtocol::Sctp,
                } as i32,
            })
            .collect(),
        endpoints: s
            .endpoints
            .iter()
            .map(|e| wl::Endpoint {
                workload_uid: e
                    .workload
                    .as_ref()
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                address: ip_to_bytes(&e.address),
                ports: e
                    .ports
                    .iter()
                    .map(|(k, v)| (u32::from(*k), u32::from(*v)))
                    .collect(),
                status: status_to_proto(e.status) as i32,
            })
            .collect(),
        waypoint: s.waypoint.as_ref().map(waypoint_to_proto),
        headless: s.headless,
    }
}

impl TryFrom<wl::Service> for model::Service {
    type Error = ConvertError;

    fn try_from(s: wl::Service) -> Result<Self, Self::Error> {
        let name = format!("{}/{}", s.namespace, s.name);
        let err = |field: String, message: String| ConvertError {
            kind: "Service",
            name: name.clone(),
            field,
            message,
        };
        let vips = s
            .vips
            .iter()
            .enumerate()
            .map(|(i, a)| ip_from_bytes(a).map_err(|m| err(format!("vips[{i}]"), m)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut ports = Vec::with_capacity(s.ports.len());
        for (i, p) in s.ports.into_iter().enumerate() {
            let port = port_from_u32(p.port).map_err(|m| err(format!("ports[{i}].port"), m))?;
            let target = port_from_u32(p.target_port)
                .map_err(|m| err(format!("ports[{i}].target_port"), m))?;
            let protocol = match wl::PortProtocol::try_from(p.protocol) {
                Ok(wl::PortProtocol::Tcp) => model::PortProtocol::Tcp,
                Ok(wl::PortProtocol::Udp) => model::PortProtocol::Udp,
                Ok(wl::PortProtocol::Sctp) => model::PortProtocol::Sctp,
                Err(_) => {
                    return Err(err(
                        format!("ports[{i}].protocol"),
                        format!("unknown protocol {}", p.protocol),
                    ));
                }
            };
            ports.push(model::ServicePort {
                name: p.name,
                port,
                target_port: (target != 0).then_some(target),
                target_port_name: (!p.target_port_name.is_empty()).then_some(p.target_port_name),
                app_protocol: (!p.app_protocol.is_empty()).then_some(p.app_protocol),
                protocol,
            });
        }
        let mut endpoints = Vec::with_capacity(s.endpoints.len());
        for (i, e) in s.endpoints.into_iter().enumerate() {
            let address =
                ip_from_bytes(&e.address).map_err(|m| err(format!("endpoints[{i}].address"), m))?;
            let mut eports = std::collections::BTreeMap::new();
            for (k, v) in e.ports {
                let k = port_from_u32(k).map_err(|m| err(format!("endpoints[{i}].ports"), m))?;
                let v = port_from_u32(v).map_err(|m| err(format!("endpoints[{i}].ports"), m))?;
                eports.insert(k, v);
            }
            let status = wl::WorkloadStatus::try_from(e.status)
                .map(status_from_proto)
                .map_err(|_| {
                    err(
                        format!("endpoints[{i}].status"),
                        format!("unknown status {}", e.status),
                    )
                })?;
            endpoints.push(model::Endpoint {
                workload: (!e.workload_uid.is_empty())
                    .then(|| model::WorkloadUid::from_raw(e.workload_uid)),
                address,
                ports: eports,
                status,
            });
        }
        Ok(model::Service {
            reference: model::ServiceRef::new(s.namespace, s.name),
            hostname: s.hostname,
            vips,
            ports,
            endpoints,
            waypoint: s.waypoint.map(waypoint_from_proto),
            headless: s.headless,
        })
    }
}

// === Authorization ===

/// The wire form of an authorization policy.
pub fn authorization_to_proto(p: &model::AuthorizationPolicy) -> sec::Authorization {
    sec::Authorization {
        name: p.name.clone(),
        namespace: p.namespace.clone(),
        selector: p.selector.clone().unwrap_or_default(),
        action: match p.action {
            model::Action::Allow => sec::Action::Allow,
            model::Action::Deny => sec::Action::Deny,
        } as i32,
        rules: p
            .rules
            .iter()
            .map(|r| sec::Rule {
                source_principals: r.source_principals.clone(),
                source_namespaces: r.source_namespaces.clone(),
                destination_ports: r.destination_ports.iter().map(|p| u32::from(*p)).collect(),
            })
            .collect(),
    }
}

impl TryFrom<sec::Authorization> for model::AuthorizationPolicy {
    type Error = ConvertError;

    fn try_from(p: sec::Authorization) -> Result<Self, Self::Error> {
        let name = format!("{}/{}", p.namespace, p.name);
        let err = |field: String, message: String| ConvertError {
            kind: "Authorization",
            name: name.clone(),
            field,
            message,
        };
        let action = match sec::Action::try_from(p.action) {
            Ok(sec::Action::Allow) => model::Action::Allow,
            Ok(sec::Action::Deny) => model::Action::Deny,
            Ok(sec::Action::Unspecified) => {
                return Err(err(
                    "action".into(),
                    "is unset; must be ALLOW or DENY".into(),
                ));
            }
            Err(_) => return Err(err("action".into(), format!("unknown action {}", p.action))),
        };
        let mut rules = Vec::with_capacity(p.rules.len());
        for (i, r) in p.rules.into_iter().enumerate() {
            let destination_ports = r
                .destination_ports
                .iter()
                .map(|p| {
                    port_from_u32(*p).map_err(|m| err(format!("rules[{i}].destination_ports"), m))
                })
                .collect::<Result<Vec<_>, _>>()?;
            rules.push(model::Rule {
                source_principals: r.source_principals,
                source_namespaces: r.source_namespaces,
                destination_ports,
            });
        }
        Ok(model::AuthorizationPolicy {
            name: p.name,
            namespace: p.namespace,
            selector: (!p.selector.is_empty()).then_some(p.selector),
            action,
            rules,
        })
    }
}

// === PeerAuthentication ===

/// The wire form of a peer authentication policy.
pub fn peer_authentication_to_proto(p: &model::PeerAuthentication) -> sec::PeerAuthentication {
    sec::PeerAuthentication {
        name: p.name.clone(),
        namespace: p.namespace.clone(),
        selector: p.selector.clone().unwrap_or_default(),
        mode: match p.mode {
            model::MtlsMode::Strict => sec::MtlsMode::Strict,
            model::MtlsMode::Permissive => sec::MtlsMode::Permissive,
        } as i32,
    }
}

impl TryFrom<sec::PeerAuthentication> for model::PeerAuthentication {
    type Error = ConvertError;

    fn try_from(p: sec::PeerAuthentication) -> Result<Self, Self::Error> {
        let err = |message: String| ConvertError {
            kind: "PeerAuthentication",
            name: format!("{}/{}", p.namespace, p.name),
            field: "mode".into(),
            message,
        };
        let mode = match sec::MtlsMode::try_from(p.mode) {
            Ok(sec::MtlsMode::Strict) => model::MtlsMode::Strict,
            Ok(sec::MtlsMode::Permissive) => model::MtlsMode::Permissive,
            // Fail closed: guessing PERMISSIVE could let plaintext through,
            // guessing STRICT could cut off a whole namespace.
            Ok(sec::MtlsMode::Unspecified) => {
                return Err(err("is unset; must be STRICT or PERMISSIVE".into()));
            }
            Err(_) => return Err(err(format!("unknown mode {}", p.mode))),
        };
        Ok(model::PeerAuthentication {
            name: p.name,
            namespace: p.namespace,
            selector: (!p.selector.is_empty()).then_some(p.selector),
            mode,
        })
    }
}

#[cfg(test)]
mod tests;
