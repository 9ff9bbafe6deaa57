//! nginx as the L7 reference of `mesh-http-latency`: an ordinary reverse
//! proxy (the distribution's nginx, one worker, upstream keep-alive)
//! started inside the direct path's client pod in front of the direct
//! path's server, so the same open-loop load shows what a plain L7 proxy
//! adds on the same path and what it costs in CPU per request.
//!
//! ```text
//! plain (load) → nginx on plain's 127.0.0.1 → legacy's HTTP server
//! ```
//!
//! [`Nginx`] owns the master process (started by PID, `daemon off`) and a
//! directory inside the cluster's temporary directory holding its
//! configuration, PID file and error log; dropping it stops nginx by PID
//! and deletes the directory, also when a step failed. A killed bench
//! leaves nothing either: xtask stops the orphaned master and deletes the
//! cluster directory named in its arguments.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use braid_capture::testing::TestPod;
use serde_json::{Value, json};

/// Where nginx listens, on the client pod's loopback.
pub(crate) const LISTEN_PORT: u16 = 8089;
/// Idle upstream connections each worker keeps (more than the load's 16).
pub(crate) const UPSTREAM_KEEPALIVE: u32 = 32;
/// How long nginx gets to start, and to stop after SIGTERM.
const START_LIMIT: Duration = Duration::from_secs(10);
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running nginx; stopped by PID and its directory deleted when dropped.
pub(crate) struct Nginx {
    /// The master (`ip netns exec` executes nginx in its own process).
    child: Child,
    /// The worker PIDs seen once nginx was ready.
    workers: BTreeSet<u32>,
    /// Where the load is sent.
    pub(crate) addr: SocketAddr,
    version: String,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts `binary` inside `pod`'s network namespace, proxying to
    /// `upstream`, with its files in a new directory under `parent`;
    /// returns once the master runs and its worker is up (at most 10 s).
    pub(crate) fn start(
        binary: &Path,
        pod: &TestPod,
        upstream: SocketAddr,
        parent: &Path,
    ) -> anyhow::Result<Nginx> {
        let version = version(binary)?;
        let dir = tempfile::Builder::new()
            .prefix("nginx-")
            .tempdir_in(parent)
            .with_context(|| format!("cannot create nginx's directory in {}", parent.display()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], LISTEN_PORT));
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), addr, upstream))
            .with_context(|| format!("cannot write {}", conf.display()))?;
        let error_log = dir.path().join("error.log");
        let child = Command::new("ip")
            .args(["netns", "exec", &pod.netns_name])
            .arg(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            // The log nginx writes before it read the configuration.
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {} in {}", binary.display(), pod.name))?;
        let mut nginx = Nginx {
            child,
            workers: BTreeSet::new(),
            addr,
            version,
            dir,
        };
        nginx.wait_for_worker()?;
        Ok(nginx)
    }

    /// The master's PID.
    pub(crate) fn master(&self) -> u32 {
        self.child.id()
    }

    fn error_log(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    /// Until the master runs nginx (after `ip`'s exec) and has its worker.
    fn wait_for_worker(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "nginx exited ({status}) at start; {}:\n{}",
                    self.error_log().display(),
                    tail(&self.error_log())
                );
            }
            let master = self.master();
            let comm = std::fs::read_to_string(format!("/proc/{master}/comm")).unwrap_or_default();
            let workers = children(master);
            if comm.trim() == "nginx" && !workers.is_empty() {
                self.workers = workers;
                return Ok(());
            }
            if started.elapsed() > START_LIMIT {
                bail!(
                    "nginx (pid {master}, {:?}) had no worker after {}s; {}:\n{}",
                    comm.trim(),
                    START_LIMIT.as_secs(),
                    self.error_log().display(),
                    tail(&self.error_log())
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// CPU ticks (utime + stime) of the master and its workers so far, the
    /// way the proxies' are read. Fails if a worker was replaced (it
    /// crashed: its ticks would be lost).
    pub(crate) fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let master = self.master();
        let now = children(master);
        if now != self.workers {
            bail!(
                "nginx's workers changed from {:?} to {now:?} (a worker died?); {}:\n{}",
                self.workers,
                self.error_log().display(),
                tail(&self.error_log())
            );
        }
        std::iter::once(master)
            .chain(now)
            .map(crate::load::process_cpu_ticks)
            .sum()
    }

    /// What the report says about this nginx.
    pub(crate) fn describe(&self) -> Value {
        json!({
            "version": self.version,
            "listen": self.addr.to_string(),
            "worker_processes": self.workers.len(),
            "upstream_keepalive": UPSTREAM_KEEPALIVE,
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        use rustix::process::{Pid, Signal, kill_process};
        let pid = |raw: u32| i32::try_from(raw).ok().and_then(Pid::from_raw);
        // The workers as they are now, before the master stops them.
        let workers = children(self.master());
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Some(master) = pid(self.master()) {
                // Fast shutdown: the load's connections are closed already.
                let _ = kill_process(master, Signal::TERM);
            }
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        // A worker outliving its master (only if the master was killed):
        // stop it by PID, unless the PID went to another program since.
        for worker in workers {
            let comm = std::fs::read_to_string(format!("/proc/{worker}/comm")).unwrap_or_default();
            if comm.trim() == "nginx"
                && let Some(worker) = pid(worker)
            {
                let _ = kill_process(worker, Signal::KILL);
            }
        }
        // The directory goes with `self.dir`.
    }
}

/// nginx's configuration: one worker in the foreground, no access log,
/// HTTP/1.1 with kept-alive connections to `upstream`, every file in `dir`.
pub(crate) fn config(dir: &Path, listen: SocketAddr, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "\
# Written by mesh_bench: nginx as a plain L7 reverse proxy.
daemon off;
master_process on;
worker_processes 1;
# As root, so the workers need no access to this root-owned directory.
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    upstream bench_server {{
        server {upstream};
        keepalive {UPSTREAM_KEEPALIVE};
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://bench_server;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
}}
"
    )
}

/// "1.22.1", from `nginx -v` (which prints `nginx version: nginx/1.22.1`
/// on stderr).
fn version(binary: &Path) -> anyhow::Result<String> {
    let out = Command::new(binary)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} -v: is nginx installed?", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stderr);
    parse_version(&text).with_context(|| format!("{} -v printed {text:?}", binary.display()))
}

fn parse_version(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("nginx/")?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// The PIDs whose parent is `pid`, from `/proc`.
fn children(pid: u32) -> BTreeSet<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            (parent_pid(&stat)? == pid).then_some(child)
        })
        .collect()
}

/// The parent PID in the text of `/proc/<pid>/stat`.
fn parent_pid(stat: &str) -> Option<u32> {
    // After the command name, which may hold ')': state, then ppid.
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The last lines of nginx's error log.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> (SocketAddr, SocketAddr) {
        (
            SocketAddr::from(([127, 0, 0, 1], LISTEN_PORT)),
            SocketAddr::from(([198, 18, 1, 40], 8088)),
        )
    }

    #[test]
    fn the_config_proxies_http_1_1_over_kept_alive_upstream_connections() {
        let (listen, upstream) = addrs();
        let text = config(Path::new("/tmp/x"), listen, upstream);
        for line in [
            "daemon off;",
            "master_process on;",
            "worker_processes 1;",
            "pid /tmp/x/nginx.pid;",
            "error_log /tmp/x/error.log warn;",
            "access_log off;",
            "server 198.18.1.40:8088;",
            "keepalive 32;",
            "listen 127.0.0.1:8089;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
        ] {
            assert!(
                text.lines().any(|l| l.trim() == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    /// `nginx -t` accepts the configuration, when nginx is installed.
    #[test]
    fn nginx_accepts_the_config() {
        let binary = Path::new("/usr/sbin/nginx");
        if !binary.exists() || !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root and /usr/sbin/nginx");
            return;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (listen, upstream) = addrs();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), listen, upstream)).expect("write the config");
        let out = Command::new(binary)
            .arg("-t")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .output()
            .expect("run nginx -t");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let version = version(binary).expect("nginx -v");
        assert!(version.starts_with(char::is_numeric), "{version}");
    }

    #[test]
    fn versions_and_parents_are_parsed() {
        assert_eq!(
            parse_version("nginx version: nginx/1.22.1\n").as_deref(),
            Some("1.22.1")
        );
        assert_eq!(parse_version("command not found"), None);
        assert_eq!(parent_pid("77 (nginx: (x)) S 4242 77 77 0 -1"), Some(4242));
        assert_eq!(parent_pid("garbage"), None);
    }
}
