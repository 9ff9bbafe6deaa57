//! Connection telemetry: Prometheus counters per (direction, source,
//! destination, mTLS) and one access-log line per connection; for HTTP
//! proxied by a sidecar also per request ([`RequestRecord`]).
//!
//! Series are created on a connection's first sighting of its label set and
//! then updated with atomics only, so the data path takes no lock after
//! warm-up. Label values come from the control plane's workloads (or
//! `unknown`), so the number of series is bounded by the mesh, not by
//! traffic. The access log goes through `tracing` with target
//! `braid::access`: one line per finished or refused connection, a JSON
//! object with `--log-format json`.

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use braid_model::{
    Workload,
    catalog::{Metric, metrics as catalog},
};
use dashmap::DashMap;

mod counted;
mod requests;

pub use counted::Counted;
pub use requests::{RequestCounters, RequestRecord};

/// Which way a connection goes, seen from the proxied workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Into a captured workload.
    Inbound,
    /// Out of a captured workload.
    Outbound,
}

/// One side of a connection, as labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Workload name, or `unknown`.
    pub workload: String,
    /// Namespace, or `unknown`.
    pub namespace: String,
    /// SPIFFE ID, or `unknown` (plaintext from outside the mesh).
    pub principal: String,
}

/// What a series is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Labels {
    /// Inbound or outbound.
    pub direction: Direction,
    /// Who opened the connection.
    pub source: Peer,
    /// Who it went to.
    pub destination: Peer,
    /// Whether it travelled over mutual TLS (HBONE).
    pub mtls: bool,
}

/// A request series: its connection labels, the HTTPRoute that took it
/// (empty when none) and the response code.
type RequestKey = (Labels, Arc<str>, u16);

/// A counter family and how to read it from [`Counters`].
type Counter = (&'static Metric, fn(&Counters) -> u64);

/// Counters of one series.
#[derive(Debug, Default)]
pub struct Counters {
    opened: AtomicU64,
    closed: AtomicU64,
    denied: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
}

/// One series: its labels and counters. Its connections share the labels
/// (for their access-log lines) instead of each keeping a copy while open.
#[derive(Debug)]
struct Series {
    labels: Labels,
    counters: Counters,
}

/// Every series of one proxy; cheap to clone (clones share it).
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    series: Arc<DashMap<Labels, Arc<Series>>>,
    /// HTTP requests by labels, route and response code (sidecars only).
    requests: Arc<DashMap<RequestKey, Arc<RequestCounters>>>,
}

/// A connection being counted: created when it is accepted and decided,
/// finished when it ends (which counts its bytes and writes the access log).
#[derive(Debug)]
pub struct Connection {
    series: Arc<Series>,
    started: Instant,
}

// === impl Peer ===

impl Peer {
    /// A meshed workload.
    pub fn workload(workload: &Workload) -> Self {
        Self {
            workload: workload.name.clone(),
            namespace: workload.namespace.clone(),
            principal: workload.spiffe_id(),
        }
    }

    /// A workload whose identity is known from its certificate only.
    pub fn principal(principal: &str) -> Self {
        let namespace = principal
            .split("/ns/")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("unknown");
        Self {
            workload: "unknown".into(),
            namespace: namespace.into(),
            principal: principal.into(),
        }
    }

    /// Nothing known (plaintext from outside the mesh, or an address
    /// outside it).
    pub fn unknown() -> Self {
        Self {
            workload: "unknown".into(),
            namespace: "unknown".into(),
            principal: "unknown".into(),
        }
    }
}

// === impl Metrics ===

impl Metrics {
    /// Counts a new connection allowed with `labels`.
    pub fn open(&self, labels: Labels) -> Connection {
        let series = self.series(labels);
        series.counters.opened.fetch_add(1, Ordering::Relaxed);
        Connection {
            series,
            started: Instant::now(),
        }
    }

    /// Counts a connection refused with `labels` and logs why.
    pub fn deny(&self, labels: Labels, client: &str, target: &str, reason: &str) {
        let series = self.series(labels);
        series.counters.denied.fetch_add(1, Ordering::Relaxed);
        log(&series.labels, client, target, Some(reason), 0, 0, 0);
    }

    fn series(&self, labels: Labels) -> Arc<Series> {
        if let Some(found) = self.series.get(&labels) {
            return found.clone();
        }
        let key = labels.clone();
        self.series
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Series {
                    labels,
                    counters: Counters::default(),
                })
            })
            .clone()
    }

    /// The Prometheus text exposition of every series, plus `extra` lines
    /// (gauges the caller owns).
    pub fn render(&self, extra: &str) -> String {
        let mut series: Vec<(Labels, Arc<Series>)> = self
            .series
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        series.sort_by_cached_key(|(l, _)| render_labels(l));
        let mut out = String::new();
        let metrics: [Counter; 5] = [
            (&catalog::TCP_CONNECTIONS_OPENED, |c| {
                c.opened.load(Ordering::Relaxed)
            }),
            (&catalog::TCP_CONNECTIONS_CLOSED, |c| {
                c.closed.load(Ordering::Relaxed)
            }),
            (&catalog::TCP_CONNECTIONS_DENIED, |c| {
                c.denied.load(Ordering::Relaxed)
            }),
            (&catalog::TCP_SENT_BYTES, |c| c.sent.load(Ordering::Relaxed)),
            (&catalog::TCP_RECEIVED_BYTES, |c| {
                c.received.load(Ordering::Relaxed)
            }),
        ];
        for (metric, value) in metrics {
            out.push_str(&metric.header());
            for (labels, entry) in &series {
                let _ = writeln!(
                    out,
                    "{}{{{}}} {}",
                    metric.name,
                    render_labels(labels),
                    value(&entry.counters)
                );
            }
        }
        self.render_requests(&mut out);
        out.push_str(extra);
        out
    }
}

// === impl Connection ===

impl Connection {
    /// Ends the connection: counts its bytes (source → destination as
    /// `sent`, back as `received`) and writes the access log line.
    pub fn finish(self, client: &str, target: &str, sent: u64, received: u64) {
        let c = &self.series.counters;
        c.closed.fetch_add(1, Ordering::Relaxed);
        c.sent.fetch_add(sent, Ordering::Relaxed);
        c.received.fetch_add(received, Ordering::Relaxed);
        let millis = self.started.elapsed().as_millis() as u64;
        log(
            &self.series.labels,
            client,
            target,
            None,
            sent,
            received,
            millis,
        );
    }
}

/// One access-log line.
fn log(
    labels: &Labels,
    client: &str,
    target: &str,
    denied: Option<&str>,
    sent: u64,
    received: u64,
    duration_ms: u64,
) {
    tracing::info!(
        target: "braid::access",
        direction = direction(labels.direction),
        src.workload = %labels.source.workload,
        src.namespace = %labels.source.namespace,
        src.principal = %labels.source.principal,
        src.addr = client,
        dst.workload = %labels.destination.workload,
        dst.namespace = %labels.destination.namespace,
        dst.principal = %labels.destination.principal,
        dst.addr = target,
        mtls = labels.mtls,
        decision = if denied.is_some() { "deny" } else { "allow" },
        reason = denied.unwrap_or(""),
        sent,
        received,
        duration_ms,
        "connection"
    );
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    }
}

fn render_labels(l: &Labels) -> String {
    let mut out = String::new();
    let pairs = [
        ("direction", direction(l.direction)),
        ("source_workload", &l.source.workload),
        ("source_namespace", &l.source.namespace),
        ("source_principal", &l.source.principal),
        ("destination_workload", &l.destination.workload),
        ("destination_namespace", &l.destination.namespace),
        ("destination_principal", &l.destination.principal),
        ("mtls", if l.mtls { "true" } else { "false" }),
    ];
    for (i, (key, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{key}=\"{}\"", escape(value));
    }
    out
}

/// Prometheus label-value escaping: backslash, quote and newline.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
