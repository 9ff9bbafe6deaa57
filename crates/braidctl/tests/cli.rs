//! braidctl against a real, in-process control plane: `x watch` prints the
//! deltas a proxy receives; `proxy-status` shows the watcher in sync;
//! `config-errors` shows a rejected document; `status` shows each
//! workload's modes and what a namespace switch waits for.

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

/// `braidctl routes` lists the routes the control plane serves and says
/// which rule a request would take, with the proxies' own matcher.
#[tokio::test]
async fn routes_lists_routes_and_explains_a_request() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut docs = Vec::new();
    for (name, vip) in [
        ("web", "198.19.0.1"),
        ("web-v1", "198.19.0.2"),
        ("web-v2", "198.19.0.3"),
    ] {
        docs.push(format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec: {{clusterIP: {vip}, ports: [{{name: http, port: 80}}]}}\n"
        ));
    }
    docs.push(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web, namespace: shop}\nspec:\n  parentRefs: [{group: '', kind: Service, name: web}]\n  rules:\n  - name: canary\n    matches: [{headers: [{name: x-canary, value: 'yes'}]}]\n    backendRefs: [{name: web-v2, port: 80}]\n  - matches: [{path: {type: PathPrefix, value: /api}}]\n    backendRefs: [{name: web-v1, port: 80, weight: 75}, {name: web-v2, port: 80, weight: 25}]\n"
            .to_string(),
    );
    std::fs::write(dir.path().join("routes.yaml"), docs.join("---\n"))?;
    let cp = ControlPlane::start(Config::for_tests(dir.path())).await?;
    let addr = cp.xds_addr().to_string();
    let cp_flag = ["--control-plane", addr.as_str()];

    let (ok, out) = run(&[&["routes"][..], &cp_flag].concat()).await?;
    assert!(ok, "{out}");
    assert!(out.contains("shop/web  parents: Service shop/web"), "{out}");
    assert!(out.contains("rule canary"), "{out}");

    let ask = |extra: &[&str]| {
        let mut args = vec!["routes", "--service", "shop/web"];
        args.extend_from_slice(&cp_flag);
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    // The header match wins where paths tie; a longer path prefix wins
    // over it (the specification's precedence).
    let args = ask(&["--path", "/items", "-H", "x-canary:yes"]);
    let (ok, out) = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    assert!(ok, "{out}");
    assert!(out.contains("route shop/web rule canary"), "{out}");
    assert!(out.contains("-> shop/web-v2:80 100.0%"), "{out}");

    let args = ask(&["--path", "/api/items"]);
    let (ok, out) = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    assert!(ok, "{out}");
    assert!(out.contains("-> shop/web-v1:80 75.0%"), "{out}");
    assert!(out.contains("-> shop/web-v2:80 25.0%"), "{out}");

    // No rule matches: 404, and the exit code says so.
    let args = ask(&["--path", "/other"]);
    let (ok, out) = run(&args.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    assert!(!ok, "{out}");
    assert!(out.contains("answered 404"), "{out}");
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

/// A pod in `ns` on node-a; with the braid-proxy container when `sidecar`.
fn meshed_pod(ns: &str, name: &str, ip: &str, sidecar: bool) -> String {
    let proxy = if sidecar {
        ", {name: braid-proxy, image: braid/proxy}"
    } else {
        ""
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{app: {name}}}}}\nspec: {{nodeName: node-a, containers: [{{name: app, image: app}}{proxy}]}}\nstatus: {{podIP: {ip}}}\n"
    )
}

fn namespaces(shop: &str, inventory: &str, legacy: &str) -> String {
    [("shop", shop), ("inventory", inventory), ("legacy", legacy)]
        .map(|(name, mode)| {
            format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{braid.dev/mode: {mode}}}}}\n"
            )
        })
        .join("---\n")
}

/// Cells of the table row for `ns/name`.
fn status_row(table: &str, ns: &str, name: &str) -> Option<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.len() == 7 && cells[0] == ns && cells[1] == name)
}

#[tokio::test]
async fn status_shows_each_mode_and_what_a_switch_waits_for() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("namespaces.yaml"),
        namespaces("sidecar", "ambient", "none"),
    )?;
    std::fs::write(
        dir.path().join("pods.yaml"),
        [
            meshed_pod("shop", "web-0", "198.18.0.1", true),
            meshed_pod("shop", "web-1", "198.18.0.2", false),
            meshed_pod("inventory", "stock-0", "198.18.0.3", false),
            meshed_pod("legacy", "reports-0", "198.18.0.4", false),
        ]
        .join("---\n"),
    )?;
    let cp = ControlPlane::start(Config::for_tests(dir.path())).await?;
    let addr = cp.xds_addr().to_string();

    // A ztunnel for node-a and the sidecar of shop/web-0, as xDS clients.
    let mut proxies = Vec::new();
    for node_id in ["ztunnel~node-a", "sidecar~shop/web-0"] {
        let child = braidctl()
            .args(["x", "watch", "--type", "workload", "--control-plane", &addr])
            .args(["--node-id", node_id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        proxies.push(child);
    }
    let mut out = String::new();
    for _ in 0..200 {
        let (ok, table) = run(&["status", "--control-plane", &addr]).await?;
        assert!(ok, "status exits 0: {table}");
        out = table;
        if out.contains("ztunnel node-a connected") && out.contains("sidecar connected") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let row = |ns, name| status_row(&out, ns, name).with_context(|| format!("{ns}/{name}:\n{out}"));
    assert_eq!(
        row("shop", "web-0")?,
        [
            "shop",
            "web-0",
            "node-a",
            "sidecar",
            "sidecar",
            "sidecar connected",
            "ok"
        ],
    );
    assert_eq!(
        row("shop", "web-1")?,
        [
            "shop",
            "web-1",
            "node-a",
            "sidecar",
            "none",
            "-",
            "restart to get a sidecar"
        ],
    );
    assert_eq!(
        row("inventory", "stock-0")?,
        [
            "inventory",
            "stock-0",
            "node-a",
            "ambient",
            "ambient",
            "ztunnel node-a connected",
            "ok"
        ],
    );
    assert_eq!(
        row("legacy", "reports-0")?,
        ["legacy", "reports-0", "node-a", "none", "none", "-", "ok"],
    );
    assert!(
        out.ends_with("4 workloads, 1 waits for a restart\n"),
        "{out}"
    );

    // Switch shop to ambient and legacy to sidecar: web-0 keeps its sidecar
    // until restarted, web-1 joins ambient at once, reports-0 waits.
    std::fs::write(
        dir.path().join("namespaces.yaml"),
        namespaces("ambient", "ambient", "sidecar"),
    )?;
    let mut json = serde_json::Value::Null;
    for _ in 0..200 {
        let (ok, text) = run(&["status", "--control-plane", &addr, "-o", "json"]).await?;
        assert!(ok, "{text}");
        json = serde_json::from_str(&text)?;
        if json["waiting_for_restart"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let find = |ns: &str, name: &str| {
        json["workloads"]
            .as_array()
            .and_then(|ws| {
                ws.iter()
                    .find(|w| w["namespace"] == ns && w["name"] == name)
                    .cloned()
            })
            .with_context(|| format!("{ns}/{name}: {json}"))
    };
    let web0 = find("shop", "web-0")?;
    assert_eq!(
        (&web0["effective"], &web0["actual"], &web0["status"]),
        (
            &"ambient".into(),
            &"sidecar".into(),
            &"restart to join ambient".into()
        ),
        "{json}"
    );
    assert_eq!(web0["proxy"]["node_id"], "sidecar~shop/web-0");
    let web1 = find("shop", "web-1")?;
    assert_eq!(web1["actual"], "ambient", "{json}");
    assert_eq!(web1["status"], "ok", "{json}");
    assert_eq!(web1["proxy"]["node_id"], "ztunnel~node-a", "{json}");
    let reports = find("legacy", "reports-0")?;
    assert_eq!(reports["status"], "restart to get a sidecar", "{json}");
    assert_eq!(json["total"], 4);

    // --namespace filters.
    let (ok, out) = run(&["status", "--control-plane", &addr, "--namespace", "legacy"]).await?;
    assert!(ok);
    assert!(status_row(&out, "legacy", "reports-0").is_some(), "{out}");
    assert!(status_row(&out, "shop", "web-0").is_none(), "{out}");
    assert!(
        out.ends_with("1 workload, 1 waits for a restart\n"),
        "{out}"
    );

    for mut p in proxies {
        p.kill().await?;
    }
    cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn proxy_status_escapes_terminal_controls() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("pods.yaml"), pod("a", "198.18.0.1", "a"))?;
    let cp = ControlPlane::start(Config::for_tests(dir.path())).await?;
    let addr = cp.xds_addr().to_string();
    // A proxy whose node id clears the screen and forges a line.
    let hostile = "evil\x1b[2J\nforged\u{9b}";
    let mut watch = braidctl()
        .args([
            "x",
            "watch",
            "--type",
            "workload",
            "--control-plane",
            &addr,
            "--node-id",
            hostile,
        ])
        .stdout(Stdio::null())
        .spawn()?;
    let mut table = String::new();
    for _ in 0..100 {
        let (_, out) = run(&["proxy-status", "--control-plane", &addr]).await?;
        table = out;
        if table.contains("evil") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unsafe_char = |c: char| c.is_control() && c != '\n';
    assert!(
        table.contains("evil\\u{1b}[2J\\nforged\\u{9b}"),
        "{table:?}"
    );
    assert!(!table.chars().any(unsafe_char), "{table:?}");
    assert!(
        !table.lines().any(|l| l.starts_with("forged")),
        "a forged line: {table}"
    );
    let (_, json) = run(&["proxy-status", "--json", "--control-plane", &addr]).await?;
    assert!(!json.chars().any(unsafe_char), "{json:?}");
    let parsed: serde_json::Value = serde_json::from_str(&json)?;
    assert_eq!(
        parsed["proxies"][0]["node_id"], hostile,
        "JSON keeps the data"
    );
    let (_, status) = run(&["status", "--control-plane", &addr]).await?;
    assert!(!status.chars().any(unsafe_char), "{status:?}");
    watch.kill().await?;
    cp.shutdown().await;
    Ok(())
}
