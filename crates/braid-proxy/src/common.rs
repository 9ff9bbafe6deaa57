//! What every `braid-proxy` composition shares: the link to the control
//! plane (xDS into a [`ProxyState`], certificates from its CA) and the HTTP
//! endpoints (admin, metrics, readiness).

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use braid_identity::{CertificateManager, ManagerConfig, SpiffeId, TrustBundle, TrustDomain};
use braid_xds::{ClientHandle, ControlPlaneTls, GrpcCertificateSource};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::{
    admin::{self, AdminView, Role},
    state::ProxyState,
};

/// How a proxy reaches the control plane and proves who it is.
#[derive(Clone, Debug, clap::Args, Serialize)]
pub struct MeshArgs {
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

    /// The proxy's token: a `braid.dev/proxy-token` Secret naming this node
    /// (ztunnel) or this pod (sidecar).
    #[arg(long, env = "BRAID_TOKEN_FILE", value_name = "FILE")]
    pub token_file: PathBuf,

    /// Trust domain of the mesh.
    #[arg(long, env = "BRAID_TRUST_DOMAIN", default_value = braid_model::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
}

/// Where a proxy's HTTP endpoints listen.
#[derive(Clone, Debug, clap::Args, Serialize)]
pub struct EndpointArgs {
    /// Admin endpoint (config dump, metrics, readiness); keep it on loopback.
    /// Port 0 on any of the three endpoints lets the kernel pick; the bound
    /// address is logged at start (`listening addr=… role=…`).
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

    /// Most connections open at once on each of the three endpoints; new
    /// ones beyond are closed at once (and logged). A connection that sends
    /// no request headers for 10 s is closed too.
    #[arg(
        long,
        env = "BRAID_ENDPOINT_MAX_CONNECTIONS",
        default_value_t = admin::DEFAULT_MAX_CONNECTIONS,
        value_name = "N"
    )]
    pub endpoint_max_connections: usize,
}

/// Why a proxy cannot start.
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
    /// `--pod` is not `<namespace>/<name>`.
    #[error("--pod {0:?}: expected <namespace>/<name>, e.g. shop/web-0")]
    Pod(String),
    /// The pod's listeners (15001, 15006, 15008) cannot be bound.
    #[error("cannot bind the pod's listeners: {0}; is another proxy running in this pod?")]
    Bind(String),
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

/// The control plane as a proxy uses it.
pub(crate) struct Mesh {
    pub(crate) bundle: TrustBundle,
    pub(crate) certs: CertificateManager,
    pub(crate) state: ProxyState,
    pub(crate) xds: ClientHandle,
    pub(crate) xds_task: JoinHandle<()>,
}

// === impl Mesh ===

impl Mesh {
    /// Reads the root and token, starts the xDS client as `node_id`
    /// subscribed to what `layers` apply, and a certificate manager using
    /// the token.
    pub(crate) fn connect(
        args: &MeshArgs,
        node_id: &str,
        layers: crate::feed::Layers,
    ) -> Result<Self, StartError> {
        let read = |flag, path: &PathBuf| {
            std::fs::read(path).map_err(|source| StartError::Read {
                flag,
                path: path.clone(),
                source,
            })
        };
        let bundle = TrustBundle::from_pem(read("ca-root", &args.ca_root)?).map_err(|source| {
            StartError::Roots {
                path: args.ca_root.clone(),
                source,
            }
        })?;
        let token = String::from_utf8_lossy(&read("token-file", &args.token_file)?)
            .trim()
            .to_string();
        let trust_domain: TrustDomain = args.trust_domain.parse()?;
        let tls = ControlPlaneTls {
            bundle: bundle.clone(),
            expected: SpiffeId::control_plane(&trust_domain),
        };
        // TLS is decided by the root, not the scheme.
        let uri = args.control_plane.replace("https://", "http://");
        let control_plane = |source| StartError::ControlPlane {
            uri: args.control_plane.clone(),
            source,
        };
        let source = GrpcCertificateSource::new(&uri, &token, Some(&tls)).map_err(control_plane)?;
        let certs = CertificateManager::new(Arc::new(source), ManagerConfig::default());
        let state = ProxyState::new();
        let (xds, xds_task) = crate::feed::start(&uri, node_id, Some(tls), &token, &state, layers)
            .map_err(control_plane)?;
        Ok(Self {
            bundle,
            certs,
            state,
            xds,
            xds_task,
        })
    }
}

/// What a running composition must stop: the xDS client, the certificate
/// manager's renewals and its tasks.
pub(crate) struct Running {
    pub(crate) xds: ClientHandle,
    pub(crate) certs: CertificateManager,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops everything and waits for the tasks to end.
    pub(crate) async fn shutdown(self) {
        self.xds.shutdown();
        self.certs.shutdown();
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Readiness as far as the control plane goes: every xDS type synced.
pub(crate) fn xds_ready(xds: &ClientHandle) -> Result<(), String> {
    if xds.status().is_synced() {
        Ok(())
    } else {
        Err("not synced with the control plane yet".into())
    }
}

/// Binds the admin, metrics and readiness endpoints and serves `view` on
/// them; returns their bound addresses and tasks.
pub(crate) async fn serve_endpoints(
    args: &EndpointArgs,
    view: Arc<dyn AdminView>,
) -> Result<([SocketAddr; 3], Vec<JoinHandle<()>>), StartError> {
    let mut tasks = Vec::new();
    let mut addrs = [
        args.admin_listen,
        args.metrics_listen,
        args.readiness_listen,
    ];
    for (i, (flag, role)) in [
        ("admin-listen", Role::Admin),
        ("metrics-listen", Role::Metrics),
        ("readiness-listen", Role::Readiness),
    ]
    .into_iter()
    .enumerate()
    {
        let addr = addrs[i];
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { flag, addr, source })?;
        addrs[i] = listener.local_addr().unwrap_or(addr);
        tracing::info!(addr = %addrs[i], ?role, "listening");
        let gate = braid_listen::Gate::new(role.name()).with_limit(args.endpoint_max_connections);
        tasks.push(tokio::spawn(admin::serve(
            listener,
            gate,
            role,
            view.clone(),
        )));
    }
    Ok((addrs, tasks))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_seconds(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The certificates `certs` holds, for config dumps.
pub(crate) fn certificates_json(certs: &CertificateManager) -> serde_json::Value {
    certs
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
        .collect()
}

/// `braid_certificate_expiry_seconds` for every held certificate.
pub(crate) fn certificate_gauges(certs: &CertificateManager) -> String {
    let expiries: Vec<(String, u64)> = certs
        .status()
        .into_iter()
        .filter_map(|status| {
            let expiry = status.not_after?;
            Some((status.id.as_str().to_string(), unix_seconds(expiry)))
        })
        .collect();
    render_certificate_expiry(&expiries)
}

/// The `braid_certificate_expiry_seconds` family for (identity, expiry as
/// Unix seconds) pairs.
pub(crate) fn render_certificate_expiry(expiries: &[(String, u64)]) -> String {
    let metric = &braid_model::catalog::metrics::CERTIFICATE_EXPIRY;
    let mut out = metric.header();
    for (identity, expiry) in expiries {
        out.push_str(&format!(
            "{}{{identity=\"{}\"}} {expiry}\n",
            metric.name,
            crate::telemetry::escape(identity),
        ));
    }
    out
}

/// The mesh state as JSON (serde does not serialize `Arc` by default).
pub(crate) fn state_json(state: &ProxyState) -> serde_json::Value {
    fn refs<T>(values: &[Arc<T>]) -> Vec<&T> {
        values.iter().map(Arc::as_ref).collect()
    }
    serde_json::json!({
        "workloads": refs(&state.workloads()),
        "services": refs(&state.services()),
        "authorization_policies": refs(&state.authorizations()),
        "peer_authentications": refs(&state.peer_authentications()),
        "http_routes": refs(&state.http_routes()),
    })
}

mod pod_view;

pub(crate) use pod_view::{OnePod, is_namespaced};

#[cfg(test)]
mod tests;
