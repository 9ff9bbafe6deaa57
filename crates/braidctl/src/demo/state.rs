//! Everything the demo creates, recorded so that it can always be removed.
//!
//! [`Owned`] holds the demo's processes, network namespaces, host links and
//! working directory, and mirrors them in `/run/braid-demo/state.json`
//! *before* creating each one. A later start reads that file and removes
//! what a crashed run left behind: processes by PID (only if the PID still
//! runs the recorded program), namespaces and links by name, plus any
//! leftover `braid-demo-` namespace or link (the prefix is the demo's own).

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use super::{net, process};

/// Where the state file and the working directory live (tmpfs: a reboot
/// clears them along with the namespaces).
const STATE_DIR: &str = "/run/braid-demo";

/// The state file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// PID of the braidctl running the demo.
    owner: u32,
    processes: Vec<Recorded>,
    netns: Vec<String>,
    links: Vec<String>,
}

/// A process in the state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Recorded {
    pid: u32,
    name: String,
    /// The program it runs (what `/proc/PID/exe` must show to be ours).
    exe: PathBuf,
}

/// The demo's resources; see the module docs.
#[derive(Debug)]
pub(crate) struct Owned {
    state: State,
    procs: Vec<process::Proc>,
    dir: PathBuf,
}

// === impl Owned ===

impl Owned {
    /// Removes what an earlier run left behind, then starts an empty record.
    /// Fails if another demo is running.
    pub(crate) fn take_over() -> anyhow::Result<Owned> {
        let base = Path::new(STATE_DIR);
        std::fs::create_dir_all(base)
            .with_context(|| format!("cannot create {}", base.display()))?;
        let file = base.join("state.json");
        let previous: State = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(_) => State::default(),
        };
        if previous.owner != 0
            && previous.owner != std::process::id()
            && is_braidctl(previous.owner)
        {
            bail!(
                "another braidctl demo (pid {}) is running; stop it with Ctrl-C in its terminal or `kill {}`",
                previous.owner,
                previous.owner
            );
        }
        let stale = previous.processes.len() + previous.netns.len();
        if stale > 0 {
            println!(
                "demo: removing what an earlier run left behind ({stale} processes and namespaces)"
            );
        }
        for p in previous.processes.iter().rev() {
            process::stop_stale(p.pid, &p.exe);
        }
        // By name from the record, then anything else with our prefix.
        let mut netns = previous.netns;
        netns.extend(net::list_demo_netns());
        for ns in netns.iter().rev() {
            net::delete_netns_blocking(ns);
        }
        let mut links = previous.links;
        links.extend(net::list_demo_links());
        for link in &links {
            net::delete_link_blocking(link);
        }
        let dir = base.join("work");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| {
                format!("cannot remove the old working directory {}", dir.display())
            })?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let owned = Owned {
            state: State {
                owner: std::process::id(),
                ..State::default()
            },
            procs: Vec::new(),
            dir,
        };
        owned.save()?;
        Ok(owned)
    }

    /// The working directory (configuration, CA, sockets, logs).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn save(&self) -> anyhow::Result<()> {
        let file = Path::new(STATE_DIR).join("state.json");
        let tmp = Path::new(STATE_DIR).join(".state.json.tmp");
        let json =
            serde_json::to_vec_pretty(&self.state).context("cannot encode the demo state")?;
        std::fs::write(&tmp, json).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &file).with_context(|| format!("cannot write {}", file.display()))
    }

    /// Starts a process named `name` (unique), logging to `<dir>/<log>.log`.
    /// `exe` is the program the process ends up running (for `ip netns
    /// exec`, the program it execs).
    pub(crate) fn spawn(
        &mut self,
        name: &str,
        program: &Path,
        exe: &Path,
        args: &[OsString],
    ) -> anyhow::Result<u32> {
        let log = self
            .dir
            .join(format!("{}.log", name.replace([' ', '/'], "-")));
        let proc = process::Proc::spawn(name, program, args, log)?;
        let pid = proc.pid();
        self.state.processes.push(Recorded {
            pid,
            name: name.to_owned(),
            exe: exe.to_path_buf(),
        });
        self.procs.push(proc);
        self.save()?;
        Ok(pid)
    }

    /// `Err` naming the first process that exited, with its log's tail.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        self.procs
            .iter_mut()
            .try_for_each(process::Proc::check_running)
    }

    /// `Err` if the process named `name` has exited.
    pub(crate) fn check(&mut self, name: &str) -> anyhow::Result<()> {
        match self.procs.iter_mut().find(|p| p.name == name) {
            Some(p) => p.check_running(),
            None => bail!("no process {name}"),
        }
    }

    /// Stops the process named `name`, if running.
    pub(crate) async fn stop(&mut self, name: &str) -> anyhow::Result<()> {
        if let Some(i) = self.procs.iter().position(|p| p.name == name) {
            self.procs.remove(i).stop().await;
            self.state.processes.retain(|p| p.name != name);
            self.save()?;
        }
        Ok(())
    }

    /// Records a namespace about to be created.
    pub(crate) fn record_netns(&mut self, name: &str) -> anyhow::Result<()> {
        self.state.netns.push(name.to_owned());
        self.save()
    }

    /// Deletes a namespace created by the demo.
    pub(crate) async fn delete_netns(&mut self, name: &str) -> anyhow::Result<()> {
        net::delete_netns(name).await?;
        self.state.netns.retain(|n| n != name);
        self.save()
    }

    /// Records a host link about to be created.
    pub(crate) fn record_link(&mut self, name: &str) -> anyhow::Result<()> {
        self.state.links.push(name.to_owned());
        self.save()
    }

    /// Removes everything: processes (newest first), namespaces, links, the
    /// working directory and the state file. Goes on after a failure and
    /// reports the first one.
    pub(crate) async fn clean_up(&mut self) -> anyhow::Result<()> {
        while let Some(proc) = self.procs.pop() {
            proc.stop().await;
        }
        self.state.processes.clear();
        let mut first_error = None;
        for ns in std::mem::take(&mut self.state.netns).iter().rev() {
            if let Err(e) = net::delete_netns(ns).await {
                first_error.get_or_insert(e);
            }
        }
        for link in std::mem::take(&mut self.state.links) {
            net::delete_link_blocking(&link);
        }
        if std::env::var_os("BRAID_DEMO_KEEP_DIR").is_some() {
            println!("demo: keeping {} (BRAID_DEMO_KEEP_DIR)", self.dir.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            first_error.get_or_insert(anyhow::anyhow!("cannot remove {}: {e}", self.dir.display()));
        }
        let _ = std::fs::remove_file(Path::new(STATE_DIR).join("state.json"));
        // Only if empty: a kept working directory stays.
        let _ = std::fs::remove_dir(STATE_DIR);
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Whether `pid` runs a braidctl (a demo's owner).
fn is_braidctl(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|n| n.starts_with("braidctl"))
}
