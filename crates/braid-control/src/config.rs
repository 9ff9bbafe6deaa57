//! The control plane's configuration: one typed struct, parsed from flags
//! (with `BRAID_*` environment fallbacks) and dumped by the admin endpoint.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::Serialize;

/// Configuration of `braid-control`.
#[derive(Clone, Debug, clap::Args, Serialize)]
pub struct Config {
    /// Where the configuration comes from: `file` (a YAML directory,
    /// `--config-dir`) or `kube` (the Kubernetes API server, reached through
    /// `KUBECONFIG` or the pod's ServiceAccount).
    #[arg(long, env = "BRAID_SOURCE", value_enum, default_value_t = SourceKind::File)]
    pub source: SourceKind,

    /// Directory of Kubernetes YAML (Namespaces, Pods, Services, EndpointSlices,
    /// ServiceAccounts, Braid CRDs); read recursively and watched for changes.
    /// Required with `--source file`.
    #[arg(
        long,
        env = "BRAID_CONFIG_DIR",
        value_name = "DIR",
        required_if_eq("source", "file")
    )]
    pub config_dir: Option<PathBuf>,

    /// With `--source kube`: how long to wait at start for the first list of
    /// every watched kind before giving up (seconds). Nothing is served
    /// before, so proxies never see a partial mesh.
    #[arg(long = "kube-sync-timeout-secs", env = "BRAID_KUBE_SYNC_TIMEOUT_SECS", default_value = "60", value_parser = parse_secs, value_name = "SECS")]
    pub kube_sync_timeout: Duration,

    /// With `--source kube`: the kubeconfig to use instead of `KUBECONFIG`,
    /// `~/.kube/config` or the pod's ServiceAccount.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// With `--source kube` and a CA: the MutatingWebhookConfiguration whose
    /// webhooks' `caBundle` the control plane keeps set to the mesh's root
    /// certificates, so the API server trusts the injection webhook.
    #[arg(
        long,
        env = "BRAID_WEBHOOK_CONFIGURATION",
        default_value = "braid-sidecar-injector",
        value_name = "NAME"
    )]
    pub webhook_configuration: String,

    /// Refuse xDS streams that present no token. A stream that presents one
    /// is always checked (proxy token, or with `--source kube` a
    /// ServiceAccount token); without this flag tools such as `braidctl x
    /// watch` may still connect without one.
    #[arg(long, env = "BRAID_XDS_REQUIRE_TOKEN")]
    pub xds_require_token: bool,

    /// With `--source kube`: the audience ServiceAccount tokens must carry
    /// to be accepted by the certificate service (the injected projected
    /// token's).
    #[arg(
        long,
        env = "BRAID_TOKEN_AUDIENCE",
        default_value = "braid",
        value_name = "AUDIENCE"
    )]
    pub token_audience: String,

    /// With `--source kube`: the node proxies' (ztunnel) ServiceAccount,
    /// `NAMESPACE/NAME`. Its tokens get the identities of the meshed pods on
    /// their node (never a reserved mesh identity); every other account only
    /// its own pod's, and only while that pod is meshed.
    #[arg(long, env = "BRAID_NODE_SERVICE_ACCOUNT", default_value = "braid-system/braid-node", value_parser = parse_account, value_name = "NAMESPACE/NAME")]
    pub node_service_account: (String, String),

    /// With `--source kube`: who this replica is in the leader election for
    /// status writes (the Lease's holder). Defaults to the host name; the
    /// install manifests pass the pod name.
    #[arg(long, env = "BRAID_POD_NAME", value_name = "NAME")]
    pub pod_name: Option<String>,

    /// With `--source kube`: the namespace of the leader-election Lease
    /// `braid-control`.
    #[arg(
        long,
        env = "BRAID_POD_NAMESPACE",
        default_value = "braid-system",
        value_name = "NAMESPACE"
    )]
    pub pod_namespace: String,

    /// Address of the xDS (Delta ADS) and debug gRPC server.
    #[arg(
        long,
        env = "BRAID_XDS_LISTEN",
        default_value = "0.0.0.0:15010",
        value_name = "ADDR"
    )]
    pub xds_listen: SocketAddr,

    /// Address of the admin HTTP endpoint (health, metrics, debug views).
    #[arg(
        long,
        env = "BRAID_ADMIN_LISTEN",
        default_value = "127.0.0.1:15014",
        value_name = "ADDR"
    )]
    pub admin_listen: SocketAddr,

    /// Serve the admin endpoint's `/debug/*` views to peers that are not on
    /// loopback. Without it they answer only 127.0.0.1/::1 (reach them with
    /// `kubectl port-forward`); `/healthz`, `/ready` and `/metrics` answer
    /// everyone, for probes and Prometheus.
    #[arg(long, env = "BRAID_ADMIN_DEBUG_REMOTE")]
    pub admin_debug_remote: bool,

    /// Most connections open at once on the xDS port; new ones beyond are
    /// closed at once (and logged). Keep it below the process's file
    /// descriptor limit (`ulimit -n`). 0: no cap.
    #[arg(
        long,
        env = "BRAID_XDS_MAX_CONNECTIONS",
        default_value_t = DEFAULT_XDS_MAX_CONNECTIONS,
        value_name = "N"
    )]
    pub xds_max_connections: usize,

    /// A connection to the xDS port that completes no request (TLS and
    /// HTTP/2 handshake, then a gRPC call) within this long is closed
    /// (seconds).
    #[arg(long = "xds-handshake-timeout-secs", env = "BRAID_XDS_HANDSHAKE_TIMEOUT_SECS", default_value = "10", value_parser = parse_positive_secs, value_name = "SECS")]
    pub xds_handshake_timeout: Duration,

    /// A connection to the xDS port with no open stream or call for this
    /// long is closed (seconds). Proxies keep their ADS stream open, so
    /// only clients that went quiet are affected; gRPC clients reconnect
    /// on their next call.
    #[arg(long = "xds-idle-timeout-secs", env = "BRAID_XDS_IDLE_TIMEOUT_SECS", default_value = "60", value_parser = parse_positive_secs, value_name = "SECS")]
    pub xds_idle_timeout: Duration,

    /// Most connections open at once on the admin endpoint.
    #[arg(
        long,
        env = "BRAID_ADMIN_MAX_CONNECTIONS",
        default_value_t = DEFAULT_ADMIN_MAX_CONNECTIONS,
        value_name = "N"
    )]
    pub admin_max_connections: usize,

    /// Most connections open at once on the injection webhook.
    #[arg(
        long,
        env = "BRAID_WEBHOOK_MAX_CONNECTIONS",
        default_value_t = DEFAULT_WEBHOOK_MAX_CONNECTIONS,
        value_name = "N"
    )]
    pub webhook_max_connections: usize,

    /// Publish once the configuration has been quiet this long (milliseconds),
    /// so a burst of edits becomes one push.
    #[arg(long = "debounce-ms", env = "BRAID_DEBOUNCE_MS", default_value = "100", value_parser = parse_millis, value_name = "MS")]
    pub debounce: Duration,

    /// Publish at the latest this long after the first unpublished change
    /// (milliseconds), even while edits keep coming.
    #[arg(long = "max-debounce-ms", env = "BRAID_MAX_DEBOUNCE_MS", default_value = "1000", value_parser = parse_millis, value_name = "MS")]
    pub max_debounce: Duration,

    /// Trust domain of workload identities (spiffe://<trust-domain>/ns/<ns>/sa/<sa>).
    #[arg(long, env = "BRAID_TRUST_DOMAIN", default_value = braid_model::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,

    /// Cluster DNS domain used in service host names.
    #[arg(long, env = "BRAID_CLUSTER_DOMAIN", default_value = braid_model::DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,

    /// Directory of the built-in CA: a root key and certificate are created
    /// there on first start (key mode 0600) and reused afterwards. Enables the
    /// certificate service on the xDS port; without it no certificates are issued.
    #[arg(
        long,
        env = "BRAID_CA_DIR",
        value_name = "DIR",
        conflicts_with = "ca_cert"
    )]
    pub ca_dir: Option<PathBuf>,

    /// An operator-provided intermediate CA certificate (PEM) to sign with
    /// instead of a root of our own; needs `--ca-key` and `--ca-chain`.
    #[arg(long, env = "BRAID_CA_CERT", value_name = "FILE", requires_all = ["ca_key", "ca_chain"])]
    pub ca_cert: Option<PathBuf>,

    /// The intermediate CA's private key (PEM, PKCS#8 or SEC1/PKCS#1).
    #[arg(long, env = "BRAID_CA_KEY", value_name = "FILE", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,

    /// The chain above the intermediate, ending with the root that proxies
    /// trust (PEM; the intermediate itself may come first).
    #[arg(
        long,
        env = "BRAID_CA_CHAIN",
        value_name = "FILE",
        requires = "ca_cert"
    )]
    pub ca_chain: Option<PathBuf>,

    /// Lifetime of issued workload certificates, e.g. `24h`, `90m`, `3600s`.
    #[arg(long, env = "BRAID_CERT_LIFETIME", default_value = "24h", value_parser = parse_lifetime, value_name = "DURATION")]
    pub cert_lifetime: Duration,

    /// Address of the sidecar injection webhook (HTTPS, path `/inject`).
    /// Served only when there is a CA (`--ca-dir` or `--ca-cert`), which
    /// issues its certificate.
    #[arg(
        long,
        env = "BRAID_WEBHOOK_LISTEN",
        default_value = "0.0.0.0:15017",
        value_name = "ADDR"
    )]
    pub webhook_listen: SocketAddr,

    /// Extra DNS name for the webhook's certificate (repeatable), besides
    /// `braid-control.braid-system.svc` and `braid-control.braid-system.svc.cluster.local`.
    #[arg(
        long = "webhook-dns-name",
        env = "BRAID_WEBHOOK_DNS_NAMES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub webhook_dns_names: Vec<String>,

    /// Image of the injected `braid-proxy` containers (sidecar and init step).
    #[arg(long, env = "BRAID_PROXY_IMAGE", default_value = DEFAULT_PROXY_IMAGE, value_name = "IMAGE")]
    pub proxy_image: String,

    /// The control plane address injected sidecars connect to (their
    /// `BRAID_CONTROL_PLANE`).
    #[arg(
        long,
        env = "BRAID_PROXY_CONTROL_PLANE",
        default_value = DEFAULT_PROXY_CONTROL_PLANE,
        value_name = "URL"
    )]
    pub proxy_control_plane: String,

    /// The CNI plugin installs sidecar pods' redirect rules (`braid-cni
    /// --sidecar-rules`): inject no `braid-init` container.
    #[arg(long, env = "BRAID_CNI_SIDECAR_RULES")]
    pub cni_sidecar_rules: bool,

    /// Inject the proxy as a regular container instead of a native sidecar
    /// (an init container with `restartPolicy: Always`, Kubernetes 1.29+).
    #[arg(long, env = "BRAID_INJECT_LEGACY_SIDECAR")]
    pub inject_legacy_sidecar: bool,
}

/// Default `--xds-max-connections`: one stream per proxy, so room for a
/// large mesh per replica while staying below a typical 65 536 fd limit.
pub const DEFAULT_XDS_MAX_CONNECTIONS: usize = 16_384;

/// Default `--admin-max-connections`: probes, a scraper and a few operators.
pub const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 64;

/// Default `--webhook-max-connections`: the API servers' admission calls.
pub const DEFAULT_WEBHOOK_MAX_CONNECTIONS: usize = 256;

/// How long an HTTP/1 client of the admin endpoint or the webhook may take
/// to send a request's headers, also between requests on a kept-alive
/// connection: after that the connection is closed.
pub const HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Default `--proxy-image`: the proxy of this release.
pub const DEFAULT_PROXY_IMAGE: &str = concat!("braid/braid-proxy:", env!("CARGO_PKG_VERSION"));

/// Default `--proxy-control-plane`: the control plane's Service in `braid-system`.
pub const DEFAULT_PROXY_CONTROL_PLANE: &str = "http://braid-control.braid-system.svc:15010";

fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with a unit, e.g. 24h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{s:?}: unit must be s, m or h, e.g. 24h")),
    };
    if secs == 0 {
        return Err("a certificate lifetime must be positive".into());
    }
    Ok(Duration::from_secs(secs))
}

/// Where the control plane reads its configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A directory of YAML (`--config-dir`).
    File,
    /// The Kubernetes API server.
    Kube,
}

fn parse_account(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!(
            "{s:?}: expected NAMESPACE/NAME, e.g. braid-system/braid-node"
        )),
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|e| format!("expected a whole number of seconds: {e}"))
}

fn parse_positive_secs(s: &str) -> Result<Duration, String> {
    match parse_secs(s)? {
        d if d.is_zero() => Err("must be at least 1 second".into()),
        d => Ok(d),
    }
}

fn parse_millis(s: &str) -> Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| format!("expected a whole number of milliseconds: {e}"))
}

// === impl Config ===

impl Config {
    /// A configuration for tests: `dir`, loopback ports picked by the OS, and
    /// a short debounce.
    pub fn for_tests(dir: impl Into<PathBuf>) -> Self {
        Self {
            source: SourceKind::File,
            config_dir: Some(dir.into()),
            kube_sync_timeout: Duration::from_secs(60),
            kubeconfig: None,
            webhook_configuration: "braid-sidecar-injector".to_string(),
            token_audience: "braid".to_string(),
            xds_require_token: false,
            node_service_account: ("braid-system".to_string(), "braid-node".to_string()),
            pod_name: None,
            pod_namespace: "braid-system".to_string(),
            xds_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_debug_remote: false,
            xds_max_connections: DEFAULT_XDS_MAX_CONNECTIONS,
            xds_handshake_timeout: Duration::from_secs(10),
            xds_idle_timeout: Duration::from_secs(60),
            admin_max_connections: DEFAULT_ADMIN_MAX_CONNECTIONS,
            webhook_max_connections: DEFAULT_WEBHOOK_MAX_CONNECTIONS,
            debounce: Duration::from_millis(50),
            max_debounce: Duration::from_millis(500),
            trust_domain: braid_model::DEFAULT_TRUST_DOMAIN.to_string(),
            cluster_domain: braid_model::DEFAULT_CLUSTER_DOMAIN.to_string(),
            ca_dir: None,
            ca_cert: None,
            ca_key: None,
            ca_chain: None,
            cert_lifetime: Duration::from_secs(24 * 3600),
            webhook_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            webhook_dns_names: Vec::new(),
            proxy_image: DEFAULT_PROXY_IMAGE.to_string(),
            proxy_control_plane: DEFAULT_PROXY_CONTROL_PLANE.to_string(),
            cni_sidecar_rules: false,
            inject_legacy_sidecar: false,
        }
    }

    /// A test configuration reading the API server of `kubeconfig`; the
    /// status writers' Lease is in `default`.
    pub fn for_kube_tests(kubeconfig: impl Into<PathBuf>) -> Self {
        Self {
            source: SourceKind::Kube,
            config_dir: None,
            kubeconfig: Some(kubeconfig.into()),
            // A namespace every cluster has; tests that check status writes
            // use a Lease in a namespace of their own.
            pod_namespace: "default".to_string(),
            ..Self::for_tests(PathBuf::new())
        }
    }

    /// What the injection webhook adds to pods.
    pub fn inject_config(&self) -> crate::inject::InjectConfig {
        crate::inject::InjectConfig {
            proxy_image: self.proxy_image.clone(),
            control_plane: self.proxy_control_plane.clone(),
            trust_domain: self.trust_domain.clone(),
            cni_sidecar_rules: self.cni_sidecar_rules,
            legacy_sidecar: self.inject_legacy_sidecar,
        }
    }

    /// The mesh settings translation needs.
    pub fn mesh_settings(&self) -> braid_model::k8s::MeshSettings {
        braid_model::k8s::MeshSettings {
            trust_domain: self.trust_domain.clone(),
            cluster_domain: self.cluster_domain.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
