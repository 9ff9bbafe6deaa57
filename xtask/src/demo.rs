//! `cargo xtask demo [ARGS...]`: the README's first command. Builds the
//! release binaries (braidctl, braid-control, braid-proxy, braid-cni) and
//! replaces itself with `braidctl demo ARGS...`, through `sudo` when not
//! root (the demo creates network namespaces and iptables rules).
//!
//! Replacing itself (exec) rather than waiting on a child means Ctrl-C
//! reaches only the demo, which then cleans up before the shell returns.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// Arguments of `cargo xtask demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Passed to `braidctl demo` (see `braidctl demo --help`), e.g.
    /// `--duration 60 --no-tui` or `--keep`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "DEMO ARGS"
    )]
    demo_args: Vec<String>,
}

/// Builds, then execs the demo; returns only on failure.
pub(crate) fn run(args: &Args, root: &Path) -> anyhow::Result<()> {
    // As root, what the demo needs (ip, iptables) is installed from Debian
    // when missing; otherwise the demo itself says what to install.
    crate::test::ensure_network_tools()?;
    eprintln!("xtask demo: building the release binaries (the first build takes a few minutes)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "braidctl",
            "-p",
            "braid-control",
            "-p",
            "braid-proxy",
            "-p",
            "braid-cni",
            "--bins",
        ])
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("`cargo build --release` of the demo's binaries failed ({status})");
    }
    let braidctl = target_dir(root).join("release").join("braidctl");
    let root_user = rustix::process::geteuid().is_root();
    let mut cmd = if root_user {
        Command::new(&braidctl)
    } else {
        eprintln!("xtask demo: the demo needs root; running it with sudo");
        let mut sudo = Command::new("sudo");
        // Keep the caller's log filter; sudo drops the environment otherwise.
        if let Ok(level) = std::env::var("BRAID_LOG") {
            sudo.arg(format!("BRAID_LOG={level}"));
        }
        sudo.arg(&braidctl);
        sudo
    };
    cmd.arg("demo").args(&args.demo_args);
    let error = cmd.exec();
    if root_user {
        Err(error).with_context(|| format!("cannot run {}", braidctl.display()))
    } else {
        Err(error)
            .context("cannot run sudo; run the demo as root: sudo target/release/braidctl demo")
    }
}

/// `CARGO_TARGET_DIR` (relative to the workspace root) or `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir))
}
