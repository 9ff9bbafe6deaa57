//! `braid-proxy waypoint`: the shared L7 proxy in front of Services (or the
//! pods of a namespace) that name it with `braid.dev/waypoint`. It accepts
//! HBONE on 15008 as its own SPIFFE identity; each tunnel's target is the
//! address the caller dialled (a Service VIP or a pod address). A tunnel
//! that speaks HTTP is served by the same HTTP stack as a sidecar's outbound
//! side (routes for the caller's namespace, request telemetry); anything
//! else is proxied as bytes. Either way it leaves over HBONE to the
//! destination's ztunnel or sidecar, as this waypoint.
//!
//! The third composition: it reuses the mesh link ([`crate::common::Mesh`]), the
//! upstream layer, the HTTP stack and the admin endpoints, and adds only
//! the tunnel handling in [`tunnel`].

use std::{net::SocketAddr, sync::Arc};

use braid_capture::NetNs;
use braid_model::WaypointRef;
use serde::Serialize;
use tokio::{net::TcpListener, task::JoinSet};

use crate::{
    common::{EndpointArgs, MeshArgs, OnePod, Running, StartError, is_namespaced},
    hbone::{Server, Settings},
    l7::Senders,
    state::ProxyState,
    upstream::PodContext,
};

mod tunnel;

/// Configuration of `braid-proxy waypoint`.
#[derive(Clone, Debug, clap::Args, Serialize)]
pub struct Config {
    /// This waypoint's pod, as `<namespace>/<name>` (its Workload resource:
    /// its identity is the pod's service account).
    #[arg(long, env = "BRAID_POD", value_name = "NAMESPACE/NAME")]
    pub pod: String,

    /// The waypoint this proxy is, as `<namespace>/<name>`: what
    /// `braid.dev/waypoint` labels name. Tunnels to destinations fronted by
    /// another waypoint are refused.
    #[arg(long, env = "BRAID_WAYPOINT", value_name = "NAMESPACE/NAME")]
    pub waypoint: String,

    /// Where HBONE is accepted.
    #[arg(long, default_value = "0.0.0.0:15008", value_name = "ADDR")]
    pub hbone_listen: SocketAddr,

    /// Control plane and identity.
    #[command(flatten)]
    pub mesh: MeshArgs,

    /// HTTP endpoints.
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// A running waypoint.
pub struct Waypoint {
    state: ProxyState,
    hbone_addr: SocketAddr,
    admin_addrs: [SocketAddr; 3],
    running: Running,
    _proxy: JoinSet<()>,
}

// === impl Waypoint ===

impl Waypoint {
    /// Binds the HBONE listener and connects to the control plane; serves
    /// tunnels once the control plane sent the pod and its certificate.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let Some((namespace, name)) = config
            .waypoint
            .split_once('/')
            .filter(|_| is_namespaced(&config.waypoint))
        else {
            return Err(StartError::Bind(format!(
                "--waypoint {:?}: expected <namespace>/<name>, the Gateway the braid.dev/waypoint labels name",
                config.waypoint
            )));
        };
        let this = WaypointRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let netns = NetNs::current().map_err(|e| StartError::Bind(e.to_string()))?;
        let listener = TcpListener::bind(config.hbone_listen).await.map_err(|e| {
            StartError::Bind(format!("--hbone-listen {}: {e}", config.hbone_listen))
        })?;
        let hbone_addr = listener
            .local_addr()
            .map_err(|e| StartError::Bind(e.to_string()))?;
        let one = OnePod::connect(
            &config.mesh,
            &config.pod,
            "waypoint",
            netns,
            Some(this.clone()),
            None,
        )?;
        let mut proxy = JoinSet::new();
        proxy.spawn(serve(listener, one.pod.clone(), one.bundle.clone(), this));
        let mut extra = serde_json::Map::new();
        extra.insert("waypoint".into(), config.waypoint.clone().into());
        let (state, admin_addrs, running) = one.serve_endpoints(&config.endpoints, extra).await?;
        tracing::info!(pod = %config.pod, waypoint = %config.waypoint, %hbone_addr, "waypoint serving HBONE");
        Ok(Self {
            state,
            hbone_addr,
            admin_addrs,
            running,
            _proxy: proxy,
        })
    }

    /// The mesh as this waypoint sees it.
    pub fn state(&self) -> &ProxyState {
        &self.state
    }

    /// Where HBONE is accepted.
    pub fn hbone_addr(&self) -> SocketAddr {
        self.hbone_addr
    }

    /// Where the admin, metrics and readiness endpoints listen.
    pub fn admin_addrs(&self) -> [SocketAddr; 3] {
        self.admin_addrs
    }

    /// Stops everything.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// Waits for the pod's identity and certificate, then serves HBONE.
async fn serve(
    listener: TcpListener,
    pod: Arc<PodContext>,
    bundle: braid_identity::TrustBundle,
    this: WaypointRef,
) {
    let (id, certs) = crate::l4::inbound::wait_for_identity(&pod).await;
    let connector = tunnel::Tunnels {
        pod: pod.clone(),
        senders: Senders::default(),
        this,
    };
    match Server::rotating(certs, bundle, connector, Settings::default()) {
        Ok(server) => {
            tracing::debug!(pod = %pod.workload, %id, "waypoint HBONE ready");
            server.serve(listener).await
        }
        Err(error) => tracing::error!(pod = %pod.workload, %error, "cannot serve HBONE"),
    }
}
