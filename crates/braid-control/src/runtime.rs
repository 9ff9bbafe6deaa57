//! Wiring: load the configuration once, then run the source watcher, the
//! index publisher, the gRPC server (xDS + debug) and the admin endpoint.

use std::{net::SocketAddr, str::FromStr as _, sync::Arc, time::Duration};

use braid_api::braid::{
    admin::v1alpha1::control_plane_debug_server::ControlPlaneDebugServer,
    security::v1alpha1::certificate_service_server::CertificateServiceServer,
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
    task::JoinHandle,
};

pub(crate) mod connections;
mod debug_auth;
mod source;

use braid_listen::Gate;
use connections::{CallsLayer, Timeouts};
use debug_auth::DebugGuard;

use braid_identity::{Ca, CertificateManager, LocalCa, ManagerConfig, SpiffeId, TrustDomain};

use crate::{
    Config,
    auth::Authenticator,
    certificates::CertificateServer,
    debug::DebugState,
    identities::Identities,
    index::{
        Index, NamespaceModes,
        publisher::{self, Debounce, Outputs},
    },
    inject::{cert::WebhookIssuer, server::Webhook},
    metrics::Metrics,
    snapshot::Snapshot,
    source::ConfigErrors,
    tokenreview::TokenReviewer,
    xds::{AdsServer, Registry},
};

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listen address is taken or not allowed.
    #[error("cannot listen on {addr} ({what}): {source}; pick another address with --{flag}")]
    Bind {
        /// What the listener is for.
        what: &'static str,
        /// The flag that sets it.
        flag: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration directory cannot be read.
    #[error(transparent)]
    Source(#[from] crate::source::file::FileSourceError),
    /// `--source file` without a directory.
    #[error("--source file needs --config-dir DIR (or use --source kube)")]
    NoConfigDir,
    /// The Kubernetes source cannot start.
    #[error(transparent)]
    Kube(#[from] crate::source::kubernetes::KubeSourceError),
    /// `--kubeconfig` cannot be used.
    #[error("--kubeconfig {}: {message}", path.display())]
    Kubeconfig {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The CA cannot be loaded or created.
    #[error("certificate authority {}: {source}", location.display())]
    Ca {
        /// The `--ca-dir`, or the `--ca-cert` of an intermediate.
        location: std::path::PathBuf,
        /// What failed.
        source: braid_identity::ca::CaError,
    },
    /// A file of the operator's intermediate CA cannot be read.
    #[error("--{flag} {}: {source}", path.display())]
    CaFile {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The control plane's own certificate could not be issued.
    #[error("cannot issue the control plane's serving certificate: {0}")]
    ServingCertificate(String),
    /// The injection webhook's certificate cannot be issued.
    #[error("injection webhook: {0}")]
    Webhook(#[from] crate::inject::cert::CertError),
    /// `--trust-domain` is not a valid SPIFFE trust domain.
    #[error("--trust-domain: {0}")]
    TrustDomain(#[from] braid_identity::TrustDomainError),
}

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    xds_addr: SocketAddr,
    admin_addr: SocketAddr,
    webhook_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    errors: ConfigErrors,
    metrics: Arc<Metrics>,
    tasks: Vec<JoinHandle<()>>,
}

// === impl ControlPlane ===

impl ControlPlane {
    /// Loads the configuration directory and starts serving. Returns once the
    /// listeners are bound and the initial configuration is published, so a
    /// proxy that connects right away gets the complete state.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let xds = bind(config.xds_listen, "xDS", "xds-listen").await?;
        let admin = bind(config.admin_listen, "admin", "admin-listen").await?;
        let xds_addr = local_addr(&xds, config.xds_listen);
        let admin_addr = local_addr(&admin, config.admin_listen);
        // The webhook's certificate comes from the CA: no CA, no webhook.
        let webhook = match config.ca_dir.is_some() || config.ca_cert.is_some() {
            true => Some(bind(config.webhook_listen, "injection webhook", "webhook-listen").await?),
            false => None,
        };
        let webhook_addr = webhook
            .as_ref()
            .map(|l| local_addr(l, config.webhook_listen));

        let ca = load_ca(&config)?;
        let errors = ConfigErrors::default();
        let metrics = Arc::new(Metrics::default());
        let (source, initial) = source::open(&config, &errors).await?;
        let mut index = Index::new(config.mesh_settings());
        let (snapshot_tx, snapshots) = watch::channel(Arc::new(Snapshot::default()));
        let (identities_tx, identities) = watch::channel(Arc::new(Identities::default()));
        let (namespaces_tx, namespaces) = watch::channel(Arc::new(NamespaceModes::new()));
        let (findings_tx, findings) = watch::channel(Arc::default());
        let outputs = Outputs {
            snapshots: snapshot_tx,
            identities: identities_tx,
            namespaces: namespaces_tx,
            metrics: metrics.clone(),
            errors: errors.clone(),
            findings: findings_tx,
        };
        publisher::apply_and_publish(&mut index, initial, &outputs);
        tracing::info!(
            source = ?config.source,
            version = snapshots.borrow().version,
            errors = errors.list().len(),
            "initial configuration loaded"
        );

        let (shutdown, shutdown_rx) = watch::channel(false);
        let (change_tx, change_rx) = mpsc::channel(64);
        let debounce = Debounce {
            quiet: config.debounce,
            max: config.max_debounce,
        };
        let registry = Arc::new(Registry::default());
        let debug = DebugState {
            registry: registry.clone(),
            snapshots: snapshots.clone(),
            errors: errors.clone(),
            config: Arc::new(config.clone()),
        };

        let mut tasks = Vec::new();
        let kube_client = source.client();
        tasks.extend(source.spawn(
            &config,
            ca.as_deref(),
            change_tx,
            findings,
            metrics.clone(),
            shutdown_rx.clone(),
        ));
        tasks.push(tokio::spawn(publisher::run(
            index, change_rx, outputs, debounce,
        )));
        let auth = match kube_client {
            Some(client) => Authenticator::new(identities).with_token_review(
                Arc::new(TokenReviewer::new(client, config.token_audience.clone())),
                config.node_service_account.clone(),
            ),
            None => Authenticator::new(identities),
        };
        let certificates = ca.clone().map(|ca| {
            CertificateServiceServer::new(CertificateServer::new(
                ca,
                auth.clone(),
                config.cert_lifetime,
            ))
        });
        let debug_api = DebugGuard::new(ControlPlaneDebugServer::new(debug.clone()), auth.clone());
        let ads = AdsServer::new(snapshots.clone(), registry, metrics.clone())
            .with_auth(auth, config.xds_require_token);
        // Pings find proxies that vanished without closing their stream (node
        // lost, network partition), so proxy-status does not list them forever.
        // `CallsLayer` lets each connection see whether it carries a call
        // (`connections.rs` closes those that carry none for too long).
        let grpc = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .max_concurrent_streams(crate::xds::MAX_STREAMS_PER_CONNECTION)
            .layer(CallsLayer)
            .add_service(crate::xds::AdsService::new(ads))
            .add_service(debug_api)
            .add_optional_service(certificates);
        let mut stop = shutdown_rx.clone();
        let tls = match &ca {
            Some(ca) => Some(serving_certificate(ca.clone(), &config).await?),
            None => None,
        };
        let gate = Gate::new("xDS").with_limit(config.xds_max_connections);
        let timeouts = Timeouts {
            handshake: config.xds_handshake_timeout,
            idle: config.xds_idle_timeout,
        };
        tasks.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            let incoming = connections::incoming(xds, gate, tls, timeouts);
            let served = grpc.serve_with_incoming_shutdown(incoming, stopped).await;
            if let Err(e) = served {
                tracing::error!(error = %e, "xDS server failed");
            }
        }));
        if let (Some(listener), Some(ca)) = (webhook, &ca) {
            let issuer = WebhookIssuer::new(
                ca,
                &ca_key_file(&config),
                &config.webhook_dns_names,
                config.webhook_listen.ip(),
                config.cert_lifetime,
            )?;
            let webhook = Webhook {
                config: Arc::new(config.inject_config()),
                namespaces,
            };
            tasks.extend(crate::inject::server::spawn(
                listener,
                issuer,
                webhook,
                config.webhook_max_connections,
                shutdown_rx.clone(),
            )?);
        } else {
            tracing::info!("injection webhook off: it needs a CA (--ca-dir or --ca-cert)");
        }
        tasks.push(tokio::spawn(crate::admin::serve(
            admin,
            crate::admin::Admin {
                debug,
                metrics: metrics.clone(),
                debug_remote: config.admin_debug_remote,
                max_connections: config.admin_max_connections,
            },
            shutdown_rx,
        )));
        let webhook = webhook_addr.map_or_else(|| "off".to_string(), |a| a.to_string());
        tracing::info!(%xds_addr, %admin_addr, %webhook, "control plane serving");
        Ok(Self {
            xds_addr,
            admin_addr,
            webhook_addr,
            shutdown,
            snapshots,
            errors,
            metrics,
            tasks,
        })
    }

    /// The bound xDS/debug gRPC address.
    pub fn xds_addr(&self) -> SocketAddr {
        self.xds_addr
    }

    /// The bound admin HTTP address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The bound injection webhook address; `None` without a CA.
    pub fn webhook_addr(&self) -> Option<SocketAddr> {
        self.webhook_addr
    }

    /// The newest published configuration version (0 before anything loaded).
    pub fn version(&self) -> u64 {
        self.snapshots.borrow().version
    }

    /// Counters and gauges (as on the admin endpoint's `/metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Current configuration errors.
    pub fn config_errors(&self) -> Vec<crate::source::ConfigError> {
        self.errors.list()
    }

    /// Stops serving: closes the listeners and every stream, then waits for
    /// the tasks to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            // The watcher and publisher have no shutdown signal of their own;
            // they hold no state worth flushing.
            task.abort();
            let _ = task.await;
        }
    }
}

/// The control plane's own certificate (issued by its CA and kept fresh by a
/// certificate manager), for TLS on the gRPC port.
async fn serving_certificate(
    ca: Arc<Ca>,
    config: &Config,
) -> Result<(CertificateManager, SpiffeId), StartError> {
    let id = SpiffeId::control_plane(ca.trust_domain());
    let source = LocalCa::new(ca, config.cert_lifetime);
    let manager = CertificateManager::new(Arc::new(source), ManagerConfig::default());
    manager
        .fetch(&id)
        .await
        .map_err(|e| StartError::ServingCertificate(e.to_string()))?;
    Ok((manager, id))
}

/// The CA: a root of our own in `--ca-dir`, or the operator's intermediate
/// from `--ca-cert`/`--ca-key`/`--ca-chain`; none when neither is set.
fn load_ca(config: &Config) -> Result<Option<Arc<Ca>>, StartError> {
    let trust_domain = TrustDomain::from_str(&config.trust_domain)?;
    let ca = match (
        &config.ca_dir,
        &config.ca_cert,
        &config.ca_key,
        &config.ca_chain,
    ) {
        (Some(dir), ..) => {
            let ca = Ca::load_or_create(dir, &trust_domain).map_err(|source| StartError::Ca {
                location: dir.clone(),
                source,
            })?;
            tracing::info!(dir = %dir.display(), %trust_domain, "certificate authority ready");
            ca
        }
        (None, Some(cert), Some(key), Some(chain)) => {
            let read = |path: &std::path::PathBuf, flag: &'static str| {
                std::fs::read_to_string(path).map_err(|source| StartError::CaFile {
                    flag,
                    path: path.clone(),
                    source,
                })
            };
            let (cert_pem, key_pem, chain_pem) = (
                read(cert, "ca-cert")?,
                read(key, "ca-key")?,
                read(chain, "ca-chain")?,
            );
            let ca = Ca::from_intermediate(&trust_domain, &cert_pem, &key_pem, &chain_pem)
                .map_err(|source| StartError::Ca {
                    location: cert.clone(),
                    source,
                })?;
            tracing::info!(cert = %cert.display(), %trust_domain, "intermediate certificate authority ready");
            ca
        }
        _ => return Ok(None),
    };
    Ok(Some(Arc::new(ca)))
}

/// The file holding the CA's private key: the root key braid-identity keeps
/// in `--ca-dir` (`root-key.pem`), or `--ca-key`.
fn ca_key_file(config: &Config) -> std::path::PathBuf {
    match (&config.ca_dir, &config.ca_key) {
        (Some(dir), _) => dir.join("root-key.pem"),
        (None, Some(key)) => key.clone(),
        (None, None) => std::path::PathBuf::new(),
    }
}

async fn bind(
    addr: SocketAddr,
    what: &'static str,
    flag: &'static str,
) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            what,
            flag,
            addr,
            source,
        })
}

fn local_addr(listener: &TcpListener, fallback: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(fallback)
}
