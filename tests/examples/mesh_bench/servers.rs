//! The servers of the benchmark, inside the server pods' namespaces, all on
//! one tokio runtime of this process: a TCP sink that counts what it
//! receives (throughput), an HTTP/1.1 server answering every request with
//! 1 KiB (latency, CPU), and a server that holds connections open after a
//! one-byte exchange (memory per idle connection).

use std::{
    convert::Infallible,
    net::{Ipv4Addr, TcpListener},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use braid_capture::testing::TestPod;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The body of every HTTP response.
pub(crate) const RESPONSE_BYTES: usize = 1024;

/// What a sink received since its last [`SinkStats::reset`].
#[derive(Debug)]
pub(crate) struct SinkStats {
    base: Instant,
    bytes: AtomicU64,
    /// Nanoseconds since `base` of the first and the last read.
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    /// Connections that reached end of stream (or failed).
    closed: AtomicU64,
}

impl SinkStats {
    fn new() -> SinkStats {
        SinkStats {
            base: Instant::now(),
            bytes: AtomicU64::new(0),
            first_ns: AtomicU64::new(u64::MAX),
            last_ns: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        }
    }

    /// Starts a new measurement.
    pub(crate) fn reset(&self) {
        self.bytes.store(0, Ordering::SeqCst);
        self.first_ns.store(u64::MAX, Ordering::SeqCst);
        self.last_ns.store(0, Ordering::SeqCst);
        self.closed.store(0, Ordering::SeqCst);
    }

    fn record(&self, n: usize) {
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.first_ns.fetch_min(now, Ordering::SeqCst);
        self.last_ns.fetch_max(now, Ordering::SeqCst);
        self.bytes.fetch_add(n as u64, Ordering::SeqCst);
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    pub(crate) fn closed(&self) -> u64 {
        self.closed.load(Ordering::SeqCst)
    }

    /// Time from the first to the last byte received.
    pub(crate) fn span(&self) -> Duration {
        let first = self.first_ns.load(Ordering::SeqCst);
        let last = self.last_ns.load(Ordering::SeqCst);
        Duration::from_nanos(last.saturating_sub(first))
    }
}

/// Connections a hold server currently has open.
#[derive(Debug, Default)]
pub(crate) struct HoldStats {
    open: AtomicU64,
}

impl HoldStats {
    pub(crate) fn open(&self) -> u64 {
        self.open.load(Ordering::SeqCst)
    }
}

/// Binds `0.0.0.0:port` inside `pod` and hands the listener to tokio.
fn bind(
    runtime: &tokio::runtime::Runtime,
    pod: &TestPod,
    port: u16,
) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = pod
        .netns()?
        .run(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))?
        .with_context(|| format!("bind :{port} in {}", pod.name))?;
    listener.set_nonblocking(true)?;
    let _entered = runtime.enter();
    Ok(tokio::net::TcpListener::from_std(listener)?)
}

/// A sink on `port` in `pod`: reads and counts everything.
pub(crate) fn start_sink(
    runtime: &tokio::runtime::Runtime,
    pod: &TestPod,
    port: u16,
) -> anyhow::Result<Arc<SinkStats>> {
    let listener = bind(runtime, pod, port)?;
    let stats = Arc::new(SinkStats::new());
    let shared = Arc::clone(&stats);
    runtime.spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let stats = Arc::clone(&shared);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => stats.record(n),
                    }
                }
                stats.closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    Ok(stats)
}

/// An HTTP/1.1 server on `port` in `pod`: every request gets 200 and
/// [`RESPONSE_BYTES`] bytes.
pub(crate) fn start_http(
    runtime: &tokio::runtime::Runtime,
    pod: &TestPod,
    port: u16,
) -> anyhow::Result<()> {
    let listener = bind(runtime, pod, port)?;
    let body = Bytes::from(vec![b'x'; RESPONSE_BYTES]);
    runtime.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(body))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Ok(())
}

/// A server on `port` in `pod` that answers one byte with one byte, then
/// holds the connection until the client closes it.
pub(crate) fn start_hold(
    runtime: &tokio::runtime::Runtime,
    pod: &TestPod,
    port: u16,
) -> anyhow::Result<Arc<HoldStats>> {
    let listener = bind(runtime, pod, port)?;
    let stats = Arc::new(HoldStats::default());
    let shared = Arc::clone(&stats);
    runtime.spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let stats = Arc::clone(&shared);
            stats.open.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut byte = [0u8; 1];
                if matches!(tcp.read(&mut byte).await, Ok(1)) && tcp.write_all(&byte).await.is_ok()
                {
                    // Until the client closes (bounded: the run is).
                    let mut buf = [0u8; 64];
                    while let Ok(1..) = tcp.read(&mut buf).await {}
                }
                stats.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Ok(stats)
}
