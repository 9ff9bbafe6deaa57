//! braidctl against a real, in-process control plane: `x watch` prints the
//! deltas a proxy receives; `proxy-status` shows the watcher in sync;
//! `config-errors` shows a rejected document.

use std::{process::Stdio, time::Duration};

use anyhow::{Context as _, bail};
use braid_control::{Config, ControlPlane};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::Command,
};

const DEADLINE: Duration = Duration::from_secs(15);

fn pod(name: &str, ip: &str, app: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop, labels: {{app: {app}}}}}\nspec: {{nodeName: node-a, containers: [{{name: app, image: app}}]}}\nstatus: {{podIP: {ip}, conditions: [{{type: Ready, status: 'True'}}]}}\n"
    )
}

fn braidctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_braidctl"));
    cmd.kill_on_drop(true).stdin(Stdio::null());
    cmd
}

async fn run(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let out = tokio::time::timeout(DEADLINE, braidctl().args(args).output()).await??;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

#[tokio::test]
async fn watch_prints_deltas_and_proxy_status_shows_the_watcher() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("pods.yaml"),
        format!(
            "{}---\n{}",
            pod("a", "198.18.0.1", "a"),
            pod("b", "198.18.0.2", "b")
        ),
    )?;
    let cp = ControlPlane::start(Config::for_tests(dir.path())).await?;
    let addr = cp.xds_addr().to_string();

    let mut watch = braidctl()
        .args([
            "x",
            "watch",
            "--type",
            "workload",
            "--control-plane",
            &addr,
            "--count",
            "2",
            "--node-id",
            "test~watch",
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(watch.stdout.take().context("stdout")?).lines();
    let mut next = async || -> anyhow::Result<serde_json::Value> {
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await??
            .context("watch ended early")?;
        Ok(serde_json::from_str(&line)?)
    };
    let first = [next().await?, next().await?];
    let mut names: Vec<&str> = first.iter().filter_map(|l| l["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["shop/a", "shop/b"]);
    assert_eq!(first[0]["op"], "update");
    assert_eq!(first[0]["type"], "workload");
    assert_eq!(first[0]["resource"]["node"], "node-a");

    // The watcher is a proxy like any other: in sync, two resources.
    let mut table = String::new();
    for _ in 0..100 {
        let (ok, out) = run(&["proxy-status", "--control-plane", &addr]).await?;
        table = out;
        if ok && table.contains("test~watch") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let row = table
        .lines()
        .find(|l| l.starts_with("test~watch"))
        .with_context(|| format!("watcher missing:\n{table}"))?;
    assert!(
        row.contains("workload") && row.contains("SYNCED"),
        "{table}"
    );

    // A removal arrives as its own line, and --count 2 ends the watch.
    std::fs::write(dir.path().join("pods.yaml"), pod("a", "198.18.0.1", "a"))?;
    let removed = next().await?;
    assert_eq!(removed["op"], "remove");
    assert_eq!(removed["name"], "shop/b");
    let status = tokio::time::timeout(DEADLINE, watch.wait()).await??;
    assert!(status.success());

    // A bad document is listed by config-errors, which then exits 1.
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: 3}\n",
    )?;
    let mut listed = String::new();
    for _ in 0..100 {
        let (ok, out) = run(&["config-errors", "--control-plane", &addr]).await?;
        listed = out;
        if !ok {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        listed.contains("bad.yaml: document 0: field spec.containers:"),
        "{listed}"
    );
    cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn watch_peer_authentication_prints_the_policy() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("peer.yaml"),
        "apiVersion: braid.dev/v1alpha1\nkind: PeerAuthentication\nmetadata: {name: strict, namespace: inventory}\nspec: {selector: {matchLabels: {app: stock}}, mtls: {mode: STRICT}}\n",
    )?;
    let cp = ControlPlane::start(Config::for_tests(dir.path())).await?;
    let addr = cp.xds_addr().to_string();
    let out = tokio::time::timeout(
        DEADLINE,
        braidctl()
            .args([
                "x",
                "watch",
                "--type",
                "peerauthentication",
                "--count",
                "1",
                "--control-plane",
                &addr,
            ])
            .output(),
    )
    .await??;
    assert!(out.status.success(), "{out:?}");
    let line: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .context("one delta")?,
    )?;
    assert_eq!(line["op"], "update");
    assert_eq!(line["type"], "peerauthentication");
    assert_eq!(line["name"], "inventory/strict");
    assert_eq!(line["resource"]["mode"], "strict");
    assert_eq!(line["resource"]["selector"]["app"], "stock");
    cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn unreachable_control_plane_is_a_clear_error() -> anyhow::Result<()> {
    let out = tokio::time::timeout(
        DEADLINE,
        braidctl()
            .args(["proxy-status", "--control-plane", "127.0.0.1:1"])
            .output(),
    )
    .await??;
    if out.status.success() {
        bail!("expected failure");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the control plane at 127.0.0.1:1"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn with_ca_root_braidctl_talks_tls_to_a_control_plane_with_a_ca() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config_dir = dir.path().join("config");
    std::fs::create_dir_all(&config_dir)?;
    std::fs::write(config_dir.join("pods.yaml"), pod("a", "198.18.0.1", "a"))?;
    let mut config = Config::for_tests(&config_dir);
    config.ca_dir = Some(dir.path().join("ca"));
    let cp = ControlPlane::start(config).await?;
    let addr = cp.xds_addr().to_string();
    let root = dir.path().join("ca/root-cert.pem");
    let root = root.to_string_lossy();

    let (ok, out) = run(&["proxy-status", "--control-plane", &addr, "--ca-root", &root]).await?;
    assert!(ok, "{out}");
    assert!(out.starts_with("control plane version 1"), "{out}");

    // Plaintext against a TLS port fails, and the error says what to add.
    let out = tokio::time::timeout(
        DEADLINE,
        braidctl()
            .args(["proxy-status", "--control-plane", &addr])
            .output(),
    )
    .await??;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pass --ca-root"), "{stderr}");

    // x watch over TLS.
    let out = tokio::time::timeout(
        DEADLINE,
        braidctl()
            .args([
                "x",
                "watch",
                "--type",
                "workload",
                "--count",
                "1",
                "--control-plane",
                &addr,
                "--ca-root",
                &root,
            ])
            .output(),
    )
    .await??;
    assert!(out.status.success());
    let line: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .context("one delta")?,
    )?;
    assert_eq!(line["name"], "shop/a");
    cp.shutdown().await;
    Ok(())
}
