//! A pod's inbound HBONE server in-process: the real connector behind a
//! real server on loopback, in this process's network namespace, with the
//! pod's workload at `127.0.0.1`.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use braid_capture::NetNs;
use braid_identity::{
    Ca, CertificateManager, CertificateRequest, LocalCa, ManagerConfig, SpiffeId,
    WorkloadCertificate,
};
use braid_model::{DataPlaneMode, Workload, WorkloadStatus, WorkloadUid, catalog::ports};
use braid_xds::{Delta, Updated};
use http::StatusCode;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use super::serve_hbone;
use crate::{
    hbone::{Error, Pool, Settings},
    state::ProxyState,
    telemetry::Metrics,
    upstream::PodContext,
};

const DEADLINE: Duration = Duration::from_secs(20);

/// A pod `shop/web` at 127.0.0.1 whose inbound HBONE listens on loopback,
/// and a client certificate for `shop/client` from the same CA.
struct Fixture {
    proxy: SocketAddr,
    server_id: SpiffeId,
    client: WorkloadCertificate,
    pool: Pool,
    metrics: Metrics,
    _server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// The two compositions: a ztunnel serves an ambient pod (L4 only), a
/// sidecar its own pod (HTTP-aware).
#[derive(Clone, Copy, Debug)]
enum Mode {
    Ztunnel,
    Sidecar,
}

impl Fixture {
    async fn start(mode: Mode) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let ca = Arc::new(Ca::load_or_create(
            &dir.path().join("ca"),
            &"cluster.local".parse()?,
        )?);
        let bundle = ca.trust_bundle().clone();
        let client_id = SpiffeId::new("cluster.local", "shop", "client")?;
        let request = CertificateRequest::generate(&client_id)?;
        let issued = ca.sign(&request.csr, &client_id, Duration::from_secs(3600))?;
        let client = request.into_certificate(issued.chain)?;

        let state = ProxyState::new();
        state.apply_workloads(Delta {
            system_version_info: String::new(),
            updated: vec![Updated {
                name: "shop/web".into(),
                version: "1".into(),
                value: Arc::new(workload(mode)),
            }],
            removed: vec![],
        });
        let source = Arc::new(LocalCa::new(ca, Duration::from_secs(3600)));
        let metrics = Metrics::default();
        let pod = Arc::new(PodContext {
            workload: "shop/web".into(),
            netns: NetNs::current()?,
            state,
            certs: CertificateManager::new(source, ManagerConfig::default()),
            pool: Pool::new(bundle.clone(), Settings::default()),
            metrics: metrics.clone(),
            origin: 0,
            this_waypoint: None,
            mark: None,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = listener.local_addr()?;
        let server = tokio::spawn(serve_hbone(listener, pod, bundle.clone()));
        Ok(Self {
            proxy,
            server_id: SpiffeId::new("cluster.local", "shop", "web")?,
            client,
            pool: Pool::new(bundle, Settings::default()),
            metrics,
            _server: server,
            _dir: dir,
        })
    }

    async fn connect(&self, target: SocketAddr) -> Result<crate::hbone::HboneStream, Error> {
        let connect = self
            .pool
            .connect(&self.client, self.proxy, &self.server_id, target);
        match tokio::time::timeout(DEADLINE, connect).await {
            Ok(outcome) => outcome,
            Err(_) => panic!("CONNECT {target} did not finish within {DEADLINE:?}"),
        }
    }
}

fn workload(mode: Mode) -> Workload {
    Workload {
        uid: WorkloadUid::new("shop", "web"),
        name: "web".into(),
        namespace: "shop".into(),
        service_account: "web".into(),
        node: "node-a".into(),
        addresses: vec![IpAddr::from([127, 0, 0, 1])],
        labels: BTreeMap::new(),
        mode: match mode {
            Mode::Ztunnel => DataPlaneMode::Ambient,
            Mode::Sidecar => DataPlaneMode::Sidecar,
        },
        has_sidecar: matches!(mode, Mode::Sidecar),
        waypoint: None,
        trust_domain: "cluster.local".into(),
        status: WorkloadStatus::Healthy,
    }
}

/// An app port of the pod: echoes one read back.
async fn app_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0; 64];
            if let Ok(n) = tcp.read(&mut buf).await {
                let _ = tcp.write_all(&buf[..n]).await;
            }
        }
    });
    Ok(addr)
}

/// Every port a proxy binds is refused as a tunnel's target with `400` and a
/// reason saying why, counted as a denied connection; the pod's app port
/// still takes tunnels.
async fn connect_to_own_proxy_port_is_refused_in(mode: Mode) -> anyhow::Result<()> {
    let fixture = Fixture::start(mode).await?;
    let app = app_port().await?;
    let mut tunnel = fixture.connect(app).await?;
    tunnel.write_all(b"ping").await?;
    let mut echoed = [0; 4];
    tokio::time::timeout(DEADLINE, tunnel.read_exact(&mut echoed)).await??;
    assert_eq!(&echoed, b"ping", "{mode:?}: the app port takes tunnels");

    let own: Vec<u16> = ports::ALL
        .iter()
        .map(|p| p.number)
        .filter(|&p| ports::is_proxy_port(p))
        .collect();
    assert!(own.contains(&ports::OUTBOUND.number), "{own:?}");
    for &port in &own {
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        let error = fixture
            .connect(target)
            .await
            .expect_err("a proxy port is refused");
        assert_eq!(
            error.status(),
            Some(StatusCode::BAD_REQUEST),
            "{mode:?}: CONNECT {target}: {error}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("port {port} is reserved for the mesh's proxies")),
            "{mode:?}: the reason header says why: {message}"
        );
        assert!(!error.is_retry_safe(), "{mode:?}: {error}");
    }
    let metrics = fixture.metrics.render("");
    let denied: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("braid_tcp_connections_denied_total{direction=\"inbound\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(
        denied,
        own.len() as u64,
        "{mode:?}: each refusal is counted denied:\n{metrics}"
    );
    Ok(())
}

#[tokio::test]
async fn connect_to_own_proxy_port_is_refused_by_a_ztunnel() -> anyhow::Result<()> {
    connect_to_own_proxy_port_is_refused_in(Mode::Ztunnel).await
}

#[tokio::test]
async fn connect_to_own_proxy_port_is_refused_by_a_sidecar() -> anyhow::Result<()> {
    connect_to_own_proxy_port_is_refused_in(Mode::Sidecar).await
}
