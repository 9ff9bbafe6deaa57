//! The ztunnel: one process per node serving every ambient pod on it.
//!
//! The node agent hands each pod's network namespace over a Unix socket
//! ([`braid_cni::handoff`]); the ztunnel opens the pod's listeners inside
//! it — outbound capture on 15001, plaintext inbound on 15006, HBONE on
//! 15008 — so the pod's traffic leaves with the pod's own address and the
//! pod's identity. Configuration (workloads, services, policies) comes over
//! xDS into a [`ProxyState`]; certificates for the pods' identities come
//! from the control plane's CA, authorized by the node's token.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use braid_cni::handoff::HandoffListener;
use braid_identity::CertificateManager;
use braid_xds::ClientHandle;
use serde::Serialize;

pub use crate::common::{EndpointArgs, MeshArgs, StartError};
use crate::{
    admin::AdminView,
    common::{self, Mesh, Running, serve_endpoints},
    hbone::{Pool, Settings},
    state::ProxyState,
    telemetry::Metrics,
};

mod pods;

/// Configuration of `braid-proxy ztunnel`.
#[derive(Clone, Debug, clap::Args, Serialize)]
pub struct Config {
    /// This node's name: the ztunnel serves pods scheduled here and may only
    /// get certificates for their identities.
    #[arg(long, env = "BRAID_NODE")]
    pub node: String,

    /// Control plane and identity.
    #[command(flatten)]
    pub mesh: MeshArgs,

    /// Unix socket the node agent hands pods over on.
    #[arg(
        long,
        env = "BRAID_HANDOFF_SOCKET",
        default_value = "/var/run/braid/ztunnel.sock",
        value_name = "PATH"
    )]
    pub handoff_socket: PathBuf,

    /// HTTP endpoints.
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// A running ztunnel.
pub struct Ztunnel {
    state: ProxyState,
    pods: Arc<pods::Pods>,
    admin_addrs: [SocketAddr; 3],
    running: Running,
}

/// What the admin endpoints show of a ztunnel.
struct View {
    state: ProxyState,
    metrics: Metrics,
    certs: CertificateManager,
    pods: Arc<pods::Pods>,
    xds: ClientHandle,
}

// === impl Ztunnel ===

impl Ztunnel {
    /// Connects to the control plane and starts taking pods on the hand-off
    /// socket. Returns once the socket listens.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let Mesh {
            bundle,
            certs,
            state,
            xds,
            xds_task,
        } = Mesh::connect(
            &config.mesh,
            &format!("ztunnel~{}", config.node),
            crate::feed::Layers::L4,
        )?;
        let listener = HandoffListener::bind(&config.handoff_socket)?;
        let pool = Pool::new(bundle.clone(), Settings::default());
        let metrics = Metrics::default();
        let pods = Arc::new(pods::Pods::new(
            state.clone(),
            certs.clone(),
            pool,
            bundle,
            metrics.clone(),
        ));
        let view: Arc<dyn AdminView> = Arc::new(View {
            state: state.clone(),
            metrics,
            certs: certs.clone(),
            pods: pods.clone(),
            xds: xds.clone(),
        });
        let (admin_addrs, mut tasks) = serve_endpoints(&config.endpoints, view).await?;
        tasks.push(xds_task);
        tasks.push(tokio::spawn(pods.clone().serve(listener)));
        tracing::info!(node = %config.node, socket = %config.handoff_socket.display(), "ztunnel ready for pods");
        Ok(Self {
            state,
            pods,
            admin_addrs,
            running: Running { xds, certs, tasks },
        })
    }

    /// The mesh as this ztunnel sees it.
    pub fn state(&self) -> &ProxyState {
        &self.state
    }

    /// How many pods are captured.
    pub fn captured_pods(&self) -> usize {
        self.pods.len()
    }

    /// Where the admin, metrics and readiness endpoints listen.
    pub fn admin_addrs(&self) -> [SocketAddr; 3] {
        self.admin_addrs
    }

    /// Where the admin endpoint (`--admin-listen`) is bound; with port 0,
    /// the port the kernel picked.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addrs[0]
    }

    /// Where the Prometheus endpoint (`--metrics-listen`) is bound.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.admin_addrs[1]
    }

    /// Where the readiness endpoint (`--readiness-listen`) is bound.
    pub fn readiness_addr(&self) -> SocketAddr {
        self.admin_addrs[2]
    }

    /// Stops everything: listeners in pods close, the xDS stream ends.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

// === impl View ===

impl AdminView for View {
    fn config_dump(&self) -> serde_json::Value {
        let pods: Vec<serde_json::Value> = self
            .pods
            .list()
            .into_iter()
            .map(|(uid, workload)| serde_json::json!({"uid": uid, "workload": workload}))
            .collect();
        let xds = self.xds.status();
        let mut dump = common::state_json(&self.state);
        dump["captured_pods"] = pods.into();
        dump["certificates"] = common::certificates_json(&self.certs);
        dump["xds"] =
            serde_json::json!({"connected": xds.is_connected(), "synced": xds.is_synced()});
        dump
    }

    fn metrics(&self) -> String {
        let extra = format!(
            "{}{}",
            captured_pods_gauge(self.pods.len()),
            common::certificate_gauges(&self.certs)
        );
        self.metrics.render(&extra)
    }

    fn ready(&self) -> Result<(), String> {
        common::xds_ready(&self.xds)
    }
}

/// The `braid_ztunnel_captured_pods` family.
pub(crate) fn captured_pods_gauge(pods: usize) -> String {
    let metric = &braid_model::catalog::metrics::ZTUNNEL_CAPTURED_PODS;
    format!("{}{} {pods}\n", metric.header(), metric.name)
}
