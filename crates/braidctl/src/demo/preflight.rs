//! What the demo needs before it touches anything: root, the `ip` and
//! `iptables` tools, and Braid's three binaries. Each failure says exactly
//! what to install or build.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

/// Paths of the binaries the demo runs.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub(crate) control: PathBuf,
    pub(crate) proxy: PathBuf,
    pub(crate) cni: PathBuf,
}

/// Checks root, the tools and the binaries; returns the binaries' paths.
pub(crate) fn check(bin_dir: Option<&Path>) -> anyhow::Result<Binaries> {
    if !rustix::process::geteuid().is_root() {
        bail!(
            "braidctl demo must run as root: it creates network namespaces and iptables rules\n  \
             run it with sudo, e.g. `sudo {} demo` (or `cargo xtask demo`, which asks sudo for you)",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "braidctl".into())
        );
    }
    let mut missing = Vec::new();
    for (tool, args) in [
        ("ip", &["-V"][..]),
        ("iptables-restore", &["--version"][..]),
        ("iptables-save", &["--version"][..]),
    ] {
        let found = Command::new(tool)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            missing.push(tool);
        }
    }
    if !missing.is_empty() {
        bail!(
            "braidctl demo needs {} on PATH\n  install them: `apt-get install -y iproute2 iptables` \
             (Debian/Ubuntu) or `dnf install -y iproute iptables` (Fedora/RHEL)",
            missing.join(", ")
        );
    }
    let dir = match bin_dir {
        Some(dir) => dir.to_path_buf(),
        None => std::env::current_exe()
            .context("cannot find this braidctl's path to look for braid-proxy next to it; pass --bin-dir")?
            .parent()
            .map(Path::to_path_buf)
            .context("braidctl's path has no parent directory; pass --bin-dir")?,
    };
    let find = |name: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "{} not found (the demo runs braid-control, braid-proxy and braid-cni from {})\n  \
             build them: `cargo build --release -p braid-control -p braid-proxy -p braid-cni -p braidctl` \
             and run target/release/braidctl, or run `cargo xtask demo`; or pass --bin-dir DIR",
            path.display(),
            dir.display()
        )
    };
    Ok(Binaries {
        control: find("braid-control")?,
        proxy: find("braid-proxy")?,
        cni: find("braid-cni")?,
    })
}
