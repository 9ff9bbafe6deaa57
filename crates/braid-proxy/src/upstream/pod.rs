//! One captured pod: its network namespace, and what its listeners share.

use std::{net::SocketAddr, str::FromStr as _, sync::Arc};

use braid_capture::NetNs;
use braid_identity::{CertificateManager, SpiffeId, WorkloadCertificate};
use braid_model::{WaypointRef, Workload};
use tokio::net::{TcpSocket, TcpStream};

use crate::{
    hbone::{Dial, Dialing, Pool},
    state::{ProxyState, Waypoints},
    telemetry::{Metrics, Peer},
};

/// What every connection of one pod needs.
pub(crate) struct PodContext {
    /// `<namespace>/<pod>`: its Workload resource.
    pub(crate) workload: String,
    pub(crate) netns: NetNs,
    pub(crate) state: ProxyState,
    pub(crate) certs: CertificateManager,
    pub(crate) pool: Pool,
    pub(crate) metrics: Metrics,
    /// Tells this pod's pooled connections from other pods'.
    pub(crate) origin: u64,
    /// The waypoint this proxy is (`None` for sidecars and the ztunnel):
    /// destinations fronted by a waypoint are reached through it everywhere
    /// but at a waypoint, and routes attached to it apply there.
    pub(crate) this_waypoint: Option<WaypointRef>,
    /// The mark on the proxy's own sockets, which the capture rules let
    /// pass; `None` where only the proxy's uid exempts them (an injected
    /// sidecar running as that uid may not set marks).
    pub(crate) mark: Option<u32>,
}

// === impl PodContext ===

impl PodContext {
    /// Whether this proxy sends waypoint-fronted traffic through the
    /// waypoint (it is not one).
    pub(crate) fn waypoints(&self) -> Waypoints {
        match self.this_waypoint {
            Some(_) => Waypoints::Skip,
            None => Waypoints::Honour,
        }
    }

    /// The pod's workload, once the control plane has sent it.
    pub(crate) fn workload(&self) -> Result<Arc<Workload>, String> {
        self.state.workload(&self.workload).ok_or_else(|| {
            format!(
                "the control plane has not sent workload {} yet",
                self.workload
            )
        })
    }

    /// The pod as telemetry labels (`unknown` until the control plane sent it).
    pub(crate) fn peer(&self) -> Peer {
        self.workload()
            .map(|w| Peer::workload(&w))
            .unwrap_or_else(|_| Peer::unknown())
    }

    /// The pod's SPIFFE identity.
    pub(crate) fn identity(workload: &Workload) -> Result<SpiffeId, String> {
        SpiffeId::from_str(&workload.spiffe_id())
            .map_err(|e| format!("workload {}: {e}", workload.uid))
    }

    /// The pod's certificate (fetched on first use, then renewed).
    pub(crate) async fn certificate(
        &self,
        id: &SpiffeId,
    ) -> Result<Arc<WorkloadCertificate>, String> {
        self.certs
            .fetch(id)
            .await
            .map_err(|e| format!("no certificate for {id}: {e}"))
    }

    /// Connects to `to` from inside the pod, with the proxy's mark (or as
    /// the proxy's uid) so the pod's capture rules let it pass: the connection carries the pod's
    /// own address.
    pub(crate) async fn connect(&self, to: SocketAddr) -> std::io::Result<TcpStream> {
        let socket = self
            .netns
            .tcp_socket(to, self.mark)
            .map_err(std::io::Error::other)?;
        let _ = socket.set_tcp_nodelay(true);
        TcpSocket::from_std_stream(socket.into()).connect(to).await
    }
}

impl Dial for PodContext {
    fn origin(&self) -> u64 {
        self.origin
    }

    fn connect(&self, to: SocketAddr) -> Dialing<'_> {
        Box::pin(PodContext::connect(self, to))
    }
}
