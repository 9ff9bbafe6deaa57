//! Building the binaries, running and stopping processes, waiting with deadlines.

// Two test targets include this with different needs: what one leaves
// unused the other uses.
#![allow(unreachable_pub, dead_code, unused_imports)]

use std::{
    ffi::OsString,
    fs::OpenOptions,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use super::*;

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
/// `<target>/tmp`), so the nested build shares its artifacts. Cargo sets
/// it for tests only: an example including this module (the benchmark
/// driver, which takes its binaries from `BRAID_E2E_BIN_DIR`) falls back
/// to `<root>/target`.
fn target_dir() -> PathBuf {
    option_env!("CARGO_TARGET_TMPDIR")
        .and_then(|tmp| Path::new(tmp).parent())
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

/// Environment of our children: `BRAID_LOG` (the caller's if set, else
/// `default`). Their logs go to files, so they are plain text already.
pub fn child_env(default: &str) -> Vec<(String, String)> {
    let level = std::env::var("BRAID_LOG").unwrap_or_else(|_| default.to_owned());
    vec![("BRAID_LOG".to_owned(), level)]
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
