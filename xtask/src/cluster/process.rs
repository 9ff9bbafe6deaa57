//! Starting the servers as background processes and stopping exactly those
//! again, by PID and start time (never by name).

use std::{
    fs::File,
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use rustix::process::{Pid, Signal, kill_process};

use super::state::Proc;

/// How long `stop` waits after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// The processes `up` has started so far. Unless [`Started::keep`] is
/// called they are stopped (SIGTERM, then SIGKILL) and reaped on drop, so a
/// failing `up` leaves nothing running.
#[derive(Default)]
pub(super) struct Started {
    children: Vec<(Proc, Child)>,
    keep: bool,
}

impl Started {
    /// Starts `program args…` in its own process group (so a Ctrl-C in the
    /// terminal does not reach it), stdin closed, output to `log`.
    pub(super) fn spawn(
        &mut self,
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> anyhow::Result<Proc> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone().context("cannot share the log file")?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let pid = i32::try_from(child.id()).context("PID out of range")?;
        let proc = Proc {
            name: name.into(),
            pid,
            start_time: start_time(pid).unwrap_or(0),
            log: log.to_path_buf(),
        };
        self.children.push((proc.clone(), child));
        Ok(proc)
    }

    /// An error naming the first started process that has exited, with the
    /// end of its log.
    pub(super) fn check_running(&mut self) -> anyhow::Result<()> {
        for (proc, child) in &mut self.children {
            if let Some(status) = child.try_wait().context("cannot poll a child")? {
                bail!(
                    "{} exited ({status}); end of {}:\n{}",
                    proc.name,
                    proc.log.display(),
                    log_tail(&proc.log, 25)
                );
            }
        }
        Ok(())
    }

    /// Where to look when waiting timed out.
    pub(super) fn log_hint(&self) -> String {
        self.children
            .last()
            .map(|(proc, _)| {
                format!(
                    "; end of {}:\n{}",
                    proc.log.display(),
                    log_tail(&proc.log, 25)
                )
            })
            .unwrap_or_default()
    }

    /// Leaves the processes running when this is dropped (`up` succeeded).
    pub(super) fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if self.keep || self.children.is_empty() {
            return;
        }
        eprintln!("stopping the processes started so far");
        let procs: Vec<Proc> = self.children.iter().map(|(p, _)| p.clone()).collect();
        stop(&procs);
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last `lines` lines of a log file.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`, and the state letter.
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses `/proc/<pid>/stat`: the command name (field 2) may hold spaces
/// and parentheses, so fields are counted after its last `)`.
fn parse_stat(text: &str) -> Option<(char, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // fields[0] is field 3 (state), so field 22 is fields[19].
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// True while the recorded process (same PID, same start time) exists and
/// is not a zombie.
pub(super) fn alive(proc: &Proc) -> bool {
    matches!(stat(proc.pid), Some((state, start)) if state != 'Z' && start == proc.start_time)
}

/// Stops the recorded processes one at a time, last started first (the
/// controller manager, then the API server while etcd still answers, then
/// etcd): SIGTERM to each that is alive, SIGKILL if it is still alive after
/// [`TERM_GRACE`]. Returns what happened to each, in the order given.
pub(super) fn stop(procs: &[Proc]) -> Vec<&'static str> {
    let mut how = vec!["not running"; procs.len()];
    for (i, proc) in procs.iter().enumerate().rev() {
        if !alive(proc) {
            continue;
        }
        signal(proc, Signal::TERM);
        how[i] = "stopped (SIGTERM)";
        if !wait_gone(proc, TERM_GRACE) {
            signal(proc, Signal::KILL);
            how[i] = "killed (SIGKILL after 10s)";
            wait_gone(proc, Duration::from_secs(5));
        }
    }
    how
}

/// Waits up to `timeout` for `proc` to be gone; true when it is.
fn wait_gone(proc: &Proc, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(proc) {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(100));
    }
    true
}

fn signal(proc: &Proc, sig: Signal) {
    if let Some(pid) = Pid::from_raw(proc.pid) {
        let _ = kill_process(pid, sig);
    }
}

/// True when etcd answers `GET /health` with `"health":"true"`.
pub(super) fn etcd_healthy(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.contains("\"health\":\"true\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "4242 (kube (api) server) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    5 6 0 0 20 0 12 0 987654 123456 789 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('S', 987_654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let pid = i32::try_from(std::process::id()).expect("pid");
        let start = start_time(pid).expect("own start time");
        let me = Proc {
            name: "me".into(),
            pid,
            start_time: start,
            log: "/dev/null".into(),
        };
        assert!(alive(&me));
        let other = Proc {
            start_time: start + 1,
            ..me
        };
        assert!(!alive(&other));
    }

    #[test]
    fn stop_terminates_a_started_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut started = Started::default();
        let proc = started
            .spawn(
                "sleep",
                Path::new("sleep"),
                &["30".into()],
                &dir.path().join("sleep.log"),
            )
            .expect("spawn sleep");
        assert!(alive(&proc));
        started.check_running().expect("running");
        // Reaping happens in Started's drop; until then it is a zombie,
        // which counts as stopped.
        assert_eq!(stop(std::slice::from_ref(&proc)), ["stopped (SIGTERM)"]);
        assert!(!alive(&proc));
        drop(started);
    }
}
