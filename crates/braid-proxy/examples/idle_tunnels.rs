//! RSS per idle proxied connection on loopback, without network namespaces:
//! `cargo run --release -p braid-proxy --example idle_tunnels [-- --connections N]`.
//!
//! The `mesh-memory` bench rows need the netns test cluster; this holds the
//! same kind of connections through the same data plane on loopback, with
//! each proxy in a process of its own (this example started again in a
//! child role) so its RSS can be read alone:
//!
//! * the client-side proxy accepts plain TCP, opens an HBONE stream through
//!   a [`Pool`] and splices the two, as a ztunnel or sidecar does on 15001;
//! * the server-side proxy is an HBONE [`Server`] that splices each stream
//!   to the target, as on 15008;
//! * this process holds the applications: an echo backend and the client
//!   connections, each proven by a one-byte echo and then left idle.
//!
//! It prints each proxy's `VmRSS` growth divided by the connections opened
//! after a warm-up (which sets up the pooled HBONE connection). Socket
//! buffers are kernel memory and do not show in RSS. The proxies use the
//! system allocator, as the `braid-proxy` binary does. The L4 handler's own
//! per-connection state (policy, telemetry, routing) is not on this path:
//! only the HBONE pool, server and splice are.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    net::SocketAddr,
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use braid_identity::{Ca, CertificateRequest, SpiffeId, WorkloadCertificate};
use braid_proxy::hbone::{DirectConnector, Pool, Server, Settings};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

const DEFAULT_CONNECTIONS: usize = 1000;
/// Opened before the baseline, so the pooled HBONE connection, its TLS
/// state and every one-off are already there.
const WARM_UP: usize = 20;
/// How long RSS must stay unchanged to count as settled.
const SETTLED_FOR: Duration = Duration::from_millis(300);
/// Bounds every wait, so a stuck tunnel fails the run instead of hanging.
const LIMIT: Duration = Duration::from_secs(30);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => runtime.block_on(measure(DEFAULT_CONNECTIONS)),
        ["--connections", n] => runtime.block_on(measure(n.parse().context("--connections")?)),
        // The child roles: the parent passes the CA directory and addresses.
        ["--server-proxy", ca] => runtime.block_on(server_proxy(Path::new(ca))),
        ["--client-proxy", ca, hbone, target] => {
            let (hbone, target) = (hbone.parse()?, target.parse()?);
            runtime.block_on(client_proxy(Path::new(ca), hbone, target))
        }
        _ => anyhow::bail!("unknown arguments {args:?}: use --connections N"),
    }
}

/// The parent: starts both proxies, holds connections through them, and
/// reports their RSS growth per connection.
async fn measure(connections: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = dir.path().join("ca");
    Ca::load_or_create(&ca, &"cluster.local".parse()?)?;
    let ca = ca
        .to_str()
        .context("the temporary directory's path is not UTF-8")?;
    let backend = echo_backend().await?;
    let (mut server, hbone) = Proxy::start(&["--server-proxy", ca])?;
    let args = ["--client-proxy", ca, &hbone, &backend.to_string()];
    let (mut client, outbound) = Proxy::start(&args)?;
    let outbound: SocketAddr = outbound.parse()?;

    let mut held = Vec::new();
    open(outbound, WARM_UP, &mut held).await?;
    let before = [settled_rss(&client)?, settled_rss(&server)?];
    open(outbound, connections, &mut held).await?;
    let after = [settled_rss(&client)?, settled_rss(&server)?];
    println!("RSS per idle connection, {connections} held through both proxies:");
    for (name, (a, b)) in ["client proxy", "server proxy"]
        .iter()
        .zip(after.iter().zip(&before))
    {
        let per = (*a as f64 - *b as f64) / connections as f64;
        println!("  {name}: {per:.2} KiB ({b} KiB before, {a} KiB after)");
    }
    drop(held);
    client.stop();
    server.stop();
    Ok(())
}

/// A proxy running in a child process; ends when its stdin closes.
struct Proxy {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Proxy {
    /// Starts this example with `args` and reads the address it listens on.
    fn start(args: &[&str]) -> anyhow::Result<(Self, String)> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {args:?}"))?;
        let stdout = child.stdout.take().context("the child's stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        anyhow::ensure!(!line.is_empty(), "{args:?} exited before it was ready");
        let stdin = child.stdin.take();
        Ok((Self { child, stdin }, line.trim().to_string()))
    }

    fn stop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// The child's `VmRSS` in KiB once it has stopped changing.
fn settled_rss(proxy: &Proxy) -> anyhow::Result<u64> {
    let start = Instant::now();
    let mut last = rss(proxy.child.id())?;
    let mut since = Instant::now();
    while since.elapsed() < SETTLED_FOR && start.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(50));
        let now = rss(proxy.child.id())?;
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    Ok(last)
}

fn rss(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| path.clone())?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .with_context(|| format!("no VmRSS in {path}"))?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}

/// Opens `n` connections to `outbound`, proves each with a one-byte echo
/// and keeps them in `held`.
async fn open(outbound: SocketAddr, n: usize, held: &mut Vec<TcpStream>) -> anyhow::Result<()> {
    for _ in 0..n {
        let exchange = async {
            let mut tcp = TcpStream::connect(outbound).await?;
            tcp.write_all(b"x").await?;
            let mut byte = [0u8];
            tcp.read_exact(&mut byte).await?;
            anyhow::Ok(tcp)
        };
        let tcp = tokio::time::timeout(LIMIT, exchange)
            .await
            .context("a tunnel did not echo in time")??;
        held.push(tcp);
    }
    Ok(())
}

/// Echoes every connection until it ends.
async fn echo_backend() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = tcp.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    Ok(addr)
}

/// The server-side proxy: HBONE on loopback, each stream spliced to its
/// target.
async fn server_proxy(ca: &Path) -> anyhow::Result<()> {
    let (cert, bundle) = issue(ca, "server")?;
    let connector = DirectConnector {
        timeout: Duration::from_secs(5),
    };
    let server = Server::new(&cert, &bundle, connector, Settings::default())?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    tokio::spawn(server.serve(listener));
    until_stdin_closes().await
}

/// The client-side proxy: each accepted connection gets a tunnel to
/// `target` through `hbone` and is spliced into it.
async fn client_proxy(ca: &Path, hbone: SocketAddr, target: SocketAddr) -> anyhow::Result<()> {
    let (cert, bundle) = issue(ca, "client")?;
    let (cert, server_id) = (Arc::new(cert), id("server")?);
    let pool = Pool::new(bundle, Settings::default());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (pool, cert, server_id) = (pool.clone(), cert.clone(), server_id.clone());
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                match pool.connect(&cert, hbone, &server_id, target).await {
                    Ok(tunnel) => {
                        let _ = braid_proxy::hbone::splice(tcp, tunnel).await;
                    }
                    Err(e) => eprintln!("tunnel failed: {e}"),
                }
            });
        }
    });
    until_stdin_closes().await
}

/// Returns once the parent closes this process's stdin (or exits).
async fn until_stdin_closes() -> anyhow::Result<()> {
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await??;
    Ok(())
}

fn id(sa: &str) -> anyhow::Result<SpiffeId> {
    Ok(SpiffeId::new("cluster.local", "bench", sa)?)
}

/// A certificate for `bench/<sa>` from the CA in `ca`, and its trust bundle.
fn issue(
    ca: &Path,
    sa: &str,
) -> anyhow::Result<(WorkloadCertificate, braid_identity::TrustBundle)> {
    let ca = Ca::load_or_create(ca, &"cluster.local".parse()?)?;
    let id = id(sa)?;
    let request = CertificateRequest::generate(&id)?;
    let issued = ca.sign(&request.csr, &id, Duration::from_secs(3600))?;
    let cert = request.into_certificate(issued.chain)?;
    Ok((cert, ca.trust_bundle().clone()))
}
