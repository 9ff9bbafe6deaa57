//! The demo's child processes: started with their output in a log file,
//! checked while they run, stopped by their own PID (SIGTERM, then SIGKILL).

use std::{
    ffi::OsString,
    fs::OpenOptions,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

/// How long a process may take to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A child process the demo started.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) name: String,
    pub(crate) log: PathBuf,
    child: Child,
}

// === impl Proc ===

impl Proc {
    /// Starts `program args...` with stdout and stderr appended to `log`.
    pub(crate) fn spawn(
        name: &str,
        program: &Path,
        args: &[OsString],
        log: PathBuf,
    ) -> anyhow::Result<Proc> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open the log {}", log.display()))?;
        let err = out.try_clone().context("cannot duplicate a log handle")?;
        let child = Command::new(program)
            .args(args)
            // Info without the per-connection access log: the demo reads
            // the proxies' metrics, and at 60 connections a second the
            // access log would fill /run (tmpfs) during a long `--keep`.
            .env(
                "BRAID_LOG",
                std::env::var("BRAID_LOG").unwrap_or_else(|_| "info,braid::access=off".into()),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", program.display()))?;
        Ok(Proc {
            name: name.to_owned(),
            log,
            child,
        })
    }

    /// The process's PID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Err` with the exit status and the log's tail once it has exited.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => anyhow::bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 20)
            ),
            Err(e) => anyhow::bail!("cannot check on {}: {e}", self.name),
        }
    }

    /// SIGTERM, then SIGKILL after [`STOP_GRACE`]; waits for the exit
    /// without blocking the runtime (traffic keeps flowing meanwhile).
    pub(crate) async fn stop(mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = rustix::process::Pid::from_child(&self.child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Still running after the grace: SIGKILL (a no-op if it just exited).
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of a log file.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Stops a process of an earlier run by PID, only if it still runs the
/// program recorded for it (a PID may have been reused since).
pub(crate) fn stop_stale(pid: u32, exe: &Path) -> bool {
    let running_exe = match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(path) => path,
        Err(_) => return false,
    };
    // A binary rebuilt since shows as "<path> (deleted)".
    let matches = running_exe == exe
        || running_exe
            .to_string_lossy()
            .starts_with(&*exe.to_string_lossy());
    if !matches {
        return false;
    }
    let Some(raw) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    let _ = rustix::process::kill_process(raw, rustix::process::Signal::TERM);
    let deadline = Instant::now() + STOP_GRACE;
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = rustix::process::kill_process(raw, rustix::process::Signal::KILL);
    true
}
