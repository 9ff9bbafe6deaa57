//! `cargo xtask quickstart`: the README's first command. Builds the binaries,
//! runs braid-control on a copy of `examples/`, and shows what it serves with
//! braidctl: a proxy's view of the workloads, proxy-status, a live edit
//! arriving as a delta, and a broken file being reported while the last good
//! configuration keeps serving.

use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Arguments of `cargo xtask quickstart`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// xDS address for the control plane.
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds_listen: SocketAddr,
    /// Admin address for the control plane.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin_listen: SocketAddr,
    /// Leave the control plane running (until Ctrl-C) and print commands to try.
    #[arg(long)]
    keep: bool,
}

/// Children we started; killed (by PID, via `Child::kill`) on drop.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the walkthrough.
pub(crate) fn run(args: &Args, root: &Path) -> anyhow::Result<()> {
    step("building braid-control and braidctl");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "braid-control", "-p", "braidctl"])
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("build failed");
    }
    let bin = target_dir(root).join("debug");
    let config = tempfile::tempdir().context("cannot create a temp dir")?;
    copy_dir(&root.join("examples"), config.path())?;
    let xds = args.xds_listen.to_string();
    let braidctl = |args: &[&str]| {
        let mut cmd = Command::new(bin.join("braidctl"));
        cmd.args(args).args(["--control-plane", &xds]);
        cmd
    };

    step(&format!(
        "starting braid-control on a copy of examples/ ({})",
        config.path().display()
    ));
    let mut children = Children(Vec::new());
    children.0.push(
        Command::new(bin.join("braid-control"))
            .args(["--config-dir", &config.path().to_string_lossy()])
            .args([
                "--xds-listen",
                &xds,
                "--admin-listen",
                &args.admin_listen.to_string(),
            ])
            .env("BRAID_LOG", "warn")
            .spawn()
            .context("cannot start braid-control")?,
    );
    wait_for_port(args.admin_listen)?;

    step("subscribing like a proxy: braidctl x watch --type workload (one JSON line per delta)");
    children.0.push(
        braidctl(&[
            "x",
            "watch",
            "--type",
            "workload",
            "--node-id",
            "quickstart~watch",
        ])
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start braidctl")?,
    );
    wait_synced(&braidctl)?;

    step("braidctl proxy-status");
    braidctl(&["proxy-status"]).status()?;

    step("switching namespace legacy to ambient: only its workload is pushed");
    let ns = config.path().join("namespaces.yaml");
    let text = std::fs::read_to_string(&ns)?;
    std::fs::write(
        &ns,
        text.replace(
            "name: legacy\n  labels:\n    braid.dev/mode: none",
            "name: legacy\n  labels:\n    braid.dev/mode: ambient",
        ),
    )?;
    wait_synced(&braidctl)?;

    step("breaking a file: it is reported, and its last good version keeps serving");
    std::fs::write(
        config.path().join("shop/checkout.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: checkout-0, namespace: shop}\nspec: {containers: oops}\n",
    )?;
    sleep(Duration::from_millis(500));
    braidctl(&["config-errors"]).status()?;
    braidctl(&["proxy-status"]).status()?;

    if args.keep {
        step("the control plane keeps running; try, in another terminal:");
        println!(
            "    {}/braidctl proxy-status --control-plane {xds}",
            bin.display()
        );
        println!(
            "    {}/braidctl x watch --type service --control-plane {xds}",
            bin.display()
        );
        println!("    curl -s http://{}/metrics", args.admin_listen);
        println!(
            "    edit files under {} and watch the deltas here",
            config.path().display()
        );
        println!("  Ctrl-C stops everything.");
        let _ = children.0[0].wait();
    }
    step("done: stopping the control plane and the watcher");
    Ok(())
}

fn step(what: &str) {
    println!("\n==> {what}");
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&dest)?;
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

fn wait_for_port(addr: SocketAddr) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        sleep(Duration::from_millis(50));
    }
    bail!(
        "braid-control did not start listening on {addr}; is the port taken? (use --admin-listen/--xds-listen)"
    )
}

/// Waits until every proxy has ACKed the newest configuration.
fn wait_synced(braidctl: &dyn Fn(&[&str]) -> Command) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        sleep(Duration::from_millis(200));
        let out = braidctl(&["proxy-status"]).output()?;
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("SYNCED") {
            return Ok(());
        }
    }
    bail!("the watcher did not get in sync within 20 s")
}
