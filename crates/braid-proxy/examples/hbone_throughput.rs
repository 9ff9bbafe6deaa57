//! Bulk throughput of one HBONE hop against direct loopback TCP, measured
//! side by side in one run. `cargo xtask bench` builds this in release mode
//! and runs it; it prints one JSON object on stdout.
//!
//! The sender and the receiver are plain blocking threads (as two
//! applications would be); the proxies run on a tokio runtime with two
//! worker threads: an outbound side that takes a plain TCP connection and
//! opens an HBONE tunnel for it (what a ztunnel or sidecar does on 15001),
//! and the HBONE server on the other side (15008) that connects to the
//! receiver. Rounds alternate direct and proxied runs so drift in the
//! machine's speed hits both alike; the median of each is reported.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use braid_identity::{Ca, CertificateRequest, SpiffeId, WorkloadCertificate};
use braid_proxy::hbone::{DirectConnector, Pool, Server, Settings};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bytes moved per round: large enough that set-up cost vanishes.
const DEFAULT_BYTES: u64 = 1 << 30;
const DEFAULT_ROUNDS: usize = 5;
/// Application buffer of the sender and the receiver.
const APP_BUFFER: usize = 128 * 1024;
/// Bounds each round, so a stuck tunnel fails the run instead of hanging.
const ROUND_LIMIT: Duration = Duration::from_secs(60);

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut bytes, mut rounds) = (DEFAULT_BYTES, DEFAULT_ROUNDS);
    // `--only hbone` (or direct, relay) runs just that path, for profiling.
    let mut only = String::new();
    while let Some(arg) = args.next() {
        let value = args.next().context("every flag takes a value")?;
        match arg.as_str() {
            "--bytes" => bytes = value.parse().context("--bytes")?,
            "--rounds" => rounds = value.parse().context("--rounds")?,
            "--only" => only = value,
            other => anyhow::bail!("unknown flag {other}: use --bytes N --rounds N"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let sink = Sink::start()?;
    let proxies = runtime.block_on(Proxies::start(sink.addr))?;
    let outbound = proxies.outbound;
    let relay = runtime.block_on(async {
        let second = relay(sink.addr).await?;
        relay(second).await
    })?;

    let (mut direct, mut hbone, mut relayed) = (Vec::new(), Vec::new(), Vec::new());
    let mut tunnel = Vec::new();
    let wanted = |name: &str| only.is_empty() || only == name;
    for _ in 0..rounds {
        if wanted("tunnel") {
            let start = Instant::now();
            runtime.block_on(proxies.send_through_tunnel(sink.addr, bytes))?;
            tunnel.push(finish(start, bytes, &sink)?);
        }
        for (name, to, results) in [
            ("direct", sink.addr, &mut direct),
            ("hbone", outbound, &mut hbone),
            ("relay", relay, &mut relayed),
        ] {
            if wanted(name) {
                results.push(round(to, bytes, &sink)?);
            } else {
                results.push(f64::NAN);
            }
        }
    }
    let (direct, hbone, relayed, tunnel) = (
        median(&mut direct),
        median(&mut hbone),
        median(&mut relayed),
        median(&mut tunnel),
    );
    let report = serde_json::json!({
        "scenario": "hbone-throughput",
        "bytes_per_round": bytes,
        "rounds": rounds,
        "direct_gbit_s": direct * 8.0 / 1e9,
        "hbone_gbit_s": hbone * 8.0 / 1e9,
        "ratio": hbone / direct,
        "plain_relay_gbit_s": relayed * 8.0 / 1e9,
        "plain_relay_ratio": relayed / direct,
        "tunnel_gbit_s": tunnel * 8.0 / 1e9,
        "tunnel_ratio": tunnel / direct,
    });
    println!("{report}");
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// Sends `bytes` to `to` and returns bytes per second, counted until the
/// receiver has read the last byte.
fn round(to: SocketAddr, bytes: u64, sink: &Sink) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(to).with_context(|| format!("connect to {to}"))?;
    stream.set_nodelay(true)?;
    let buf = vec![0x5a_u8; APP_BUFFER];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        stream.write_all(&buf[..n])?;
        left -= n as u64;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    finish(start, bytes, sink)
}

/// Waits for the receiver to count `bytes`; bytes per second since `start`.
fn finish(start: Instant, bytes: u64, sink: &Sink) -> anyhow::Result<f64> {
    let received = sink
        .done
        .recv_timeout(ROUND_LIMIT)
        .context("the receiver did not finish in time")?;
    anyhow::ensure!(received == bytes, "received {received} of {bytes} bytes");
    Ok(bytes as f64 / start.elapsed().as_secs_f64())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The receiving application: reads each connection to EOF on its own
/// thread and reports the byte count.
struct Sink {
    addr: SocketAddr,
    done: std::sync::mpsc::Receiver<u64>,
}

impl Sink {
    fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (tx, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0; APP_BUFFER];
                    let mut total = 0u64;
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        total += n as u64;
                    }
                    let _ = tx.send(total);
                });
            }
        });
        Ok(Self { addr, done })
    }
}

/// Both proxies: `outbound` takes plain TCP and tunnels it to the HBONE
/// server, which connects to the receiver.
struct Proxies {
    outbound: SocketAddr,
    hbone: SocketAddr,
    pool: Pool,
    client: Arc<WorkloadCertificate>,
    server_id: SpiffeId,
}

impl Proxies {
    async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let ca = Ca::load_or_create(&dir.path().join("ca"), &"cluster.local".parse()?)?;
        let bundle = ca.trust_bundle().clone();
        let server_id = SpiffeId::new("cluster.local", "bench", "server")?;
        let client_id = SpiffeId::new("cluster.local", "bench", "client")?;
        let server_cert = issue(&ca, &server_id)?;
        let client = Arc::new(issue(&ca, &client_id)?);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let hbone = listener.local_addr()?;
        let connector = DirectConnector {
            timeout: Duration::from_secs(5),
        };
        let server = Server::new(&server_cert, &bundle, connector, Settings::default())?;
        tokio::spawn(server.serve(listener));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let outbound = listener.local_addr()?;
        let pool = Pool::new(bundle, Settings::default());
        let (p, cert, id) = (pool.clone(), client.clone(), server_id.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (pool, cert, id) = (p.clone(), cert.clone(), id.clone());
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    match pool.connect(&cert, hbone, &id, target).await {
                        Ok(tunnel) => {
                            let _ = braid_proxy::hbone::splice(tcp, tunnel).await;
                        }
                        Err(e) => eprintln!("tunnel failed: {e}"),
                    }
                });
            }
        });
        // The CA directory is only needed while issuing.
        drop(dir);
        Ok(Self {
            outbound,
            hbone,
            pool,
            client,
            server_id,
        })
    }

    /// One HBONE hop in place of one TCP connection: the sender writes into
    /// a tunnel itself (as an HBONE-speaking client would), the server side
    /// connects to the receiver.
    async fn send_through_tunnel(&self, to: SocketAddr, bytes: u64) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt as _;
        let mut stream = self
            .pool
            .connect(&self.client, self.hbone, &self.server_id, to)
            .await?;
        let buf = bytes::Bytes::from(vec![0x5a_u8; APP_BUFFER]);
        let mut left = bytes;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            stream.write_all(&buf[..n]).await?;
            left -= n as u64;
        }
        stream.shutdown().await?;
        // Keep the tunnel until the receiver is done, as a client would.
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut Vec::new()).await?;
        Ok(())
    }
}

/// A plain TCP forwarder to `target` (no TLS, no HTTP/2): two of them in a
/// row are the floor any two-proxy path pays for its extra copies.
async fn relay(target: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional_with_sizes(
                    &mut inbound,
                    &mut outbound,
                    64 * 1024,
                    64 * 1024,
                )
                .await;
            });
        }
    });
    Ok(addr)
}

fn issue(ca: &Ca, id: &SpiffeId) -> anyhow::Result<WorkloadCertificate> {
    let request = CertificateRequest::generate(id)?;
    let issued = ca.sign(&request.csr, id, Duration::from_secs(3600))?;
    Ok(request.into_certificate(issued.chain)?)
}
