//! The ambient-mode "cluster" of `tests/ambient.rs`: two logical nodes, each
//! with a real `braid-proxy ztunnel` and a real `braid-cni agent` process,
//! one real `braid-control` process on a YAML directory, and four pods as
//! network namespaces on one bridge (`braid_capture::testing::TestNet`).
//!
//! Everything is driven the way production drives it: pods are announced to
//! the agents by running the `braid-cni` plugin binary with a CNI
//! environment and stdin; configuration changes are file edits in the
//! control plane's directory; processes are started from the binaries
//! `cargo build` produces. Every wait has a deadline; nothing sleeps except
//! the short interval between two polls.
//!
//! Dropping a [`Cluster`] stops the processes it started (by PID: SIGTERM,
//! then SIGKILL), the echo servers, deletes the namespaces and the temporary
//! directory. When the test is panicking it first prints the tail of every
//! process log (set `BRAID_E2E_KEEP=1` to keep the directory as well).

#![allow(unreachable_pub, dead_code)]

use std::{
    collections::BTreeMap,
    ffi::OsString,
    fmt,
    fs::OpenOptions,
    io::{ErrorKind, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use braid_capture::testing::{TestNet, TestPod};
use serde_json::{Value, json};

// === the topology ===

/// The `web` Service's virtual IP and port (→ targetPort 8080).
pub const WEB_VIP: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 10), 80));

/// One pod of the topology.
#[derive(Clone, Copy, Debug)]
pub struct PodDef {
    pub name: &'static str,
    pub namespace: &'static str,
    pub service_account: &'static str,
    pub node: &'static str,
    pub ip: Ipv4Addr,
    /// The TCP echo port the pod serves, if any.
    pub port: Option<u16>,
    /// Whether the pod's effective mode is ambient (from its namespace).
    pub ambient: bool,
    /// Whether the pod runs a braid-proxy sidecar (its namespace is in
    /// sidecar mode; the test starts `init` and `sidecar` in it).
    pub sidecar: bool,
    /// `K8S_POD_UID` as the runtime passes it.
    pub uid: &'static str,
}

impl PodDef {
    /// `ip:port` of the pod's echo server.
    pub fn echo_addr(&self) -> SocketAddr {
        let port = self.port.expect("this pod serves no echo port");
        SocketAddr::V4(SocketAddrV4::new(self.ip, port))
    }
}

/// The nodes; each runs one ztunnel and one agent.
pub const NODES: [&str; 2] = ["node-a", "node-b"];

/// Namespaces and their `braid.dev/mode` label.
pub const NAMESPACES: [(&str, &str); 4] = [
    ("shop", "ambient"),
    ("inventory", "ambient"),
    ("legacy", "none"),
    ("orders", "sidecar"),
];

/// node-a: client, web (shop); node-b: api (inventory), legacy (legacy, not meshed).
pub const PODS: [PodDef; 5] = [
    PodDef {
        name: "client",
        namespace: "shop",
        service_account: "client",
        node: "node-a",
        ip: Ipv4Addr::new(198, 18, 0, 11),
        port: None,
        ambient: true,
        sidecar: false,
        uid: "0b7e4a2c-0000-4000-8000-00000000c11e",
    },
    PodDef {
        name: "web",
        namespace: "shop",
        service_account: "web",
        node: "node-a",
        ip: Ipv4Addr::new(198, 18, 0, 12),
        port: Some(8080),
        ambient: true,
        sidecar: false,
        uid: "0b7e4a2c-0000-4000-8000-0000000000eb",
    },
    PodDef {
        name: "api",
        namespace: "inventory",
        service_account: "api",
        node: "node-b",
        ip: Ipv4Addr::new(198, 18, 1, 21),
        port: Some(9090),
        ambient: true,
        sidecar: false,
        uid: "0b7e4a2c-0000-4000-8000-000000000a91",
    },
    PodDef {
        name: "legacy",
        namespace: "legacy",
        service_account: "legacy",
        node: "node-b",
        ip: Ipv4Addr::new(198, 18, 1, 22),
        port: Some(7070),
        ambient: false,
        sidecar: false,
        uid: "0b7e4a2c-0000-4000-8000-0000000001e9",
    },
    PodDef {
        name: "orders",
        namespace: "orders",
        service_account: "orders",
        node: "node-a",
        ip: Ipv4Addr::new(198, 18, 0, 31),
        port: Some(8081),
        ambient: false,
        sidecar: true,
        uid: "0b7e4a2c-0000-4000-8000-0000000003d5",
    },
];

/// The host's address on the bridge: the control plane listens there, so
/// sidecars inside pods reach it.
pub const HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 254);

/// The token of a sidecar pod's proxy (a `braid.dev/proxy-token` Secret).
pub fn pod_token(name: &str) -> String {
    format!("sidecar-{name}-0123456789abcdef0123456789abcdef")
}

/// The pod named `name`.
pub fn pod_def(name: &str) -> PodDef {
    *PODS
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no pod {name} in the topology"))
}

/// The bootstrap token of `node`'s proxies (a `braid.dev/proxy-token` Secret).
pub fn node_token(node: &str) -> String {
    format!("{node}-e2e-token-0123456789abcdef0123456789abcdef")
}

/// The configuration directory's files: namespaces, pods, the Service and
/// the node tokens.
pub fn base_config() -> Vec<(&'static str, String)> {
    let namespaces = NAMESPACES
        .iter()
        .map(|(name, mode)| {
            format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    braid.dev/mode: {mode}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n");
    let pods = PODS.iter().map(pod_yaml).collect::<Vec<_>>().join("---\n");
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  clusterIP: {}\n  selector:\n    app: web\n  ports:\n  - name: http\n    port: {}\n    targetPort: 8080\n",
        WEB_VIP.ip(),
        WEB_VIP.port()
    );
    let tokens = NODES
        .iter()
        .map(|node| {
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ztunnel-{node}\n  namespace: braid-system\ntype: braid.dev/proxy-token\nstringData:\n  token: {}\n  node: {node}\n",
                node_token(node)
            )
        })
        .chain(PODS.iter().filter(|p| p.sidecar).map(|p| {
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sidecar-{name}\n  namespace: braid-system\ntype: braid.dev/proxy-token\nstringData:\n  token: {}\n  pod: {ns}/{name}\n",
                pod_token(p.name),
                name = p.name,
                ns = p.namespace,
            )
        }))
        .collect::<Vec<_>>()
        .join("---\n");
    vec![
        ("namespaces.yaml", namespaces),
        ("pods.yaml", pods),
        ("web-service.yaml", service),
        ("tokens.yaml", tokens),
    ]
}

fn pod_yaml(p: &PodDef) -> String {
    let mut ports = p.port.map_or_else(String::new, |port| {
        format!("    ports:\n    - name: tcp\n      containerPort: {port}\n")
    });
    if p.sidecar {
        ports.push_str("  - name: braid-proxy\n    image: braid/proxy:dev\n");
    }
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    app: {name}\nspec:\n  nodeName: {node}\n  serviceAccountName: {sa}\n  containers:\n  - name: app\n    image: example/{name}:1\n{ports}status:\n  phase: Running\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n  conditions:\n  - type: Ready\n    status: \"True\"\n",
        name = p.name,
        ns = p.namespace,
        node = p.node,
        sa = p.service_account,
        ip = p.ip,
    )
}

/// An AuthorizationPolicy denying every connection from `source_ns` to the
/// workloads of `ns`.
pub fn deny_from_namespace(ns: &str, name: &str, source_ns: &str) -> String {
    format!(
        "apiVersion: braid.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  action: DENY\n  rules:\n  - from:\n      namespaces: [{source_ns}]\n"
    )
}

/// An AuthorizationPolicy allowing only `principal` to `port` of the
/// workloads of `ns` (ALLOW is exclusive: everything else is refused).
pub fn allow_principal(ns: &str, name: &str, principal: &str, port: u16) -> String {
    format!(
        "apiVersion: braid.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  action: ALLOW\n  rules:\n  - from:\n      principals: [\"{principal}\"]\n    to:\n      ports: [{port}]\n"
    )
}

/// A namespace-wide PeerAuthentication.
pub fn peer_authentication(ns: &str, name: &str, mode: &str) -> String {
    format!(
        "apiVersion: braid.dev/v1alpha1\nkind: PeerAuthentication\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  mtls:\n    mode: {mode}\n"
    )
}

// === binaries ===

/// Paths of the three binaries under test.
#[derive(Debug)]
pub struct Binaries {
    pub control: PathBuf,
    pub proxy: PathBuf,
    pub cni: PathBuf,
}

/// The workspace root (`CARGO_MANIFEST_DIR` is `<root>/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// The target directory this test was built in (`CARGO_TARGET_TMPDIR` is
/// `<target>/tmp`), so the nested build shares its artifacts.
fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .map_or_else(|| repo_root().join("target"), Path::to_path_buf)
}

/// Builds `braid-control`, `braid-proxy` and `braid-cni` once per test
/// process (`cargo build --bins`, dev profile, this test's target
/// directory) and returns their paths. `BRAID_E2E_BIN_DIR=DIR` skips the
/// build and takes the binaries from `DIR`.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();
    match BINARIES.get_or_init(build_binaries) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

fn build_binaries() -> Result<Binaries, String> {
    let dir = match std::env::var_os("BRAID_E2E_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let target = target_dir();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
            eprintln!(
                "ambient e2e: building braid-control, braid-proxy and braid-cni into {}",
                target.display()
            );
            let started = Instant::now();
            let status = Command::new(&cargo)
                .args([
                    "build",
                    "-p",
                    "braid-control",
                    "-p",
                    "braid-proxy",
                    "-p",
                    "braid-cni",
                    "--bins",
                    "--target-dir",
                ])
                .arg(&target)
                .current_dir(repo_root())
                .stdin(Stdio::null())
                .status()
                .map_err(|e| format!("cannot run {}: {e}", Path::new(&cargo).display()))?;
            if !status.success() {
                return Err(format!(
                    "`cargo build -p braid-control -p braid-proxy -p braid-cni --bins` failed ({status})"
                ));
            }
            eprintln!("ambient e2e: built in {:?}", started.elapsed());
            target.join("debug")
        }
    };
    let find = |name: &str| {
        let path = dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!("binary {} not found", path.display()))
        }
    };
    let binaries = Binaries {
        control: find("braid-control")?,
        proxy: find("braid-proxy")?,
        cni: find("braid-cni")?,
    };
    // A clear message while the ztunnel composition does not exist yet.
    let help = Command::new(&binaries.proxy)
        .args(["ztunnel", "--help"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binaries.proxy.display()))?;
    if !help.status.success() {
        return Err(format!(
            "`{} ztunnel --help` failed ({}): the ztunnel subcommand is missing?\n{}",
            binaries.proxy.display(),
            help.status,
            String::from_utf8_lossy(&help.stderr)
        ));
    }
    Ok(binaries)
}

// === waiting ===

/// Polls `check` every 20 ms until it returns `Ok`, or panics after `limit`
/// with the last error. Returns the value and how long it took.
pub fn eventually<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> (T, Duration) {
    let started = Instant::now();
    loop {
        match check() {
            Ok(value) => return (value, started.elapsed()),
            Err(last) => {
                assert!(
                    started.elapsed() < limit,
                    "timed out after {limit:?} waiting for {what}; last: {last}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free loopback port (bound, read, released; the window for a clash is
/// small and the process then fails to bind loudly).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

// === processes ===

/// A child process we started; stopped by its PID when dropped.
pub struct Process {
    pub name: String,
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(String, String)>,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Process {
    /// Starts `program args...`, stdout and stderr appended to `log`.
    pub fn start(
        name: &str,
        program: &Path,
        args: Vec<OsString>,
        envs: Vec<(String, String)>,
        log: PathBuf,
    ) -> Process {
        let mut p = Process {
            name: name.to_owned(),
            program: program.to_owned(),
            args,
            envs,
            log,
            child: None,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open a process log");
        let err = out.try_clone().expect("clone the log handle");
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({}): {e}",
                    self.name,
                    self.program.display()
                )
            });
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Err` with its exit status if the process is no longer running.
    pub fn check_running(&mut self) -> Result<(), String> {
        let Some(child) = self.child.as_mut() else {
            return Err(format!("{} is stopped", self.name));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}); log {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 40)
            )),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// Panics (with the log's tail) if the process is no longer running:
    /// an exit is never transient, so waiting on would only delay the report.
    pub fn assert_running(&mut self) {
        if let Err(e) = self.check_running() {
            panic!("{e}");
        }
    }

    /// Sends `signal` (by PID), then waits up to `grace` before SIGKILL.
    fn stop_with(&mut self, signal: rustix::process::Signal, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let pid = rustix::process::Pid::from_child(&child);
            let _ = rustix::process::kill_process(pid, signal);
            let deadline = Instant::now() + grace;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            // Still alive after the grace period (or SIGKILL was asked for).
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// SIGTERM, then SIGKILL after 3 s; waits for the exit.
    pub fn stop(&mut self) {
        self.stop_with(rustix::process::Signal::TERM, Duration::from_secs(3));
    }

    /// SIGKILL (a crash) and wait for the exit.
    pub fn kill(&mut self) {
        self.stop_with(rustix::process::Signal::KILL, Duration::ZERO);
    }

    /// Starts the process again with the same program, arguments and log.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

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

// === the CNI plugin ===

/// What one plugin run returned.
#[derive(Debug)]
pub struct CniOutcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The `prevResult` the main plugin would have produced for `pod`.
pub fn prev_result(def: &PodDef, pod: &TestPod) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": pod.netns_path}],
        "ips": [{"address": format!("{}/16", def.ip), "interface": 0}],
        "dns": {},
    })
}

/// Runs the `braid-cni` plugin binary for `pod` exactly as a runtime does:
/// `CNI_*` environment only, network configuration on stdin, result on
/// stdout; killed after 45 s.
pub fn run_cni(
    plugin: &Path,
    command: &str,
    agent_socket: &Path,
    def: &PodDef,
    pod: &TestPod,
) -> CniOutcome {
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "k8s",
        "type": "braid-cni",
        "agentSocket": agent_socket,
        "prevResult": prev_result(def, pod),
    });
    let container = format!("c-{}", def.uid);
    let mut child = Command::new(plugin)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &container)
        .env("CNI_NETNS", &pod.netns_path)
        .env("CNI_IFNAME", "eth0")
        .env(
            "CNI_ARGS",
            format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={container};K8S_POD_UID={}",
                def.namespace, def.name, def.uid
            ),
        )
        .env("CNI_PATH", "/opt/cni/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the braid-cni plugin");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(conf.to_string().as_bytes())
            .expect("write the plugin's stdin");
    }
    // Drain the pipes on threads so a chatty plugin cannot block on them.
    let stdout = child.stdout.take().map(read_all);
    let stderr = child.stderr.take().map(read_all);
    let deadline = Instant::now() + Duration::from_secs(45);
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait for the plugin") {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("braid-cni {command} for {} took longer than 45 s", def.name);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let join = |h: Option<JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    CniOutcome {
        code,
        stdout: join(stdout),
        stderr: join(stderr),
    }
}

fn read_all(mut r: impl std::io::Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

// === the cluster ===

/// One node's processes and sockets.
pub struct Node {
    pub name: &'static str,
    /// The ztunnel's admin endpoint (`/metrics`, `/config_dump`, `/healthz/ready`).
    pub admin: SocketAddr,
    pub handoff_socket: PathBuf,
    pub agent_socket: PathBuf,
    pub ztunnel: Option<Process>,
    pub agent: Option<Process>,
}

/// Everything the ambient tests share. See the module docs.
pub struct Cluster {
    pub bins: &'static Binaries,
    pub root: PathBuf,
    pub config_dir: PathBuf,
    pub ca_root: PathBuf,
    pub xds: SocketAddr,
    pub admin: SocketAddr,
    pub control: Option<Process>,
    pub nodes: Vec<Node>,
    pub echo: Vec<EchoServer>,
    pub pods: BTreeMap<&'static str, TestPod>,
    /// Sidecar processes started by [`Cluster::start_sidecar`].
    pub sidecars: Vec<Process>,
    net: Option<TestNet>,
    dir: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Creates the namespaces and the configuration, starts the control
    /// plane and both nodes' ztunnel and agent, starts the echo servers and
    /// runs the CNI plugin's ADD for every pod.
    pub fn start() -> Cluster {
        let bins = binaries();
        let dir = tempfile::Builder::new()
            .prefix("braid-ambient-")
            .tempdir()
            .expect("create a temporary directory");
        let root = dir.path().to_path_buf();
        let net = TestNet::new("amb").expect("create the test network");
        let mut c = Cluster {
            bins,
            config_dir: root.join("config"),
            ca_root: root.join("ca").join("root-cert.pem"),
            xds: SocketAddr::from((HOST, free_port())),
            admin: SocketAddr::from(([127, 0, 0, 1], free_port())),
            root,
            control: None,
            nodes: Vec::new(),
            echo: Vec::new(),
            pods: BTreeMap::new(),
            sidecars: Vec::new(),
            net: None,
            dir: Some(dir),
        };
        for def in &PODS {
            let pod = net.add_pod(def.name, def.ip).expect("add a pod namespace");
            c.pods.insert(def.name, pod);
        }
        net.add_host_link(HOST)
            .expect("plug the host into the bridge");
        c.net = Some(net);

        std::fs::create_dir_all(&c.config_dir).expect("create the config directory");
        for (file, text) in base_config() {
            c.write_config(file, &text);
        }
        c.start_control_plane();
        for node in NODES {
            c.start_node(node);
        }
        for def in &PODS {
            if let Some(port) = def.port {
                let server = EchoServer::start(c.pod(def.name), port);
                c.echo.push(server);
            }
        }
        for def in &PODS {
            c.cni_add(def);
        }
        c
    }

    /// The pod named `name`.
    pub fn pod(&self, name: &str) -> &TestPod {
        self.pods
            .get(name)
            .unwrap_or_else(|| panic!("no pod {name}"))
    }

    fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    fn log(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.log"))
    }

    /// Starts `braid-control` on two loopback ports picked here; picks
    /// again if another process took one of them in the meantime.
    fn start_control_plane(&mut self) {
        let log = self.log("braid-control");
        for attempt in 1..=3 {
            if attempt > 1 {
                self.xds = SocketAddr::from((HOST, free_port()));
                self.admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
            }
            let args: Vec<OsString> = vec![
                "--config-dir".into(),
                self.config_dir.clone().into(),
                "--xds-listen".into(),
                self.xds.to_string().into(),
                "--admin-listen".into(),
                self.admin.to_string().into(),
                "--ca-dir".into(),
                self.root.join("ca").into(),
                "--debounce-ms".into(),
                "20".into(),
                "--max-debounce-ms".into(),
                "200".into(),
            ];
            let mut control = Process::start(
                "braid-control",
                &self.bins.control,
                args,
                child_env("info"),
                log.clone(),
            );
            let (admin, ca_root) = (self.admin, self.ca_root.clone());
            let mut clash = false;
            let (ready, _) = eventually("braid-control /ready", Duration::from_secs(20), || {
                if let Err(exited) = control.check_running() {
                    assert!(exited.contains("in use"), "{exited}");
                    clash = true;
                    return Ok(false);
                }
                match http_get(admin, "/ready") {
                    Ok((200, _)) if ca_root.is_file() => Ok(true),
                    Ok((status, body)) => Err(format!("/ready: {status} {body}")),
                    Err(e) => Err(format!("/ready: {e}")),
                }
            });
            if ready {
                self.control = Some(control);
                let errors = self.config_errors();
                assert!(
                    errors.trim() == "[]",
                    "the fixture's configuration has errors: {errors}"
                );
                return;
            }
            eprintln!("ambient e2e: braid-control's port was taken (clash: {clash}); retrying");
        }
        panic!(
            "braid-control could not bind its ports in 3 attempts; see {}",
            log.display()
        );
    }

    fn start_node(&mut self, node: &'static str) {
        let dir = self.root.join(node);
        std::fs::create_dir_all(&dir).expect("create the node directory");
        let token_file = dir.join("token");
        std::fs::write(&token_file, node_token(node)).expect("write the node token");
        let handoff_socket = dir.join("ztunnel.sock");
        let agent_socket = dir.join("cni.sock");
        let control_plane = format!("http://{}", self.xds);
        // Two ztunnels share this host: each gets its own loopback ports.
        let port = || format!("127.0.0.1:{}", free_port());
        let admin: SocketAddr = port().parse().expect("a loopback address");

        let ztunnel_args: Vec<OsString> = vec![
            "ztunnel".into(),
            "--admin-listen".into(),
            admin.to_string().into(),
            "--metrics-listen".into(),
            port().into(),
            "--readiness-listen".into(),
            port().into(),
            "--node".into(),
            node.into(),
            "--control-plane".into(),
            control_plane.clone().into(),
            "--ca-root".into(),
            self.ca_root.clone().into(),
            "--token-file".into(),
            token_file.clone().into(),
            "--handoff-socket".into(),
            handoff_socket.clone().into(),
        ];
        let mut ztunnel = Process::start(
            &format!("ztunnel {node}"),
            &self.bins.proxy,
            ztunnel_args,
            child_env("debug"),
            self.log(&format!("ztunnel-{node}")),
        );
        eventually(
            &format!("the {node} ztunnel's hand-off socket"),
            Duration::from_secs(20),
            || {
                ztunnel.assert_running();
                handoff_socket
                    .exists()
                    .then_some(())
                    .ok_or_else(|| format!("{} does not exist", handoff_socket.display()))
            },
        );

        let agent_args: Vec<OsString> = vec![
            "agent".into(),
            "--node".into(),
            node.into(),
            "--socket".into(),
            agent_socket.clone().into(),
            "--ztunnel-socket".into(),
            handoff_socket.clone().into(),
            "--state-dir".into(),
            dir.join("cni-state").into(),
            "--control-plane".into(),
            control_plane.into(),
            "--ca-root".into(),
            self.ca_root.clone().into(),
            "--token-file".into(),
            token_file.into(),
        ];
        let mut agent = Process::start(
            &format!("agent {node}"),
            &self.bins.cni,
            agent_args,
            child_env("debug"),
            self.log(&format!("agent-{node}")),
        );
        eventually(
            &format!("the {node} agent's plugin socket"),
            Duration::from_secs(20),
            || {
                agent.assert_running();
                agent_socket
                    .exists()
                    .then_some(())
                    .ok_or_else(|| format!("{} does not exist", agent_socket.display()))
            },
        );
        self.nodes.push(Node {
            name: node,
            admin,
            handoff_socket,
            agent_socket,
            ztunnel: Some(ztunnel),
            agent: Some(agent),
        });
    }

    /// Runs the `braid-cni` plugin binary with `command` for the pod named
    /// `name`, against its node's agent.
    pub fn cni(&self, command: &str, name: &str) -> CniOutcome {
        let def = pod_def(name);
        let socket = self
            .nodes
            .iter()
            .find(|n| n.name == def.node)
            .map(|n| n.agent_socket.clone())
            .expect("the pod's node");
        run_cni(&self.bins.cni, command, &socket, &def, self.pod(name))
    }

    /// Runs the plugin's ADD for `def` and checks that the runtime gets the
    /// previous result back.
    fn cni_add(&mut self, def: &PodDef) {
        let out = self.cni("ADD", def.name);
        assert_eq!(
            out.code, 0,
            "CNI ADD of {}/{} failed: {out:?}",
            def.namespace, def.name
        );
        let result: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!("CNI ADD of {}: stdout is not JSON ({e}): {out:?}", def.name)
        });
        assert_eq!(
            result,
            prev_result(def, self.pod(def.name)),
            "CNI ADD of {} must pass the previous result through",
            def.name
        );
    }

    /// Writes a configuration file atomically (a hidden temporary file,
    /// which the control plane ignores, renamed into place).
    pub fn write_config(&self, file: &str, text: &str) {
        let tmp = self.config_dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).expect("write a config file");
        std::fs::rename(&tmp, self.config_dir.join(file)).expect("rename a config file");
    }

    /// Deletes a configuration file.
    pub fn remove_config(&self, file: &str) {
        std::fs::remove_file(self.config_dir.join(file)).expect("remove a config file");
    }

    /// The control plane's `/debug/config-errors` body.
    pub fn config_errors(&self) -> String {
        match http_get(self.admin, "/debug/config-errors") {
            Ok((_, body)) => body,
            Err(e) => format!("(cannot read /debug/config-errors: {e})"),
        }
    }

    /// `Err` naming every process we started that is no longer running.
    pub fn check_processes(&mut self) -> Result<(), String> {
        let mut dead = Vec::new();
        let procs = self.control.iter_mut().chain(
            self.nodes
                .iter_mut()
                .flat_map(|n| n.ztunnel.iter_mut().chain(n.agent.iter_mut())),
        );
        for p in procs {
            if let Err(e) = p.check_running() {
                dead.push(e);
            }
        }
        if dead.is_empty() {
            Ok(())
        } else {
            Err(dead.join("\n"))
        }
    }

    /// Panics naming every process we started that is no longer running.
    pub fn assert_processes(&mut self) {
        if let Err(e) = self.check_processes() {
            panic!("{e}");
        }
    }

    /// Runs `braid-proxy init` and then `braid-proxy sidecar` inside the
    /// sidecar pod `name`, as its init container and sidecar container
    /// would; the sidecar reaches the control plane over the host link.
    pub fn start_sidecar(&mut self, name: &str) {
        let def = pod_def(name);
        let pod = self.pod(name).clone();
        let in_pod = |args: &[&str]| -> Vec<OsString> {
            let mut all: Vec<OsString> =
                vec!["netns".into(), "exec".into(), pod.netns_name.clone().into()];
            all.push(self.bins.proxy.clone().into());
            all.extend(args.iter().map(OsString::from));
            all
        };
        let out = std::process::Command::new("ip")
            .args(in_pod(&["init"]))
            .output()
            .expect("run braid-proxy init");
        assert!(
            out.status.success(),
            "init in {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token_file = self.root.join(format!("{name}.token"));
        std::fs::write(&token_file, pod_token(name)).expect("write the pod token");
        let args = in_pod(&[
            "sidecar",
            "--pod",
            &format!("{}/{name}", def.namespace),
            "--control-plane",
            &format!("http://{}", self.xds),
            "--ca-root",
            &self.ca_root.display().to_string(),
            "--token-file",
            &token_file.display().to_string(),
        ]);
        let sidecar = Process::start(
            &format!("sidecar {name}"),
            Path::new("ip"),
            args,
            child_env("debug"),
            self.log(&format!("sidecar-{name}")),
        );
        self.sidecars.push(sidecar);
    }

    /// The ztunnel process of `node`.
    pub fn ztunnel(&mut self, node: &str) -> &mut Process {
        self.node_mut(node)
            .ztunnel
            .as_mut()
            .expect("the node's ztunnel")
    }

    fn all_logs(&self) -> Vec<PathBuf> {
        let mut logs = vec![self.log("braid-control")];
        for node in NODES {
            logs.push(self.log(&format!("ztunnel-{node}")));
            logs.push(self.log(&format!("agent-{node}")));
        }
        logs
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let keep = std::env::var_os("BRAID_E2E_KEEP").is_some();
        if std::thread::panicking() {
            for log in self.all_logs().iter().filter(|l| l.exists()) {
                eprintln!(
                    "===== {} (last 80 lines) =====\n{}",
                    log.display(),
                    tail(log, 80)
                );
            }
        }
        // Agents and ztunnels first (reverse start order), then the control
        // plane; each by its own PID.
        self.sidecars.clear();
        for node in self.nodes.iter_mut().rev() {
            drop(node.agent.take());
            drop(node.ztunnel.take());
        }
        drop(self.control.take());
        self.echo.clear();
        self.pods.clear();
        // Deletes every namespace it created.
        drop(self.net.take());
        if let Some(dir) = self.dir.take()
            && keep
        {
            eprintln!("ambient e2e: keeping {}", dir.keep().display());
        }
    }
}

/// Environment of our children: `BRAID_LOG` (the caller's if set, else
/// `default`) and plain-text logs.
pub fn child_env(default: &str) -> Vec<(String, String)> {
    let level = std::env::var("BRAID_LOG").unwrap_or_else(|_| default.to_owned());
    vec![
        ("BRAID_LOG".to_owned(), level),
        ("NO_COLOR".to_owned(), "1".to_owned()),
    ]
}

/// A minimal HTTP/1.0 GET on loopback (no chunked body): (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or_else(String::new, |(_, b)| b.to_owned());
    Ok((status, body))
}
