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
use braid_identity::{CertificateManager, ManagerConfig, SpiffeId, TrustBundle, TrustDomain};
use braid_xds::{ClientHandle, ControlPlaneTls, GrpcCertificateSource};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::{
    admin::{self, AdminView, Role},
    hbone::{Pool, Settings},
    state::ProxyState,
    telemetry::Metrics,
};

mod inbound;
mod outbound;
mod pod;
mod pods;

/// Configuration of `braid-proxy ztunnel`.
#[derive(Clone, Debug, clap::Args, Serialize)]
pub struct Config {
    /// This node's name: the ztunnel serves pods scheduled here and may only
    /// get certificates for their identities.
    #[arg(long, env = "BRAID_NODE")]
    pub node: String,

    /// The control plane's gRPC address (xDS and certificates); always TLS,
    /// verified against `--ca-root`.
    #[arg(
        long,
        env = "BRAID_CONTROL_PLANE",
        default_value = "http://127.0.0.1:15010"
    )]
    pub control_plane: String,

    /// The mesh's root certificate(s) (PEM): trusted for the control plane
    /// and for other proxies.
    #[arg(long, env = "BRAID_CA_ROOT", value_name = "FILE")]
    pub ca_root: PathBuf,

    /// The node's token (a `braid.dev/proxy-token` Secret naming this node).
    #[arg(long, env = "BRAID_TOKEN_FILE", value_name = "FILE")]
    pub token_file: PathBuf,

    /// Trust domain of the mesh.
    #[arg(long, env = "BRAID_TRUST_DOMAIN", default_value = braid_model::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,

    /// Unix socket the node agent hands pods over on.
    #[arg(
        long,
        env = "BRAID_HANDOFF_SOCKET",
        default_value = "/var/run/braid/ztunnel.sock",
        value_name = "PATH"
    )]
    pub handoff_socket: PathBuf,

    /// Admin endpoint (config dump, metrics, readiness); keep it on loopback.
    #[arg(
        long,
        env = "BRAID_ADMIN_LISTEN",
        default_value = "127.0.0.1:15000",
        value_name = "ADDR"
    )]
    pub admin_listen: SocketAddr,

    /// Prometheus metrics (`/metrics`).
    #[arg(
        long,
        env = "BRAID_METRICS_LISTEN",
        default_value = "0.0.0.0:15020",
        value_name = "ADDR"
    )]
    pub metrics_listen: SocketAddr,

    /// Readiness (`/healthz/ready`: 200 once every xDS type has synced).
    #[arg(
        long,
        env = "BRAID_READINESS_LISTEN",
        default_value = "0.0.0.0:15021",
        value_name = "ADDR"
    )]
    pub readiness_listen: SocketAddr,
}

/// Why the ztunnel cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A file named by a flag cannot be read.
    #[error("--{flag} {}: {source}", path.display())]
    Read {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// `--ca-root` holds no usable certificate.
    #[error("--ca-root {}: {source}", path.display())]
    Roots {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: braid_identity::CertificateError,
    },
    /// `--trust-domain` is not valid.
    #[error("--trust-domain: {0}")]
    TrustDomain(#[from] braid_identity::TrustDomainError),
    /// The xDS or certificate client could not be set up.
    #[error("control plane {uri}: {source}")]
    ControlPlane {
        /// `--control-plane`.
        uri: String,
        /// What failed.
        source: braid_xds::Error,
    },
    /// The hand-off socket cannot be opened.
    #[error(transparent)]
    Handoff(#[from] braid_cni::handoff::HandoffError),
    /// An HTTP endpoint cannot listen.
    #[error("cannot listen on {addr} (--{flag}): {source}; pick another address")]
    Listen {
        /// The flag.
        flag: &'static str,
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
}

/// A running ztunnel.
pub struct Ztunnel {
    state: ProxyState,
    xds: ClientHandle,
    certs: CertificateManager,
    pods: Arc<pods::Pods>,
    admin_addrs: [SocketAddr; 3],
    tasks: Vec<JoinHandle<()>>,
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
        let read = |flag, path: &PathBuf| {
            std::fs::read(path).map_err(|source| StartError::Read {
                flag,
                path: path.clone(),
                source,
            })
        };
        let bundle =
            TrustBundle::from_pem(read("ca-root", &config.ca_root)?).map_err(|source| {
                StartError::Roots {
                    path: config.ca_root.clone(),
                    source,
                }
            })?;
        let token = String::from_utf8_lossy(&read("token-file", &config.token_file)?)
            .trim()
            .to_string();
        let trust_domain: TrustDomain = config.trust_domain.parse()?;
        let tls = ControlPlaneTls {
            bundle: bundle.clone(),
            expected: SpiffeId::control_plane(&trust_domain),
        };
        let uri = config.control_plane.replace("https://", "http://");
        let control_plane = |source| StartError::ControlPlane {
            uri: config.control_plane.clone(),
            source,
        };
        let source = GrpcCertificateSource::new(&uri, &token, Some(&tls)).map_err(control_plane)?;
        let certs = CertificateManager::new(Arc::new(source), ManagerConfig::default());
        let state = ProxyState::new();
        let node_id = format!("ztunnel~{}", config.node);
        let (xds, xds_task) =
            crate::feed::start(&uri, &node_id, Some(tls), &state).map_err(control_plane)?;
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
        let mut tasks = vec![xds_task];
        let mut admin_addrs = Vec::new();
        for (flag, addr, role) in [
            ("admin-listen", config.admin_listen, Role::Admin),
            ("metrics-listen", config.metrics_listen, Role::Metrics),
            ("readiness-listen", config.readiness_listen, Role::Readiness),
        ] {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen { flag, addr, source })?;
            let bound = listener.local_addr().unwrap_or(addr);
            tracing::info!(addr = %bound, ?role, "listening");
            admin_addrs.push(bound);
            tasks.push(tokio::spawn(admin::serve(listener, role, view.clone())));
        }
        tasks.push(tokio::spawn(pods.clone().serve(listener)));
        tracing::info!(node = %config.node, socket = %config.handoff_socket.display(), "ztunnel ready for pods");
        let admin_addrs = [admin_addrs[0], admin_addrs[1], admin_addrs[2]];
        Ok(Self {
            state,
            xds,
            certs,
            pods,
            admin_addrs,
            tasks,
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

    /// Stops everything: listeners in pods close, the xDS stream ends.
    pub async fn shutdown(self) {
        self.xds.shutdown();
        self.certs.shutdown();
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

// === impl View ===

impl AdminView for View {
    fn config_dump(&self) -> serde_json::Value {
        let certificates: Vec<serde_json::Value> = self
            .certs
            .status()
            .into_iter()
            .map(|status| {
                serde_json::json!({
                    "identity": status.id.as_str(),
                    "expires_unix": status.not_after.map(unix_seconds),
                    "last_renewal_unix": status.last_renewal.map(unix_seconds),
                    "consecutive_failures": status.consecutive_failures,
                    "last_error": status.last_error,
                })
            })
            .collect();
        let pods: Vec<serde_json::Value> = self
            .pods
            .list()
            .into_iter()
            .map(|(uid, workload)| serde_json::json!({"uid": uid, "workload": workload}))
            .collect();
        let xds = self.xds.status();
        let (workloads, services) = (self.state.workloads(), self.state.services());
        let (authorizations, peer_authentications) = (
            self.state.authorizations(),
            self.state.peer_authentications(),
        );
        serde_json::json!({
            "captured_pods": pods,
            "certificates": certificates,
            "workloads": refs(&workloads),
            "services": refs(&services),
            "authorization_policies": refs(&authorizations),
            "peer_authentications": refs(&peer_authentications),
            "xds": {"connected": xds.is_connected(), "synced": xds.is_synced()},
        })
    }

    fn metrics(&self) -> String {
        let mut extra = format!(
            "# HELP braid_ztunnel_captured_pods Pods this ztunnel captures.\n\
             # TYPE braid_ztunnel_captured_pods gauge\n\
             braid_ztunnel_captured_pods {}\n\
             # HELP braid_certificate_expiry_seconds When each held certificate expires (Unix time).\n\
             # TYPE braid_certificate_expiry_seconds gauge\n",
            self.pods.len()
        );
        for status in self.certs.status() {
            if let Some(expiry) = status.not_after {
                extra.push_str(&format!(
                    "braid_certificate_expiry_seconds{{identity=\"{}\"}} {}\n",
                    crate::telemetry::escape(status.id.as_str()),
                    unix_seconds(expiry)
                ));
            }
        }
        self.metrics.render(&extra)
    }

    fn ready(&self) -> Result<(), String> {
        if self.xds.status().is_synced() {
            Ok(())
        } else {
            Err("not synced with the control plane yet".into())
        }
    }
}

/// Borrows for serialization (serde does not serialize `Arc` by default).
fn refs<T>(values: &[Arc<T>]) -> Vec<&T> {
    values.iter().map(Arc::as_ref).collect()
}

fn unix_seconds(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
