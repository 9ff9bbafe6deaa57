//! Request telemetry for HTTP-aware proxying: requests by response code, a
//! duration histogram, and one access-log line per request.
//!
//! Keyed like the connection series ([`Labels`]) plus the HTTPRoute that
//! took the request and the response code, so the number of series stays
//! bounded by the mesh, its routes and a handful of codes.
//! Recording is atomics only once a series exists.

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use braid_model::catalog::metrics as catalog;

use super::{Labels, Metrics, direction, escape, render_labels};

/// Upper bounds of the duration histogram's buckets, in seconds: fine below
/// a millisecond, where a proxy hop's cost shows.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters of one (labels, response code) series.
#[derive(Debug, Default)]
pub struct RequestCounters {
    /// Requests per bucket (not cumulative; summed when rendered).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Total duration in microseconds.
    sum_micros: AtomicU64,
}

/// One finished request, for [`Metrics::request`].
#[derive(Debug)]
pub struct RequestRecord<'a> {
    /// Who and which way.
    pub labels: &'a Labels,
    /// Response code sent to the client (a proxy-made one included).
    pub status: u16,
    /// From the request's arrival until its response ended.
    pub duration: Duration,
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// `:authority` or `Host`.
    pub authority: &'a str,
    /// Path (without the query, which may carry secrets).
    pub path: &'a str,
    /// `HTTP/1.1`, `HTTP/2`, ...
    pub protocol: &'a str,
    /// The client's address.
    pub client: &'a str,
    /// Where the request was sent (`ip:port`), or empty.
    pub upstream: &'a str,
    /// Why the proxy answered itself, or empty.
    pub error: &'a str,
    /// The HTTPRoute that took the request (`<namespace>/<name>`), or empty.
    pub route: &'a str,
}

// === impl Metrics ===

impl Metrics {
    /// Counts a finished request and writes its access-log line.
    pub fn request(&self, record: &RequestRecord<'_>) {
        let key = (
            record.labels.clone(),
            Arc::<str>::from(record.route),
            record.status,
        );
        let counters = match self.requests.get(&key) {
            Some(found) => found.clone(),
            None => self.requests.entry(key).or_default().clone(),
        };
        let seconds = record.duration.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            counters.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        counters.count.fetch_add(1, Ordering::Relaxed);
        counters
            .sum_micros
            .fetch_add(record.duration.as_micros() as u64, Ordering::Relaxed);
        log(record);
    }

    /// The Prometheus text of the request series.
    pub(super) fn render_requests(&self, out: &mut String) {
        let mut series: Vec<(String, Arc<RequestCounters>)> = self
            .requests
            .iter()
            .map(|e| {
                let (labels, route, status) = e.key();
                let rendered = format!(
                    "{},route=\"{}\",response_code=\"{status}\"",
                    render_labels(labels),
                    escape(route)
                );
                (rendered, e.value().clone())
            })
            .collect();
        if series.is_empty() {
            return;
        }
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let total = catalog::REQUESTS.name;
        out.push_str(&catalog::REQUESTS.header());
        for (labels, c) in &series {
            let _ = writeln!(
                out,
                "{total}{{{labels}}} {}",
                c.count.load(Ordering::Relaxed)
            );
        }
        let hist = catalog::REQUEST_DURATION.name;
        out.push_str(&catalog::REQUEST_DURATION.header());
        for (labels, c) in &series {
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&c.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(out, "{hist}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let count = c.count.load(Ordering::Relaxed);
            let sum = c.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{hist}_bucket{{{labels},le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{hist}_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "{hist}_count{{{labels}}} {count}");
        }
    }
}

/// One access-log line per request (target `braid::access`, message
/// `request`; a JSON object with `--log-format json`).
fn log(r: &RequestRecord<'_>) {
    let l = r.labels;
    tracing::info!(
        target: "braid::access",
        direction = direction(l.direction),
        src.workload = %l.source.workload,
        src.namespace = %l.source.namespace,
        src.principal = %l.source.principal,
        src.addr = r.client,
        dst.workload = %l.destination.workload,
        dst.namespace = %l.destination.namespace,
        dst.principal = %l.destination.principal,
        dst.addr = r.upstream,
        mtls = l.mtls,
        method = r.method,
        authority = r.authority,
        path = r.path,
        protocol = r.protocol,
        status = r.status,
        duration_ms = r.duration.as_secs_f64() * 1e3,
        error = r.error,
        route = r.route,
        "request"
    );
}
