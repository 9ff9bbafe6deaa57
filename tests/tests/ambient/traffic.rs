//! Echo servers and clients inside pods, and what a pod's sockets show.

// Two test targets include this with different needs: what one leaves
// unused the other uses.
#![allow(unreachable_pub, dead_code, unused_imports)]

use std::{
    fmt,
    io::{ErrorKind, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use super::*;

// === echo servers and clients ===

/// A TCP echo server listening inside a pod's namespace, served by a thread
/// of this process.
pub struct EchoServer {
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// Binds `0.0.0.0:port` in `pod`'s namespace and echoes every connection.
    pub fn start(pod: &TestPod, port: u16) -> EchoServer {
        let ns = pod.netns().expect("open the pod's namespace");
        let listener = ns
            .run(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))
            .expect("enter the pod's namespace")
            .unwrap_or_else(|e| panic!("bind the echo port {port} in pod {}: {e}", pod.name));
        let accepting = listener.try_clone().expect("clone the listener");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("echo-{}", pod.name))
            .spawn(move || {
                loop {
                    match accepting.accept() {
                        Ok((conn, _)) => {
                            let _ = std::thread::Builder::new()
                                .name("echo-conn".into())
                                .spawn(move || echo_connection(conn));
                        }
                        Err(_) if stopped.load(Ordering::SeqCst) => return,
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
            .expect("spawn the echo thread");
        EchoServer {
            listener,
            stop,
            thread: Some(thread),
        }
    }
}

fn echo_connection(mut conn: TcpStream) {
    // Bounded, so a connection nobody closes does not keep a thread forever.
    let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept (it fails with EINVAL on Linux).
        let _ = rustix::net::shutdown(&self.listener, rustix::net::Shutdown::Read);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long a client waits to connect, and for each read or write.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// Why an echo exchange did not work.
#[derive(Debug)]
pub enum Failure {
    /// Refused, reset or closed (EOF) by the other side: what a policy
    /// refusal looks like to an application.
    Closed(String),
    /// Nothing happened within the timeout.
    TimedOut(String),
    /// Anything else (wrong bytes, cannot enter the namespace...).
    Other(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Closed(s) => write!(f, "closed: {s}"),
            Failure::TimedOut(s) => write!(f, "timed out: {s}"),
            Failure::Other(s) => write!(f, "failed: {s}"),
        }
    }
}

fn classify(step: &str, e: &std::io::Error) -> Failure {
    let msg = format!("{step}: {e}");
    match e.kind() {
        ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::NotConnected
        | ErrorKind::UnexpectedEof => Failure::Closed(msg),
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Failure::TimedOut(msg),
        _ => Failure::Other(msg),
    }
}

static PROBES: AtomicU64 = AtomicU64::new(0);

/// A client connection opened from inside a pod, so the pod's capture rules
/// (if any) apply exactly as to the pod's own applications.
pub struct EchoConn {
    stream: TcpStream,
    label: String,
}

impl EchoConn {
    /// Connects from `from`'s namespace to `to`.
    pub fn connect(from: &TestPod, to: SocketAddr) -> Result<EchoConn, Failure> {
        let label = format!("{} -> {to}", from.name);
        let ns = from
            .netns()
            .map_err(|e| Failure::Other(format!("{label}: open namespace: {e}")))?;
        let stream = ns
            .run(|| TcpStream::connect_timeout(&to, CONNECT_TIMEOUT))
            .map_err(|e| Failure::Other(format!("{label}: enter namespace: {e}")))?
            .map_err(|e| classify(&format!("{label}: connect"), &e))?;
        let setup = stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
            .and_then(|()| stream.set_nodelay(true));
        setup.map_err(|e| Failure::Other(format!("{label}: socket options: {e}")))?;
        Ok(EchoConn { stream, label })
    }

    /// Sends one unique line and expects it back.
    pub fn roundtrip(&mut self) -> Result<(), Failure> {
        let n = PROBES.fetch_add(1, Ordering::Relaxed);
        let payload = format!("braid e2e {} #{n}\n", self.label);
        let label = &self.label;
        self.stream
            .write_all(payload.as_bytes())
            .map_err(|e| classify(&format!("{label}: write"), &e))?;
        let mut got = Vec::with_capacity(payload.len());
        let mut buf = [0u8; 512];
        while got.len() < payload.len() {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return Err(Failure::Closed(format!(
                        "{label}: EOF after {} of {} bytes",
                        got.len(),
                        payload.len()
                    )));
                }
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) => return Err(classify(&format!("{label}: read"), &e)),
            }
        }
        if got == payload.as_bytes() {
            Ok(())
        } else {
            Err(Failure::Other(format!(
                "{label}: sent {payload:?}, got {:?}",
                String::from_utf8_lossy(&got)
            )))
        }
    }

    /// This end's local address (in the source pod).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.stream.local_addr().ok()
    }
}

/// A fresh connection from `from` to `to` that echoes one line.
pub fn echo(from: &TestPod, to: SocketAddr) -> Result<(), Failure> {
    EchoConn::connect(from, to)?.roundtrip()
}

/// A fresh connection from `from` to `to` that is refused, reset or closed
/// without echoing (`Ok`), rather than echoing or hanging (`Err`).
pub fn refused(from: &TestPod, to: SocketAddr) -> Result<String, String> {
    match echo(from, to) {
        Err(Failure::Closed(how)) => Ok(how),
        Ok(()) => Err(format!("{} -> {to} still echoes", from.name)),
        Err(other) => Err(format!(
            "{} -> {to} failed, but not by being closed: {other}",
            from.name
        )),
    }
}

// === observing a pod's sockets ===

/// `(local, peer)` of the established TCP connections in `pod` whose local
/// port is `port` (`ss -Htn state established '( sport = :PORT )'`).
pub fn established(pod: &TestPod, port: u16) -> Vec<(String, String)> {
    let out = pod
        .exec(
            "ss",
            [
                "-Htn",
                "state",
                "established",
                &format!("( sport = :{port} )"),
            ],
        )
        .expect("run ss");
    assert!(
        out.status.success(),
        "ss in {}: {}",
        pod.name,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_ss(&String::from_utf8_lossy(&out.stdout))
}

/// Local ports with a listening TCP socket in `pod`.
pub fn listening_ports(pod: &TestPod) -> Vec<u16> {
    let out = pod.exec("ss", ["-Hltn"]).expect("run ss");
    assert!(
        out.status.success(),
        "ss in {}: {}",
        pod.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ports: Vec<u16> = parse_ss(&String::from_utf8_lossy(&out.stdout))
        .iter()
        .filter_map(|(local, _)| local.rsplit_once(':')?.1.parse().ok())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The first two `addr:port` columns of each `ss -H` line (local, peer);
/// works with and without the State column.
pub fn parse_ss(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut addrs = line.split_whitespace().filter(|f| {
                f.contains(':') && f.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty())
            });
            Some((addrs.next()?.to_owned(), addrs.next()?.to_owned()))
        })
        .collect()
}

/// Whether `addr` (as `ss` prints it: `1.2.3.4:5`, `[::ffff:1.2.3.4]:5`) has
/// the IP `ip`.
pub fn has_ip(addr: &str, ip: Ipv4Addr) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_prefix("::ffff:").unwrap_or(host);
    host.parse::<Ipv4Addr>().is_ok_and(|h| h == ip)
}

// === a client looping requests in the background ===

/// A thread in `from` echoing one line over a new connection to `to` every
/// few milliseconds until stopped (bounded: 2 minutes or 20 000 rounds),
/// counting successes and keeping every failure.
pub struct Looper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(u64, Vec<String>)>>,
}

impl Looper {
    /// Starts looping.
    pub fn start(from: &TestPod, to: SocketAddr) -> Looper {
        let from = from.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("loop-{}", from.name))
            .spawn(move || {
                let started = std::time::Instant::now();
                let (mut ok, mut failures) = (0u64, Vec::new());
                for _ in 0..20_000 {
                    if stopping.load(Ordering::SeqCst)
                        || started.elapsed() > Duration::from_secs(120)
                    {
                        break;
                    }
                    match echo(&from, to) {
                        Ok(()) => ok += 1,
                        Err(e) => failures.push(format!("{:?}: {e}", started.elapsed())),
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                (ok, failures)
            })
            .expect("spawn the loop thread");
        Looper {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and returns (successful rounds, failures).
    pub fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Looper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The process id listening on `port` inside `pod` (from `ss -p`), if any.
pub fn listener_pid(pod: &TestPod, port: u16) -> Option<u32> {
    let filter = format!("sport = :{port}");
    let out = pod.exec("ss", ["-ltnpH", filter.as_str()]).ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.find("pid=")? + 4;
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
