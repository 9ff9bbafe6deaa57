//! Where a captured outbound connection goes: a service's virtual IP picks a
//! ready endpoint, a workload's IP is that workload, and a meshed workload
//! is reached over HBONE at its own address (its sidecar's or its in-pod
//! ztunnel listener's port 15008). Anything else passes through.
//!
//! A Service (or, for traffic to a pod's own address, a workload) that
//! names a waypoint is reached through it: over HBONE to a ready endpoint
//! of the waypoint's Service, with the original `ip:port` as the tunnel's
//! target, so the waypoint applies its rules before anything reaches the
//! destination. No ready waypoint refuses the connection: traffic never
//! goes around a waypoint. The waypoint itself resolves without this step.

use std::{net::SocketAddr, sync::Arc};

use braid_model::{DataPlaneMode, Service, ServiceRef, WaypointRef, Workload, WorkloadStatus};
use rand::seq::IndexedRandom as _;

use super::ProxyState;
use crate::hbone;

/// The outcome of [`ProxyState::resolve`].
#[derive(Clone, Debug)]
pub enum Resolved {
    /// A workload with a proxy of its own: tunnel over HBONE.
    Mesh(Destination),
    /// Not in the mesh, or not known: plain TCP to `target`.
    Passthrough {
        /// Where to connect.
        target: SocketAddr,
    },
}

/// A meshed destination.
#[derive(Clone, Debug)]
pub struct Destination {
    /// The workload.
    pub workload: Arc<Workload>,
    /// Its `ip:port` (the `CONNECT` authority).
    pub target: SocketAddr,
    /// Where its proxy takes HBONE.
    pub proxy: SocketAddr,
    /// The waypoint the tunnel goes to, when `workload` is a waypoint that
    /// fronts the original destination.
    pub waypoint: Option<WaypointRef>,
}

/// Whether [`ProxyState::resolve`] sends waypoint-fronted destinations
/// through their waypoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waypoints {
    /// Yes: sidecars and the ztunnel.
    Honour,
    /// No: the waypoint itself, which is where those rules apply.
    Skip,
}

// === impl ProxyState ===

impl ProxyState {
    /// Resolves the original destination of a captured connection. An error
    /// says why the connection cannot go anywhere (a service without a
    /// ready endpoint for the port).
    pub fn resolve(&self, original: SocketAddr, waypoints: Waypoints) -> Result<Resolved, String> {
        let service = self.service_by_vip(original.ip());
        if waypoints == Waypoints::Honour
            && let Some(waypoint) = self.waypoint_behind(service.as_deref(), original)
        {
            return self.via_waypoint(&waypoint, original).map(Resolved::Mesh);
        }
        let target = match service {
            Some(service) => pick_endpoint(&service, original)?,
            None => original,
        };
        let Some(workload) = self.workload_by_ip(target.ip()) else {
            return Ok(Resolved::Passthrough { target });
        };
        if !is_meshed(&workload) {
            return Ok(Resolved::Passthrough { target });
        }
        let proxy = SocketAddr::new(target.ip(), hbone::DEFAULT_PORT);
        Ok(Resolved::Mesh(Destination {
            workload,
            target,
            proxy,
            waypoint: None,
        }))
    }

    /// The waypoint that fronts `original`: its Service's, or for a pod's
    /// own address, its workload's. `None` when nothing names one.
    pub fn waypoint_of(&self, original: SocketAddr) -> Option<WaypointRef> {
        self.waypoint_behind(self.service_by_vip(original.ip()).as_deref(), original)
    }

    /// [`ProxyState::waypoint_of`] with the Service at `original`'s address
    /// already looked up.
    fn waypoint_behind(
        &self,
        service: Option<&Service>,
        original: SocketAddr,
    ) -> Option<WaypointRef> {
        match service {
            Some(service) => service.waypoint.clone(),
            None => self.workload_by_ip(original.ip())?.waypoint.clone(),
        }
    }

    /// The tunnel to `waypoint` for traffic to `original`: a ready endpoint
    /// of the waypoint's Service (its name and namespace), the original
    /// address as the target.
    fn via_waypoint(
        &self,
        waypoint: &WaypointRef,
        original: SocketAddr,
    ) -> Result<Destination, String> {
        let name = format!("{}/{}", waypoint.namespace, waypoint.name);
        let refused = |why: &str| {
            format!(
                "{original} is served through waypoint {name}, which {why}; the traffic is refused \
                 rather than sent around the waypoint"
            )
        };
        let reference = ServiceRef::new(&waypoint.namespace, &waypoint.name);
        let service = self
            .service(&reference)
            .ok_or_else(|| refused("has no Service"))?;
        let ready: Vec<Arc<Workload>> = service
            .endpoints
            .iter()
            .filter(|e| e.status == WorkloadStatus::Healthy)
            .filter(|e| e.address.is_ipv4() == original.is_ipv4())
            .filter_map(|e| self.workload_by_ip(e.address))
            .collect();
        let workload = ready
            .choose(&mut rand::rng())
            .cloned()
            .ok_or_else(|| refused("has no ready endpoint"))?;
        let ip = workload
            .addresses
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == original.is_ipv4())
            .ok_or_else(|| refused("has no address of this family"))?;
        Ok(Destination {
            workload,
            target: original,
            proxy: SocketAddr::new(ip, hbone::DEFAULT_PORT),
            waypoint: Some(waypoint.clone()),
        })
    }
}

/// Whether `workload` has a proxy that takes HBONE: a sidecar, or the
/// ztunnel of an ambient pod.
pub(crate) fn is_meshed(workload: &Workload) -> bool {
    workload.has_sidecar || workload.mode == DataPlaneMode::Ambient
}

/// A ready endpoint of `service` for the port `original` asked for, picked at
/// random, as `ip:target port`.
fn pick_endpoint(service: &Service, original: SocketAddr) -> Result<SocketAddr, String> {
    let port = original.port();
    let Some(service_port) = service.ports.iter().find(|p| p.port == port) else {
        return Err(format!("service {} has no port {port}", service.reference));
    };
    let ready: Vec<SocketAddr> = service
        .endpoints
        .iter()
        .filter(|e| e.status == WorkloadStatus::Healthy)
        // Same family as the VIP, so an IPv4 client gets an IPv4 endpoint.
        .filter(|e| e.address.is_ipv4() == original.is_ipv4())
        .filter_map(|e| {
            let target_port = e
                .ports
                .get(&port)
                .copied()
                .or(service_port.target_port)
                .or(service_port.target_port_name.is_none().then_some(port))?;
            Some(SocketAddr::new(e.address, target_port))
        })
        .collect();
    ready.choose(&mut rand::rng()).copied().ok_or_else(|| {
        format!(
            "service {} has no ready endpoint for port {port}",
            service.reference
        )
    })
}

/// What a service port declares about the protocol its clients speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Declared {
    /// HTTP of some version (`http`, `http2`, `grpc`, `h2c`, WebSocket):
    /// detection only tells HTTP/1 from HTTP/2 and waits as long as needed.
    Http,
    /// Anything else (`tcp`, `tls`, `https`, `mysql`, ...): proxied as bytes
    /// at once, never sniffed, so server-first protocols never wait.
    Opaque,
}

impl ProxyState {
    /// The protocol declared for `original` (a service VIP's port with an
    /// `appProtocol` or a protocol-prefixed port name); `None` when nothing
    /// is declared and detection must decide.
    pub fn declared_protocol(&self, original: SocketAddr) -> Option<Declared> {
        let service = self.service_by_vip(original.ip())?;
        let port = service.ports.iter().find(|p| p.port == original.port())?;
        let declared = port.app_protocol.as_deref()?.to_ascii_lowercase();
        Some(match declared.as_str() {
            "http" | "http1" | "http2" | "h2c" | "grpc" | "grpc-web" | "kubernetes.io/h2c"
            | "kubernetes.io/ws" => Declared::Http,
            _ => Declared::Opaque,
        })
    }
}
