//! The ztunnel: one process per node serving every ambient pod on it.
//!
//! The node agent hands each pod's network namespace over a Unix socket
//! ([`braid_cni::handoff`]); the ztunnel opens the pod's listeners inside
//! it — outbound capture on 15001, plaintext inbound on 15006, HBONE on
//! 15008 — so the pod's traffic leaves with the pod's own address and the
//! pod's identity. Configuration (workloads, services, policies) comes over
//! xDS into a [`ProxyState`]; certificates for the pods' identities come
//! from the control plane's CA, authorized by the node's token.

use std::{path::PathBuf, sync::Arc};

use braid_cni::handoff::HandoffListener;
use braid_identity::{CertificateManager, ManagerConfig, SpiffeId, TrustBundle, TrustDomain};
use braid_xds::{ClientHandle, ControlPlaneTls, GrpcCertificateSource};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::{
    hbone::{Pool, Settings},
    state::ProxyState,
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

    /// The control plane's gRPC address (xDS and certificates).
    #[arg(
        long,
        env = "BRAID_CONTROL_PLANE",
        default_value = "https://127.0.0.1:15010"
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
}

/// A running ztunnel.
pub struct Ztunnel {
    state: ProxyState,
    xds: ClientHandle,
    certs: CertificateManager,
    pods: Arc<pods::Pods>,
    tasks: Vec<JoinHandle<()>>,
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
        let pods = Arc::new(pods::Pods::new(state.clone(), certs.clone(), pool, bundle));
        let serving = tokio::spawn(pods.clone().serve(listener));
        tracing::info!(node = %config.node, socket = %config.handoff_socket.display(), "ztunnel ready for pods");
        Ok(Self {
            state,
            xds,
            certs,
            pods,
            tasks: vec![xds_task, serving],
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
