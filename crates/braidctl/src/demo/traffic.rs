//! The steady traffic generator: a fixed request rate per edge, from the
//! client application's current pod to the server application's current
//! pod, each request on a new connection, measured from the client's side.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use braid_capture::NetNs;

use super::{
    http,
    topology::{APPS, EDGES, Mode},
};

/// Requests per second on each edge.
pub(crate) const RATE: u32 = 20;
/// A request not answered within this counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Samples older than this are dropped (bounds memory with `--keep`).
const KEEP_SAMPLES: Duration = Duration::from_secs(900);
/// More requests in flight on one edge than this counts as an error
/// instead of piling up connections.
const MAX_IN_FLIGHT: usize = 100;

/// Where an application is served now: its current pod.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) pod: String,
    pub(crate) addr: SocketAddr,
    pub(crate) netns: Arc<NetNs>,
    /// The data plane serving the pod (sidecar, ambient or none).
    pub(crate) mode: Mode,
}

/// The current endpoint of each application (indexes of [`APPS`]); a
/// rollout swaps one entry.
pub(crate) type Endpoints = Arc<RwLock<Vec<Endpoint>>>;

/// Numbers of one edge over a time window.
#[derive(Debug, Clone, Default)]
pub(crate) struct Window {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) rps: f64,
    pub(crate) p50: Option<Duration>,
    pub(crate) p99: Option<Duration>,
    /// The most recent error in the window.
    pub(crate) last_error: Option<String>,
}

#[derive(Debug, Clone)]
struct Sample {
    /// When the request started.
    at: Instant,
    latency: Duration,
    error: Option<String>,
}

#[derive(Debug, Default)]
struct EdgeStats {
    samples: VecDeque<Sample>,
}

/// The running generator; stops when dropped.
#[derive(Debug)]
pub(crate) struct Traffic {
    stats: Arc<Vec<Mutex<EdgeStats>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

// === impl Traffic ===

impl Traffic {
    /// Starts [`RATE`] requests per second on every edge of [`EDGES`].
    pub(crate) fn start(endpoints: &Endpoints) -> Traffic {
        let stats: Arc<Vec<Mutex<EdgeStats>>> =
            Arc::new(EDGES.iter().map(|_| Mutex::default()).collect());
        let tasks = (0..EDGES.len())
            .map(|edge| tokio::spawn(drive(edge, Arc::clone(endpoints), Arc::clone(&stats))))
            .collect();
        Traffic { stats, tasks }
    }

    /// Edge `edge`'s requests that started in `[from, to)`.
    pub(crate) fn window(&self, edge: usize, from: Instant, to: Instant) -> Window {
        let Some(Ok(stats)) = self.stats.get(edge).map(Mutex::lock) else {
            return Window::default();
        };
        let mut latencies = Vec::new();
        let mut w = Window::default();
        for s in stats.samples.iter().filter(|s| s.at >= from && s.at < to) {
            w.requests += 1;
            match &s.error {
                Some(e) => {
                    w.errors += 1;
                    w.last_error = Some(e.clone());
                }
                None => latencies.push(s.latency),
            }
        }
        latencies.sort_unstable();
        w.p50 = percentile(&latencies, 0.50);
        w.p99 = percentile(&latencies, 0.99);
        let secs = to.saturating_duration_since(from).as_secs_f64();
        if secs > 0.0 {
            w.rps = w.requests as f64 / secs;
        }
        w
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One edge's request loop.
async fn drive(edge: usize, endpoints: Endpoints, stats: Arc<Vec<Mutex<EdgeStats>>>) {
    let (client, server) = EDGES[edge];
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let targets = endpoints
            .read()
            .ok()
            .and_then(|e| Some((e.get(client)?.clone(), e.get(server)?.clone())));
        let Some((from, to)) = targets else { continue };
        let stats = Arc::clone(&stats);
        let in_flight = Arc::clone(&in_flight);
        let at = Instant::now();
        if in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
            in_flight.fetch_sub(1, Ordering::SeqCst);
            record(&stats, edge, at, Some("too many requests in flight".into()));
            continue;
        }
        tokio::spawn(async move {
            let error = request(&from, &to).await.err().map(|e| format!("{e:#}"));
            in_flight.fetch_sub(1, Ordering::SeqCst);
            record(&stats, edge, at, error);
        });
    }
}

fn record(stats: &[Mutex<EdgeStats>], edge: usize, at: Instant, error: Option<String>) {
    let Some(Ok(mut s)) = stats.get(edge).map(Mutex::lock) else {
        return;
    };
    let now = Instant::now();
    s.samples.push_back(Sample {
        at,
        latency: now.saturating_duration_since(at),
        error,
    });
    while s
        .samples
        .front()
        .is_some_and(|f| now.saturating_duration_since(f.at) > KEEP_SAMPLES)
    {
        s.samples.pop_front();
    }
}

/// One request from `from`'s pod to `to`'s pod; `Err` unless it got 200.
pub(crate) async fn request(from: &Endpoint, to: &Endpoint) -> anyhow::Result<()> {
    let host = APPS.iter().find(|a| a.port == to.addr.port()).map_or_else(
        || to.addr.to_string(),
        |a| format!("{}.{}", a.name, a.namespace),
    );
    let exchange = async {
        let stream = http::connect_in(&from.netns, to.addr).await?;
        http::get(stream, &host, "/").await
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Err(_) => anyhow::bail!("no response within {REQUEST_TIMEOUT:?}"),
        Ok(Err(e)) => Err(e),
        Ok(Ok((200, _))) => Ok(()),
        Ok(Ok((status, _))) => anyhow::bail!("HTTP {status}"),
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(i.min(sorted.len() - 1)).copied()
}
