//! `cargo xtask cluster up|down|env|status`: a real Kubernetes control plane
//! for test tier 4 (DESIGN.md §7), started on loopback the way
//! controller-runtime's envtest does.
//!
//! * The programs (`etcd`, `kube-apiserver`, `kube-controller-manager`,
//!   `kubectl`) are built from their Go modules, pinned in `xtask/cluster/`,
//!   once, into `<kube cache>/<version>/bin` ([`build`]). The kube cache is
//!   `$BRAID_KUBE_CACHE`, else `/var/cache/braid/kube`.
//! * `up` writes a CA, serving and admin certificates and a service-account
//!   key ([`pki`]), starts the three servers as background processes on free
//!   loopback ports ([`flags`], [`process`]) and waits until the API server is
//!   ready and the controller manager has acted. Everything lives in the run
//!   directory (`--dir`, default `<kube cache>/run`): `kubeconfig`, `pki/`,
//!   `etcd/`, `logs/` and `cluster.json` ([`state`]) with the PIDs to stop.
//! * `down` stops exactly the recorded processes and removes the directory;
//!   `env` prints the shell lines that point `kubectl` at the cluster;
//!   `status` says whether it is up (exit 1 when not).
//!
//! There is no kubelet: a test acts as one (sets `nodeName`, pod IPs and
//! readiness) and drives everything with `kubectl`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

mod build;
mod flags;
mod pki;
mod process;
mod state;

use flags::{Layout, Ports};
use process::Started;
use state::{ClusterState, Proc};

/// The pinned Kubernetes release (`k8s.io/kubernetes`; the staging modules
/// are replaced with the matching `v0.<minor>.<patch>`). Keep in step with
/// `xtask/cluster/go.mod` and the `k8s-openapi` feature the crates use.
pub(crate) const KUBERNETES_VERSION: &str = "v1.34.4";
/// The pinned etcd (`go.etcd.io/etcd/server/v3`): the one that Kubernetes
/// release itself requires, so the two share one dependency graph.
pub(crate) const ETCD_VERSION: &str = "v3.6.4";

/// How long `up` waits for the API server's `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Arguments of `cargo xtask cluster`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Action,
}

/// What to do with the cluster.
#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Build the pinned programs (once) and start etcd, kube-apiserver and
    /// kube-controller-manager on loopback.
    Up(DirArg),
    /// Stop the processes `up` started and remove the run directory.
    Down(DirArg),
    /// Print `export KUBECONFIG=…` and `export PATH=…` for `eval`.
    Env(DirArg),
    /// Say whether the cluster is up (exit 1 when it is not).
    Status(DirArg),
}

/// The run directory option shared by every action.
#[derive(Debug, clap::Args)]
struct DirArg {
    /// Run directory: kubeconfig, pki/, etcd/, logs/ and cluster.json
    /// [default: $BRAID_KUBE_CACHE/run, else /var/cache/braid/kube/run].
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Runs one action.
pub(crate) fn run(args: &Args, root: &Path) -> anyhow::Result<()> {
    let cache = kube_cache();
    let (Action::Up(dir) | Action::Down(dir) | Action::Env(dir) | Action::Status(dir)) =
        &args.action;
    let dir = match &dir.dir {
        Some(dir) => std::path::absolute(dir).context("cannot resolve --dir")?,
        None => cache.join("run"),
    };
    match &args.action {
        Action::Up(_) => up(root, &cache, &dir).map(drop),
        Action::Down(_) => down(&dir),
        Action::Env(_) => env(&dir),
        Action::Status(_) => status(&dir),
    }
}

/// `$BRAID_KUBE_CACHE`, else `/var/cache/braid/kube`.
fn kube_cache() -> PathBuf {
    std::env::var_os("BRAID_KUBE_CACHE")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/var/cache/braid/kube"), PathBuf::from)
}

/// Starts a cluster in `dir` for `cargo xtask test`; stop it with [`stop`].
pub(crate) fn start_for_tests(root: &Path, dir: &Path) -> anyhow::Result<TestCluster> {
    let state = up(root, &kube_cache(), dir)?;
    Ok(TestCluster {
        kubeconfig: state.kubeconfig.clone(),
        kubectl: state.bin_dir.join("kubectl"),
    })
}

/// Stops the cluster in `dir` (see [`start_for_tests`]).
pub(crate) fn stop(dir: &Path) -> anyhow::Result<()> {
    down(dir)
}

/// What the tests need to reach a cluster: exported to them as
/// `BRAID_TEST_KUBECONFIG` and `BRAID_TEST_KUBECTL`.
#[derive(Debug)]
pub(crate) struct TestCluster {
    /// The admin kubeconfig.
    pub(crate) kubeconfig: PathBuf,
    /// The pinned kubectl.
    pub(crate) kubectl: PathBuf,
}

fn up(root: &Path, cache: &Path, dir: &Path) -> anyhow::Result<ClusterState> {
    let started_at = Instant::now();
    prepare_run_dir(dir)?;
    let bin = build::ensure_built(&root.join("xtask").join("cluster"), cache)?;

    let layout = Layout::new(dir);
    std::fs::create_dir_all(&layout.logs)
        .with_context(|| format!("cannot create {}", layout.logs.display()))?;
    let pki = pki::generate(&layout)?;
    let ports = Ports::pick()?;
    let server = format!("https://127.0.0.1:{}", ports.apiserver);
    std::fs::write(&layout.kubeconfig, pki::kubeconfig(&server, &pki)?)
        .with_context(|| format!("cannot write {}", layout.kubeconfig.display()))?;

    let mut state = ClusterState {
        kubernetes_version: KUBERNETES_VERSION.into(),
        etcd_version: ETCD_VERSION.into(),
        dir: dir.to_path_buf(),
        bin_dir: bin.clone(),
        kubeconfig: layout.kubeconfig.clone(),
        server: server.clone(),
        ports,
        processes: Vec::new(),
    };
    // From here on every process is recorded in cluster.json as soon as it
    // exists (so `down` can stop it even if this command is interrupted), and
    // stopped by PID if `up` fails.
    let mut started = Started::default();
    let start = |started: &mut Started,
                 state: &mut ClusterState,
                 name: &str,
                 args: Vec<String>|
     -> anyhow::Result<()> {
        let log = layout.logs.join(format!("{name}.log"));
        let proc: Proc = started.spawn(name, &bin.join(name), &args, &log)?;
        state.processes.push(proc);
        state.save(&layout.state)
    };

    eprintln!("==> starting etcd on 127.0.0.1:{}", ports.etcd_client);
    start(
        &mut started,
        &mut state,
        "etcd",
        flags::etcd(&layout, &ports),
    )?;
    wait_for(
        "etcd /health",
        Duration::from_secs(30),
        &mut started,
        || process::etcd_healthy(ports.etcd_client),
    )?;

    eprintln!("==> starting kube-apiserver on {server}");
    start(
        &mut started,
        &mut state,
        "kube-apiserver",
        flags::apiserver(&layout, &ports),
    )?;
    let kubectl = Kubectl::new(&bin, &layout.kubeconfig);
    wait_for(
        "kube-apiserver /readyz",
        READY_TIMEOUT,
        &mut started,
        || kubectl.quiet(&["get", "--raw=/readyz"]),
    )?;

    eprintln!("==> starting kube-controller-manager");
    start(
        &mut started,
        &mut state,
        "kube-controller-manager",
        flags::controller_manager(&layout, &ports),
    )?;
    // The service-account controller creating `default/default` shows the
    // controller manager is connected and running its controllers.
    wait_for(
        "kube-controller-manager (serviceaccount default/default)",
        Duration::from_secs(60),
        &mut started,
        || kubectl.quiet(&["get", "serviceaccount", "default", "--namespace=default"]),
    )?;
    if !kubectl.quiet(&["get", "namespace", "default"]) {
        bail!("`kubectl get namespace default` failed");
    }
    started.keep();

    eprintln!(
        "\ncluster up in {:.1}s: {server}\n  kubeconfig {}\n  logs       {}\n\n  eval \"$(cargo xtask cluster env{})\"\n  cargo xtask cluster down{}",
        started_at.elapsed().as_secs_f64(),
        layout.kubeconfig.display(),
        layout.logs.display(),
        dir_flag(dir),
        dir_flag(dir),
    );
    Ok(state)
}

/// ` --dir DIR` when DIR is not the default, for the printed hints.
fn dir_flag(dir: &Path) -> String {
    if dir == kube_cache().join("run") {
        String::new()
    } else {
        format!(" --dir {}", shell_quote(&dir.to_string_lossy()))
    }
}

/// Makes sure `dir` is free for a new cluster: a leftover run directory
/// whose processes are all gone is removed; a live one, or a directory that
/// is not ours (no cluster.json) and not empty, is an error.
fn prepare_run_dir(dir: &Path) -> anyhow::Result<()> {
    let layout = Layout::new(dir);
    if layout.state.exists() {
        let state = ClusterState::load(&layout.state)?;
        if state.processes.iter().any(process::alive) {
            bail!(
                "a cluster is already up at {} (see `cargo xtask cluster status`; stop it with `cargo xtask cluster down`)",
                dir.display()
            );
        }
        eprintln!("removing the stale run directory {}", dir.display());
        return std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove {}", dir.display()));
    }
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "{} exists and is not a cluster run directory (no cluster.json): remove it or pass another --dir",
                dir.display()
            );
        }
    }
    Ok(())
}

/// Polls `ready` every 500 ms until it holds, a started process exits, or
/// `timeout` passes.
fn wait_for(
    what: &str,
    timeout: Duration,
    started: &mut Started,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        started.check_running()?;
        if Instant::now() >= deadline {
            bail!(
                "timed out after {}s waiting for {what}{}",
                timeout.as_secs(),
                started.log_hint()
            );
        }
        sleep(Duration::from_millis(500));
    }
}

fn down(dir: &Path) -> anyhow::Result<()> {
    let layout = Layout::new(dir);
    if !layout.state.exists() {
        eprintln!("no cluster at {} (nothing to stop)", dir.display());
        return Ok(());
    }
    let state = ClusterState::load(&layout.state)?;
    let stopped = process::stop(&state.processes);
    for (proc, how) in state.processes.iter().zip(stopped) {
        eprintln!("{:<24} pid {:<8} {how}", proc.name, proc.pid);
    }
    if let Some(proc) = state.processes.iter().find(|p| process::alive(p)) {
        bail!(
            "{} (pid {}) is still running; {} kept",
            proc.name,
            proc.pid,
            dir.display()
        );
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    eprintln!("removed {}", dir.display());
    Ok(())
}

fn env(dir: &Path) -> anyhow::Result<()> {
    let state = load_running(dir)?;
    print!("{}", env_lines(&state));
    Ok(())
}

/// The shell lines `cluster env` prints: kubectl's, and the test suite's
/// (`tests/tests/kube/support.rs`).
fn env_lines(state: &ClusterState) -> String {
    let kubeconfig = shell_quote(&state.kubeconfig.to_string_lossy());
    format!(
        "export KUBECONFIG={kubeconfig}\nexport PATH={}:\"$PATH\"\nexport BRAID_TEST_KUBECONFIG={kubeconfig}\nexport BRAID_TEST_KUBECTL={}\n",
        shell_quote(&state.bin_dir.to_string_lossy()),
        shell_quote(&state.bin_dir.join("kubectl").to_string_lossy()),
    )
}

fn status(dir: &Path) -> anyhow::Result<()> {
    let state = load_running(dir)?;
    for proc in &state.processes {
        let running = if process::alive(proc) {
            "running"
        } else {
            "not running"
        };
        println!("{:<24} pid {:<8} {running}", proc.name, proc.pid);
    }
    let kubectl = Kubectl::new(&state.bin_dir, &state.kubeconfig);
    let all_running = state.processes.iter().all(process::alive);
    if all_running && kubectl.quiet(&["get", "--raw=/readyz"]) {
        println!(
            "up: {} (kubernetes {}, etcd {}), kubeconfig {}",
            state.server,
            state.kubernetes_version,
            state.etcd_version,
            state.kubeconfig.display()
        );
        Ok(())
    } else {
        bail!(
            "the cluster at {} is not healthy (logs in {}); `cargo xtask cluster down{}` cleans up",
            dir.display(),
            Layout::new(dir).logs.display(),
            dir_flag(dir)
        )
    }
}

/// The state of the cluster at `dir`, or an error saying there is none.
fn load_running(dir: &Path) -> anyhow::Result<ClusterState> {
    let layout = Layout::new(dir);
    if !layout.state.exists() {
        bail!(
            "no cluster at {}: start one with `cargo xtask cluster up{}`",
            dir.display(),
            dir_flag(dir)
        );
    }
    ClusterState::load(&layout.state)
}

/// Single-quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The pinned kubectl with the cluster's admin kubeconfig.
struct Kubectl {
    program: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(bin: &Path, kubeconfig: &Path) -> Self {
        Self {
            program: bin.join("kubectl"),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    /// Runs kubectl with its output discarded; true when it succeeded.
    fn quiet(&self, args: &[&str]) -> bool {
        Command::new(&self.program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=5s")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn env_points_at_the_pinned_kubectl() {
        let state = state::tests::sample();
        assert_eq!(
            env_lines(&state),
            "export KUBECONFIG='/run/k/kubeconfig'\nexport PATH='/cache/v1.34.4/bin':\"$PATH\"\n\
             export BRAID_TEST_KUBECONFIG='/run/k/kubeconfig'\nexport BRAID_TEST_KUBECTL='/cache/v1.34.4/bin/kubectl'\n"
        );
    }

    #[test]
    fn a_foreign_non_empty_dir_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("precious"), "x").expect("write");
        let err = prepare_run_dir(dir.path()).expect_err("must refuse");
        assert!(format!("{err:#}").contains("not a cluster run directory"));
        assert!(dir.path().join("precious").exists());
    }

    #[test]
    fn a_stale_run_dir_is_cleared() {
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("run");
        std::fs::create_dir(&dir).expect("mkdir");
        let mut state = state::tests::sample();
        // A PID with a start time that cannot match: treated as gone.
        state.processes[0].start_time = u64::MAX;
        state.processes[0].pid = i32::try_from(std::process::id()).expect("pid");
        state.save(&Layout::new(&dir).state).expect("save");
        prepare_run_dir(&dir).expect("stale dir is cleared");
        assert!(!dir.exists());
    }
}
