//! A test mesh: a CA in a temporary directory, certificates minted at
//! runtime, an HBONE server on loopback, backends, and a deadline helper.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context as _;
use braid_identity::{Ca, CertificateRequest, SpiffeId, TrustBundle, WorkloadCertificate};
use braid_proxy::hbone::{
    Connector, DirectConnector, Pool, Refusal, Server, ServerCounters, Settings,
};
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// Bounds every wait in these tests.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// Fails the test if `future` takes longer than [`DEADLINE`].
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what} did not finish within {DEADLINE:?}"),
    }
}

/// Polls `condition` until it holds, failing after [`DEADLINE`].
pub(crate) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// A root CA kept in a temporary directory.
pub(crate) struct TestCa {
    pub(crate) ca: Ca,
    _dir: TempDir,
}

impl TestCa {
    pub(crate) fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let domain = "cluster.local".parse()?;
        let ca = Ca::load_or_create(&dir.path().join("ca"), &domain)?;
        Ok(Self { ca, _dir: dir })
    }

    /// A certificate for `default/<sa>`, valid for an hour.
    pub(crate) fn issue(&self, sa: &str) -> anyhow::Result<WorkloadCertificate> {
        let id = id(sa);
        let request = CertificateRequest::generate(&id)?;
        let issued = self.ca.sign(&request.csr, &id, Duration::from_secs(3600))?;
        Ok(request.into_certificate(issued.chain)?)
    }

    pub(crate) fn bundle(&self) -> TrustBundle {
        self.ca.trust_bundle().clone()
    }
}

/// `spiffe://cluster.local/ns/default/sa/<sa>`.
pub(crate) fn id(sa: &str) -> SpiffeId {
    SpiffeId::new("cluster.local", "default", sa).expect("valid identity")
}

/// Dials directly, but refuses one target with a policy reason.
#[derive(Clone)]
pub(crate) struct TestConnector {
    pub(crate) direct: DirectConnector,
    pub(crate) denied: Option<SocketAddr>,
}

impl Connector for TestConnector {
    type Stream = TcpStream;

    async fn connect(&self, peer: &SpiffeId, target: SocketAddr) -> Result<TcpStream, Refusal> {
        if Some(target) == self.denied {
            return Err(Refusal::denied(format!(
                "no policy allows {peer} to reach {target}"
            )));
        }
        self.direct.connect(peer, target).await
    }
}

/// A CA, a client identity, and an HBONE server for `default/server`.
pub(crate) struct Mesh {
    pub(crate) ca: TestCa,
    pub(crate) client: WorkloadCertificate,
    pub(crate) server_id: SpiffeId,
    pub(crate) proxy: SocketAddr,
    pub(crate) counters: ServerCounters,
    pub(crate) pool: Pool,
    server: JoinHandle<()>,
}

impl Mesh {
    pub(crate) async fn start(
        settings: Settings,
        denied: Option<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let ca = TestCa::new()?;
        let client = ca.issue("client")?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = listener.local_addr()?;
        let (server, counters) = start_server(&ca, listener, settings.clone(), denied)?;
        let pool = Pool::new(ca.bundle(), settings);
        Ok(Self {
            ca,
            client,
            server_id: id("server"),
            proxy,
            counters,
            pool,
            server,
        })
    }

    /// Opens a tunnel from `client` to `target` through the server.
    pub(crate) async fn tunnel(
        &self,
        target: SocketAddr,
    ) -> Result<braid_proxy::hbone::HboneStream, braid_proxy::hbone::Error> {
        let connect = self
            .pool
            .connect(&self.client, self.proxy, &self.server_id, target);
        within("opening a tunnel", connect).await
    }

    /// Stops the server and closes its connections.
    pub(crate) fn stop_server(&self) {
        self.server.abort();
    }

    /// Starts a server again on the same address.
    pub(crate) async fn restart_server(&mut self, settings: Settings) -> anyhow::Result<()> {
        let listener = TcpListener::bind(self.proxy).await?;
        let (server, counters) = start_server(&self.ca, listener, settings, None)?;
        self.server = server;
        self.counters = counters;
        Ok(())
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn start_server(
    ca: &TestCa,
    listener: TcpListener,
    settings: Settings,
    denied: Option<SocketAddr>,
) -> anyhow::Result<(JoinHandle<()>, ServerCounters)> {
    let cert = ca.issue("server")?;
    let connector = TestConnector {
        direct: DirectConnector {
            timeout: Duration::from_secs(5),
        },
        denied,
    };
    let server = Server::new(&cert, &ca.bundle(), connector, settings).context("server")?;
    let counters = server.counters();
    Ok((tokio::spawn(server.serve(listener)), counters))
}

/// A backend that echoes until EOF, then sends `bye` and closes: a client
/// reading `bye` knows the backend saw its half-close and could still send.
pub(crate) async fn echo_backend() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = tcp.split();
                if tokio::io::copy(&mut read, &mut write).await.is_ok() {
                    let _ = write.write_all(b"bye").await;
                    let _ = write.shutdown().await;
                }
            });
        }
    });
    Ok(addr)
}

/// Writes `data`, half-closes, and reads everything the other side sends.
pub(crate) async fn exchange(
    stream: &mut (impl AsyncReadExt + AsyncWriteExt + Unpin),
    data: &[u8],
) -> std::io::Result<Vec<u8>> {
    stream.write_all(data).await?;
    stream.shutdown().await?;
    let mut received = Vec::new();
    stream.read_to_end(&mut received).await?;
    Ok(received)
}
