//! `cargo xtask test`: the whole test suite, exactly as CI runs it
//! (`.ci/run` calls this). Installs what it needs, then runs formatting,
//! lints, generated-file drift checks and every test, with a real
//! Kubernetes API server (`cargo xtask cluster`) up for the tier-4 tests.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Arguments of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Skip `cargo fmt --check` and clippy (for a quick local loop).
    #[arg(long)]
    pub(crate) no_lint: bool,
}

/// Runs every step, stopping at the first failure.
pub(crate) fn run(args: &Args, root: &Path) -> anyhow::Result<()> {
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    let mut step =
        |name: &'static str, f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<()> {
            eprintln!("==> {name}");
            let start = Instant::now();
            f().with_context(|| format!("step failed: {name}"))?;
            timings.push((name, start.elapsed()));
            Ok(())
        };
    step("tools", &mut || {
        ensure_go()?;
        ensure_network_tools()
    })?;
    step("target dir budget", &mut || {
        let target = crate::disk::target_dir(root);
        for removed in crate::disk::trim(&target, crate::disk::TARGET_BUDGET)? {
            eprintln!("removed {removed}");
        }
        Ok(())
    })?;
    if !args.no_lint {
        step("cargo fmt --check", &mut || {
            cargo(root, &["fmt", "--all", "--", "--check"])
        })?;
        step("cargo clippy", &mut || {
            cargo(
                root,
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--all-features",
                    "--",
                    "-D",
                    "warnings",
                ],
            )
        })?;
    }
    step("codegen --check", &mut || {
        crate::codegen::run(&crate::codegen::Args { check: true }, root)
    })?;
    step("mdbook build", &mut || crate::book::build(root))?;
    // One real API server for the whole run (test tier 4); stopped by PID
    // whatever the tests do.
    let kube_dir = std::env::temp_dir().join(format!("braid-test-kube-{}", std::process::id()));
    let mut kube = None;
    step("kube cluster up", &mut || {
        kube = Some(crate::cluster::start_for_tests(root, &kube_dir)?);
        Ok(())
    })?;
    let _stop = StopCluster(&kube_dir);
    let kube_env: Vec<(&str, std::ffi::OsString)> = kube
        .iter()
        .flat_map(|k| {
            [
                (
                    "BRAID_TEST_KUBECONFIG",
                    k.kubeconfig.clone().into_os_string(),
                ),
                ("BRAID_TEST_KUBECTL", k.kubectl.clone().into_os_string()),
            ]
        })
        .collect();
    step("cargo test", &mut || {
        cargo_with_env(
            root,
            &["test", "--workspace", "--all-features", "--no-fail-fast"],
            &kube_env,
        )
    })?;
    eprintln!("\nall steps passed:");
    for (name, took) in timings {
        eprintln!("  {name:<20} {:>6.1}s", took.as_secs_f64());
    }
    Ok(())
}

/// Stops the test cluster when `cargo xtask test` ends, however it ends.
struct StopCluster<'a>(&'a Path);

impl Drop for StopCluster<'_> {
    fn drop(&mut self) {
        if let Err(e) = crate::cluster::stop(self.0) {
            eprintln!("cannot stop the test cluster: {e:#}");
        }
    }
}

/// Runs `cargo <args>` in `root`, failing when it fails.
pub(crate) fn cargo(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    cargo_with_env(root, args, &[])
}

/// [`cargo`] with extra environment variables.
fn cargo_with_env(
    root: &Path,
    args: &[&str],
    env: &[(&str, std::ffi::OsString)],
) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The xDS interop test builds a Go client. Go is installed from Debian when
/// missing (as root); the module's `toolchain` line then fetches the Go
/// release it needs from the Go module proxy.
fn ensure_go() -> anyhow::Result<()> {
    if which("go") {
        return Ok(());
    }
    if !is_root() || !which("apt-get") {
        bail!("Go is missing: install it (e.g. `apt-get install -y golang-go`) and run again");
    }
    eprintln!("Go is missing; installing golang-go from Debian");
    apt_install(&["golang-go"])
}

/// The network-namespace tests need `ip` (iproute2), `iptables-restore` and
/// `ip6tables-restore` (iptables); installed from Debian when missing (as
/// root). Without root those tests skip themselves, so nothing is needed.
pub(crate) fn ensure_network_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = [("ip", "iproute2"), ("iptables-restore", "iptables")]
        .into_iter()
        .filter(|(program, _)| !which(program))
        .map(|(_, package)| package)
        .collect();
    if missing.is_empty() || !is_root() {
        return Ok(());
    }
    if !which("apt-get") {
        bail!("missing {}: install them and run again", missing.join(", "));
    }
    eprintln!("installing {} from Debian", missing.join(" "));
    apt_install(&missing)
}

/// `apt-get update` then `apt-get install -y <packages>`.
pub(crate) fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let update = Command::new("apt-get")
        .arg("update")
        .status()
        .context("cannot run apt-get")?;
    if !update.success() {
        bail!("`apt-get update` failed ({update})");
    }
    let install = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")?;
    if !install.success() {
        bail!(
            "`apt-get install {}` failed ({install})",
            packages.join(" ")
        );
    }
    Ok(())
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
