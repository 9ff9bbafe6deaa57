//! Shared helpers for the in-process control-plane tests: a YAML fixture
//! writer, a raw Delta ADS client that exposes every protocol detail, and
//! deadline-bounded waits.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::{
    collections::HashMap,
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use braid_api::{
    envoy::{
        config::core::v3::Node,
        service::discovery::v3::{
            DeltaDiscoveryRequest, DeltaDiscoveryResponse,
            aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
        },
    },
    google::rpc::Status,
};
use braid_control::{Config, ControlPlane};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

/// How long any single wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A control plane on a temp directory.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub cp: ControlPlane,
    /// The CA directory, when the control plane runs with one (and so serves TLS).
    pub ca_dir: Option<PathBuf>,
}

impl Harness {
    /// Writes `files` (relative path -> YAML) and starts a control plane with `tune` applied.
    pub async fn start(
        files: &[(&str, String)],
        tune: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        for (path, text) in files {
            write(dir.path(), path, text)?;
        }
        let mut config = Config::for_tests(dir.path());
        tune(&mut config);
        let ca_dir = config.ca_dir.clone();
        let cp = ControlPlane::start(config).await?;
        Ok(Self { dir, cp, ca_dir })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> anyhow::Result<()> {
        write(self.dir.path(), rel, text)
    }

    pub async fn proxy(&self, node: &str) -> anyhow::Result<Proxy> {
        Proxy::connect(self.cp.xds_addr(), node).await
    }

    /// Waits until the published version reaches `version`.
    pub async fn wait_version(&self, version: u64) -> anyhow::Result<()> {
        eventually(|| async { self.cp.version() >= version })
            .await
            .with_context(|| {
                format!(
                    "version never reached {version} (now {})",
                    self.cp.version()
                )
            })
    }
}

/// Writes a file atomically (write + rename), the way editors and
/// ConfigMap updates do, so the watcher never reads half a file.
pub fn write(root: &Path, rel: &str, text: &str) -> anyhow::Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = root.join(format!(".tmp-{}", rel.replace('/', "_")));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// Polls `f` every 10 ms until it returns true or [`DEADLINE`] passes.
pub async fn eventually<F, Fut>(mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    while start.elapsed() < DEADLINE {
        if f().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("condition not met within {DEADLINE:?}")
}

pub fn namespace(name: &str, mode: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    braid.dev/mode: {mode}\n"
    )
}

/// A ready pod with one IP and labels `app: <app>`.
pub fn pod(ns: &str, name: &str, ip: &str, app: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    app: {app}\nspec:\n  nodeName: node-a\n  serviceAccountName: {app}\n  containers:\n  - name: app\n    image: app\n    ports:\n    - name: http\n      containerPort: 8080\nstatus:\n  phase: Running\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n  conditions:\n  - type: Ready\n    status: \"True\"\n"
    )
}

pub fn service(ns: &str, name: &str, app: &str, vip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  clusterIP: {vip}\n  selector:\n    app: {app}\n  ports:\n  - name: http\n    port: 80\n    targetPort: http\n"
    )
}

/// `count` pods in `ns` as one multi-document file, IPs 198.18.<ns_octet>.x.
pub fn many_pods(ns: &str, ns_octet: u8, count: usize) -> String {
    let mut out = String::new();
    for i in 0..count {
        let ip = format!("198.18.{ns_octet}.{}", i + 1);
        let _ = write!(
            out,
            "---\n{}",
            pod(ns, &format!("pod-{i}"), &ip, &format!("app-{}", i % 10))
        );
    }
    out
}

/// A raw Delta ADS client: every request and response is visible to the test.
pub struct Proxy {
    pub node: String,
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: Streaming<DeltaDiscoveryResponse>,
    first: bool,
}

impl Proxy {
    pub async fn connect(addr: SocketAddr, node: &str) -> anyhow::Result<Self> {
        let mut client =
            AggregatedDiscoveryServiceClient::connect(format!("http://{addr}")).await?;
        let (tx, rx) = mpsc::channel(16);
        let response = client
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await?;
        Ok(Self {
            node: node.into(),
            tx,
            rx: response.into_inner(),
            first: true,
        })
    }

    pub async fn send(&mut self, mut request: DeltaDiscoveryRequest) -> anyhow::Result<()> {
        if self.first {
            request.node = Some(Node {
                id: self.node.clone(),
                user_agent_name: "test-proxy".into(),
                ..Default::default()
            });
            self.first = false;
        }
        self.tx.send(request).await.context("stream closed")
    }

    /// Subscribes to `type_url`: wildcard when `names` is empty.
    pub async fn subscribe(
        &mut self,
        type_url: &str,
        names: &[&str],
        initial: HashMap<String, String>,
    ) -> anyhow::Result<()> {
        let names = if names.is_empty() {
            vec!["*".to_string()]
        } else {
            names.iter().map(|s| s.to_string()).collect()
        };
        self.send(DeltaDiscoveryRequest {
            type_url: type_url.into(),
            resource_names_subscribe: names,
            initial_resource_versions: initial.into_iter().collect(),
            ..Default::default()
        })
        .await
    }

    pub async fn recv(&mut self) -> anyhow::Result<DeltaDiscoveryResponse> {
        match tokio::time::timeout(DEADLINE, self.rx.message()).await {
            Ok(Ok(Some(r))) => Ok(r),
            Ok(Ok(None)) => bail!("stream ended"),
            Ok(Err(status)) => bail!("stream failed: {status}"),
            Err(_) => bail!("no response within {DEADLINE:?}"),
        }
    }

    /// Receives a response for `type_url` and ACKs it.
    pub async fn recv_ack(&mut self, type_url: &str) -> anyhow::Result<DeltaDiscoveryResponse> {
        let r = self.recv().await?;
        anyhow::ensure!(
            r.type_url == type_url,
            "expected {type_url}, got {}",
            r.type_url
        );
        self.ack(&r).await?;
        Ok(r)
    }

    pub async fn ack(&mut self, r: &DeltaDiscoveryResponse) -> anyhow::Result<()> {
        self.send(DeltaDiscoveryRequest {
            type_url: r.type_url.clone(),
            response_nonce: r.nonce.clone(),
            ..Default::default()
        })
        .await
    }

    pub async fn nack(&mut self, r: &DeltaDiscoveryResponse, reason: &str) -> anyhow::Result<()> {
        self.send(DeltaDiscoveryRequest {
            type_url: r.type_url.clone(),
            response_nonce: r.nonce.clone(),
            error_detail: Some(Status {
                code: 3,
                message: reason.into(),
                details: vec![],
            }),
            ..Default::default()
        })
        .await
    }

    /// Asserts that no response arrives within `quiet`.
    pub async fn expect_nothing(&mut self, quiet: Duration) -> anyhow::Result<()> {
        match tokio::time::timeout(quiet, self.rx.message()).await {
            Err(_) => Ok(()),
            Ok(r) => bail!("expected no response, got {r:?}"),
        }
    }
}

/// name -> version of a response's resources.
pub fn versions(r: &DeltaDiscoveryResponse) -> HashMap<String, String> {
    r.resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect()
}

pub fn names(r: &DeltaDiscoveryResponse) -> Vec<String> {
    let mut names: Vec<String> = r.resources.iter().map(|r| r.name.clone()).collect();
    names.sort();
    names
}

/// A plain HTTP/1.1 GET; returns the whole response (status line, headers, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut body = String::new();
    tokio::time::timeout(DEADLINE, stream.read_to_string(&mut body)).await??;
    Ok(body)
}
