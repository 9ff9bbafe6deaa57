//! The `braid-cni` binary and the node's CNI configuration: `install` and
//! `uninstall`, and an agent run with `--cni-conf-dir` that joins the chain
//! while it runs and leaves it when it is stopped. No root needed.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_braid-cni");

const PRIMARY: &str = r#"{"cniVersion": "1.0.0", "name": "pods", "plugins": [{"type": "ptp"}]}"#;

fn plugin_types(dir: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read(dir.join("10-pods.conflist"))?;
    let config: serde_json::Value = serde_json::from_slice(&text)?;
    let plugins = config["plugins"].as_array().cloned().unwrap_or_default();
    Ok(plugins
        .iter()
        .filter_map(|p| p["type"].as_str().map(str::to_owned))
        .collect())
}

fn run(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(BIN)
        .args(args)
        .env_remove("CNI_COMMAND")
        .output()?)
}

/// Polls `check` every 50 ms for up to 10 s.
fn wait_for(what: &str, mut check: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check()? {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[test]
fn install_and_uninstall_edit_the_first_configuration() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("10-pods.conflist"), PRIMARY)?;
    let conf_dir = dir.path().to_str().unwrap_or_default();
    for _ in 0..2 {
        let out = run(&["install", "--cni-conf-dir", conf_dir])?;
        anyhow::ensure!(out.status.success(), "install: {out:?}");
    }
    assert_eq!(plugin_types(dir.path())?, ["ptp", "braid-cni"]);
    let out = run(&["uninstall", "--cni-conf-dir", conf_dir])?;
    anyhow::ensure!(out.status.success(), "uninstall: {out:?}");
    assert_eq!(plugin_types(dir.path())?, ["ptp"]);

    // No configuration: a clear error naming the directory.
    let empty = tempfile::tempdir()?;
    let out = run(&[
        "install",
        "--cni-conf-dir",
        empty.path().to_str().unwrap_or_default(),
    ])?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no CNI configuration")
            && stderr.contains(&*empty.path().to_string_lossy()),
        "{stderr}"
    );
    Ok(())
}

/// Ends the agent when the test ends, whatever happens.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_agent_joins_the_chain_while_it_runs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("net.d");
    std::fs::create_dir(&conf)?;
    std::fs::write(conf.join("10-pods.conflist"), PRIMARY)?;
    std::fs::write(dir.path().join("modes.json"), "{}")?;
    let path = |name: &str| dir.path().join(name);
    let mut agent = Agent(
        Command::new(BIN)
            .arg("agent")
            .args(["--node", "node-a"])
            .arg("--socket")
            .arg(path("cni.sock"))
            .arg("--ztunnel-socket")
            .arg(path("ztunnel.sock"))
            .arg("--state-dir")
            .arg(path("state"))
            .arg("--mode-file")
            .arg(path("modes.json"))
            .arg("--cni-conf-dir")
            .arg(&conf)
            .env_remove("CNI_COMMAND")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_for("the agent to join the chain", || {
        Ok(plugin_types(&conf)? == ["ptp", "braid-cni"])
    })?;
    let text = std::fs::read_to_string(conf.join("10-pods.conflist"))?;
    assert!(
        text.contains(&*path("cni.sock").to_string_lossy()),
        "{text}"
    );

    // Stopped (SIGTERM, as the kubelet does): it leaves the chain, so new
    // pods start (uncaptured, adopted by the next agent) instead of failing.
    let pid = agent.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status()?;
    anyhow::ensure!(killed.success(), "kill -TERM {pid}");
    wait_for("the agent to exit", || Ok(agent.0.try_wait()?.is_some()))?;
    assert_eq!(plugin_types(&conf)?, ["ptp"]);
    Ok(())
}
