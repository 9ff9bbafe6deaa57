//! Clients of the benchmark, run from inside the client pods' namespaces
//! (so their capture rules apply as to the pods' own applications): bulk
//! TCP streams, an open-loop HTTP/1.1 load generator, and idle connections.
//! Also the pure arithmetic the scenarios report with, unit-tested below.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    num::NonZeroU64,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use braid_capture::testing::TestPod;
use hdrhistogram::Histogram;

/// Bounds connecting and every read or write of a client.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A TCP connection opened from inside `from`'s namespace.
pub(crate) fn connect(from: &TestPod, to: SocketAddr) -> anyhow::Result<TcpStream> {
    let tcp = from
        .netns()?
        .run(|| TcpStream::connect_timeout(&to, IO_TIMEOUT))?
        .with_context(|| format!("{} -> {to}: connect", from.name))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

// === bulk streams ===

/// Sends from `from` to `to` over `streams` parallel connections, each
/// until it sent `bytes_per_stream` or `limit` passed; returns the bytes
/// sent. The receiver measures the rate.
pub(crate) fn bulk(
    from: &TestPod,
    to: SocketAddr,
    streams: usize,
    bytes_per_stream: u64,
    limit: Duration,
) -> anyhow::Result<u64> {
    let conns = (0..streams)
        .map(|_| connect(from, to))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let threads: Vec<_> = conns
        .into_iter()
        .map(|mut tcp| {
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let buf = vec![0x5a_u8; 128 * 1024];
                let started = Instant::now();
                let mut sent = 0u64;
                while sent < bytes_per_stream && started.elapsed() < limit {
                    let n = tcp.write(&buf).context("bulk write")?;
                    ensure!(n > 0, "bulk write: connection closed");
                    sent += n as u64;
                }
                Ok(sent)
            })
        })
        .collect();
    let mut total = 0;
    for thread in threads {
        total += thread
            .join()
            .map_err(|_| anyhow::anyhow!("a bulk sender panicked"))??;
    }
    Ok(total)
}

/// Gbit/s of `bytes` in `span`.
pub(crate) fn gbit_per_s(bytes: u64, span: Duration) -> Option<f64> {
    let seconds = span.as_secs_f64();
    (seconds > 0.0 && bytes > 0).then(|| bytes as f64 * 8.0 / seconds / 1e9)
}

// === open-loop HTTP ===

/// A fixed-rate run: requests are due at fixed intervals from the start,
/// spread round-robin over the connections; a request's latency runs from
/// when it was due, so a slow answer also delays (and charges) the requests
/// queued behind it: no coordinated omission.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Requests per second, all connections together.
    pub(crate) rate: f64,
    pub(crate) connections: usize,
    /// Requests due before this are sent but not recorded.
    pub(crate) warmup: Duration,
    /// How long the recorded part lasts.
    pub(crate) measure: Duration,
}

impl Plan {
    /// Every request of the run (warm-up included).
    pub(crate) fn total(&self) -> u64 {
        ((self.warmup + self.measure).as_secs_f64() * self.rate).round() as u64
    }

    /// When request `i` is due, after the start.
    pub(crate) fn due(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// Whether request `i` is recorded (due after the warm-up).
    pub(crate) fn recorded(&self, i: u64) -> bool {
        self.due(i) >= self.warmup
    }

    /// The requests connection `k` sends, in order.
    pub(crate) fn requests_of(&self, k: usize) -> impl Iterator<Item = u64> + use<> {
        (k as u64..self.total()).step_by(self.connections.max(1))
    }
}

/// What one open-loop run measured.
#[derive(Debug)]
pub(crate) struct LoadResult {
    /// Latency from due time to the end of the response, nanoseconds
    /// (recorded requests only).
    pub(crate) latency: Histogram<u64>,
    /// How late requests were sent (the generator's own lag), nanoseconds.
    pub(crate) lateness: Histogram<u64>,
    /// Requests answered with 200, all of the run.
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    /// Requests still unsent when the run's deadline came (the target was
    /// saturated); each recorded one is charged its delay until then.
    pub(crate) unsent: u64,
    /// The first error, if any.
    pub(crate) first_error: Option<String>,
    /// From the first due time to the last answer.
    pub(crate) elapsed: Duration,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs .. 60 s in nanoseconds, 3 significant digits.
    Ok(Histogram::new_with_bounds(1_000, 60_000_000_000, 3)?)
}

/// Runs `plan` from `from` to the HTTP server at `to`. Bounded: every
/// connection stops 10 s after the last request was due.
pub(crate) fn open_loop(from: &TestPod, to: SocketAddr, plan: Plan) -> anyhow::Result<LoadResult> {
    let conns = (0..plan.connections)
        .map(|_| HttpConn::connect(from, to))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let start = Instant::now() + Duration::from_millis(50);
    let hard_stop = start + plan.warmup + plan.measure + Duration::from_secs(10);
    let threads: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(k, mut conn)| {
            let from = from.clone();
            std::thread::spawn(move || -> anyhow::Result<LoadResult> {
                // Wake up on time (the default slack is 50 µs).
                let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(1));
                let mut result = LoadResult::empty()?;
                let mut broken = false;
                let mut requests = plan.requests_of(k);
                while let Some(i) = requests.next() {
                    let due = start + plan.due(i);
                    let now = Instant::now();
                    if now >= hard_stop {
                        // Not sent at all: as late as the deadline at least
                        // (leaving them out would hide the saturation).
                        for j in std::iter::once(i).chain(requests.by_ref()) {
                            result.unsent += 1;
                            if plan.recorded(j) {
                                let due = start + plan.due(j);
                                result.latency.saturating_record(nanos(
                                    hard_stop.saturating_duration_since(due),
                                ));
                            }
                        }
                        break;
                    }
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    result
                        .lateness
                        .saturating_record(nanos(Instant::now().saturating_duration_since(due)));
                    if broken {
                        match HttpConn::connect(&from, to) {
                            Ok(fresh) => {
                                conn = fresh;
                                broken = false;
                            }
                            Err(e) => {
                                result.errors += 1;
                                result.first_error.get_or_insert(format!("{e:#}"));
                                continue;
                            }
                        }
                    }
                    match conn.get() {
                        Ok(()) => {
                            let done = Instant::now();
                            result.ok += 1;
                            if plan.recorded(i) {
                                result.latency.saturating_record(nanos(done - due));
                            }
                        }
                        Err(e) => {
                            result.errors += 1;
                            result.first_error.get_or_insert(format!("{e:#}"));
                            broken = true;
                        }
                    }
                }
                result.elapsed = Instant::now().saturating_duration_since(start);
                Ok(result)
            })
        })
        .collect();
    let mut total = LoadResult::empty()?;
    for thread in threads {
        let part = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a load connection panicked"))??;
        total.merge(&part)?;
    }
    Ok(total)
}

impl LoadResult {
    /// Adds `other`'s requests to this one.
    pub(crate) fn merge(&mut self, other: &LoadResult) -> anyhow::Result<()> {
        self.latency.add(&other.latency)?;
        self.lateness.add(&other.lateness)?;
        self.ok += other.ok;
        self.errors += other.errors;
        self.unsent += other.unsent;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.elapsed = self.elapsed.max(other.elapsed);
        Ok(())
    }

    /// An empty result, to merge rounds into.
    pub(crate) fn empty() -> anyhow::Result<LoadResult> {
        Ok(LoadResult {
            latency: histogram()?,
            lateness: histogram()?,
            ok: 0,
            errors: 0,
            unsent: 0,
            first_error: None,
            elapsed: Duration::ZERO,
        })
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// p50, p90 and p99 of a histogram of nanoseconds, in milliseconds (`None`
/// when it is empty).
pub(crate) fn percentiles_ms(h: &Histogram<u64>) -> Option<[f64; 3]> {
    (!h.is_empty()).then(|| [0.5, 0.9, 0.99].map(|q| h.value_at_quantile(q) as f64 / 1e6))
}

/// One HTTP/1.1 keep-alive connection that sends `GET /` and reads a
/// `Content-Length` answer.
pub(crate) struct HttpConn {
    tcp: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl HttpConn {
    pub(crate) fn connect(from: &TestPod, to: SocketAddr) -> anyhow::Result<HttpConn> {
        Ok(HttpConn {
            tcp: connect(from, to)?,
            request: format!("GET /1k HTTP/1.1\r\nHost: {to}\r\n\r\n").into_bytes(),
            buf: Vec::with_capacity(4096),
        })
    }

    /// One request; `Err` unless the answer is a complete 200.
    pub(crate) fn get(&mut self) -> anyhow::Result<()> {
        self.tcp.write_all(&self.request).context("write")?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let (status, head, body) = loop {
            if let Some(parsed) = parse_head(&self.buf) {
                break parsed?;
            }
            let n = self.tcp.read(&mut chunk).context("read the head")?;
            ensure!(n > 0, "closed before the head ended");
            self.buf.extend_from_slice(&chunk[..n]);
        };
        while self.buf.len() < head + body {
            let n = self.tcp.read(&mut chunk).context("read the body")?;
            ensure!(n > 0, "closed in the body");
            self.buf.extend_from_slice(&chunk[..n]);
        }
        ensure!(status == 200, "status {status}");
        Ok(())
    }
}

/// Parses a response head: `None` until it is complete, else (status, head
/// length, Content-Length).
pub(crate) fn parse_head(buf: &[u8]) -> Option<anyhow::Result<(u16, usize, usize)>> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let parse = || -> anyhow::Result<(u16, usize, usize)> {
        let text = std::str::from_utf8(&buf[..end]).context("a non-UTF-8 head")?;
        let mut lines = text.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .context("no status")?;
        let mut length = None;
        for line in lines {
            if let Some((name, value)) = line.split_once(':')
                && name.trim().eq_ignore_ascii_case("content-length")
            {
                length = Some(value.trim().parse().context("bad Content-Length")?);
            }
            if let Some((name, value)) = line.split_once(':')
                && name.trim().eq_ignore_ascii_case("transfer-encoding")
            {
                bail!("unexpected Transfer-Encoding: {}", value.trim());
            }
        }
        Ok((status, end, length.context("no Content-Length")?))
    };
    Some(parse())
}

// === idle connections ===

/// Opens up to `n` connections from `from` to the hold server at `to`,
/// each proven end to end by a one-byte exchange; stops early at
/// `deadline` or after 20 failures. Returns the open connections and the
/// failures.
pub(crate) fn hold(
    from: &TestPod,
    to: SocketAddr,
    n: usize,
    deadline: Instant,
) -> (Vec<TcpStream>, Vec<String>) {
    let mut conns = Vec::with_capacity(n);
    let mut failures = Vec::new();
    while conns.len() < n && failures.len() < 20 && Instant::now() < deadline {
        let opened = connect(from, to).and_then(|mut tcp| {
            tcp.write_all(b"h")?;
            let mut byte = [0u8; 1];
            tcp.read_exact(&mut byte)?;
            Ok(tcp)
        });
        match opened {
            Ok(tcp) => conns.push(tcp),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    (conns, failures)
}

// === /proc ===

/// utime + stime (clock ticks) from the text of `/proc/<pid>/stat`.
pub(crate) fn cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields
    // after the last ')' start with field 3 (state); utime is 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS in bytes from the text of `/proc/<pid>/status`.
pub(crate) fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The process's CPU time so far, in clock ticks.
pub(crate) fn process_cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    cpu_ticks(&text).with_context(|| format!("parse {path}"))
}

/// The process's resident memory, in bytes.
pub(crate) fn process_rss(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    vm_rss_bytes(&text).with_context(|| format!("parse {path}"))
}

/// Microseconds of CPU per request: `ticks` of CPU (at `ticks_per_second`)
/// spent serving `requests`.
pub(crate) fn cpu_us_per_request(ticks: u64, ticks_per_second: u64, requests: u64) -> Option<f64> {
    (requests > 0 && ticks_per_second > 0)
        .then(|| ticks as f64 / ticks_per_second as f64 * 1e6 / requests as f64)
}

/// Bytes of resident memory per connection: the growth from `before` to
/// `after` over `connections` (negative when the process shrank).
pub(crate) fn bytes_per_connection(before: u64, after: u64, connections: usize) -> Option<f64> {
    (connections > 0).then(|| (after as f64 - before as f64) / connections as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rate: f64, connections: usize) -> Plan {
        Plan {
            rate,
            connections,
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(2),
        }
    }

    #[test]
    fn requests_are_due_at_fixed_intervals_round_robin() {
        let p = plan(1000.0, 16);
        assert_eq!(p.total(), 3000);
        assert_eq!(p.due(0), Duration::ZERO);
        assert_eq!(p.due(1500), Duration::from_millis(1500));
        // Connection 3 sends requests 3, 19, 35, ...: 16 ms apart.
        let of_3: Vec<u64> = p.requests_of(3).take(3).collect();
        assert_eq!(of_3, [3, 19, 35]);
        assert_eq!(p.due(19) - p.due(3), Duration::from_millis(16));
        // Together the connections send each request exactly once.
        let mut all: Vec<u64> = (0..16).flat_map(|k| p.requests_of(k)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..3000).collect::<Vec<_>>());
        // The warm-up's requests are sent but not recorded.
        assert!(!p.recorded(999));
        assert!(p.recorded(1000));
        assert_eq!((0..p.total()).filter(|&i| p.recorded(i)).count(), 2000);
    }

    #[test]
    fn percentiles_come_from_the_histogram_in_ms() {
        let mut h = histogram().unwrap();
        assert_eq!(percentiles_ms(&h), None);
        // 1..=100 ms, one each.
        for ms in 1..=100u64 {
            h.record(ms * 1_000_000).unwrap();
        }
        let [p50, p90, p99] = percentiles_ms(&h).unwrap();
        // Three significant digits.
        assert!((p50 - 50.0).abs() < 0.1, "{p50}");
        assert!((p90 - 90.0).abs() < 0.1, "{p90}");
        assert!((p99 - 99.0).abs() < 0.1, "{p99}");
    }

    #[test]
    fn a_response_head_is_parsed_once_complete() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 4").is_none());
        let (status, head, body) =
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 1024\r\ndate: x\r\n\r\nxx")
                .unwrap()
                .unwrap();
        assert_eq!((status, head, body), (200, 50, 1024));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().is_err());
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn proc_stat_and_status_are_parsed() {
        let stat = "4242 (braid (proxy)) S 1 4242 4242 0 -1 4194560 2107 0 0 0 \
                    150 37 0 0 20 0 9 0 12345 1000000 3000 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(187));
        assert_eq!(cpu_ticks("garbage"), None);
        let status = "Name:\tbraid-proxy\nVmPeak:\t  20000 kB\nVmRSS:\t   11264 kB\nThreads:\t9\n";
        assert_eq!(vm_rss_bytes(status), Some(11264 * 1024));
        assert_eq!(vm_rss_bytes("Name: x\n"), None);
    }

    #[test]
    fn cpu_per_request_and_bytes_per_connection() {
        // 25 ticks at 100 Hz = 0.25 s over 5 000 requests = 50 µs each.
        let us = cpu_us_per_request(25, 100, 5_000).unwrap();
        assert!((us - 50.0).abs() < 1e-9, "{us}");
        assert_eq!(cpu_us_per_request(25, 100, 0), None);
        assert_eq!(bytes_per_connection(1_000, 5_096_000, 1_000), Some(5_095.0));
        assert_eq!(bytes_per_connection(2_000, 1_000, 1_000), Some(-1.0));
        assert_eq!(bytes_per_connection(1, 2, 0), None);
        assert_eq!(
            gbit_per_s(1_250_000_000, Duration::from_secs(1)),
            Some(10.0)
        );
        assert_eq!(gbit_per_s(0, Duration::from_secs(1)), None);
    }
}
