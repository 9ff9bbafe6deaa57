//! The sidecar: a proxy inside one pod, for that pod only.
//!
//! It runs in the pod's network namespace (`braid-proxy init`, or the CNI
//! plugin, installed the redirect rules there), holds exactly one identity
//! — its pod's service account, which is all its pod token may ask for —
//! and serves the same L4 paths as the ztunnel does for an ambient pod:
//! outbound capture on 15001, plaintext inbound on 15006, HBONE on 15008.
//! So a sidecar pod and an ambient pod reach each other over HBONE with the
//! same identities and policies. Unlike the ztunnel it is HTTP-aware on
//! the way out ([`crate::l7`]): requests are routed, counted and logged one
//! by one.

use std::net::SocketAddr;

use braid_capture::NetNs;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::{
    common::{EndpointArgs, MeshArgs, OnePod, Running, StartError},
    listeners,
    state::ProxyState,
};

/// Configuration of `braid-proxy sidecar`.
#[derive(Clone, Debug, clap::Args, Serialize)]
pub struct Config {
    /// This pod, as `<namespace>/<name>` (its Workload resource).
    #[arg(long, env = "BRAID_POD", value_name = "NAMESPACE/NAME")]
    pub pod: String,

    /// Control plane and identity.
    #[command(flatten)]
    pub mesh: MeshArgs,

    /// HTTP endpoints.
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// A running sidecar.
pub struct Sidecar {
    state: ProxyState,
    admin_addrs: [SocketAddr; 3],
    running: Running,
    _proxy: JoinSet<()>,
}

// === impl Sidecar ===

impl Sidecar {
    /// Binds the pod's listeners in this process's network namespace and
    /// connects to the control plane. Returns once the listeners are bound,
    /// so the redirect rules never point at a closed port for long.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let netns = NetNs::current().map_err(|e| StartError::Bind(e.to_string()))?;
        let one = OnePod::connect(
            &config.mesh,
            &config.pod,
            "sidecar",
            netns,
            None,
            own_mark(),
        )?;
        let listeners = listeners::bind(&one.pod.netns, &config.pod).map_err(StartError::Bind)?;
        let proxy = listeners::serve(
            one.pod.clone(),
            listeners,
            one.bundle.clone(),
            Some(crate::l7::Senders::default()),
        );
        let (state, admin_addrs, running) = one
            .serve_endpoints(&config.endpoints, serde_json::Map::new())
            .await?;
        tracing::info!(pod = %config.pod, "sidecar serving 15001, 15006 and 15008");
        Ok(Self {
            state,
            admin_addrs,
            running,
            _proxy: proxy,
        })
    }

    /// The mesh as this sidecar sees it.
    pub fn state(&self) -> &ProxyState {
        &self.state
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

/// The proxy mark when this process may set it (root or `CAP_NET_ADMIN`,
/// as when started by hand or in tests); otherwise none. An injected
/// sidecar runs as the proxy uid without capabilities, and the redirect
/// rules let that uid's connections pass by owner instead.
fn own_mark() -> Option<u32> {
    let probe = std::net::UdpSocket::bind(("127.0.0.1", 0)).ok()?;
    match braid_capture::set_mark(&probe, braid_capture::PROXY_MARK) {
        Ok(()) => Some(braid_capture::PROXY_MARK),
        Err(error) => {
            tracing::info!(%error, "cannot mark sockets; relying on the proxy uid being excluded from capture");
            None
        }
    }
}
