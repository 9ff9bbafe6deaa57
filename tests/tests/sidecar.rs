//! Sidecar mode end to end, in real network namespaces: two sidecar pods
//! and one unmeshed pod on a bridge; the control plane on the host, reached
//! by the sidecars over a host link. Each sidecar pod runs `braid-proxy
//! init` and then `braid-proxy sidecar` inside its namespace, exactly as an
//! init container and a sidecar container would.
//!
//! Checked: sidecar → sidecar traffic is tunnelled over HBONE (the
//! destination's :15008 holds the connection), a DENY policy refuses it by
//! the source's identity, and a pod outside the mesh reaches a sidecar pod
//! in plaintext under PERMISSIVE. Root only (skipped otherwise, unless
//! CI=true).

// Shared with tests/ambient.rs (it allows the parts this test leaves unused).
#[path = "ambient/support.rs"]
mod support;

use std::{
    ffi::OsString,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use braid_capture::testing::{TestNet, TestPod, require_root};
use support::{
    EchoConn, EchoServer, HOST, Process, binaries, child_env, echo, established, eventually,
    free_port, has_ip, http_get, pod_token, refused,
};

const ECHO_PORT: u16 = 8080;

/// (pod, namespace, service account, ip, mode label, has a sidecar)
const PODS: [(&str, &str, &str, Ipv4Addr, &str, bool); 3] = [
    (
        "front",
        "shop",
        "front",
        Ipv4Addr::new(198, 18, 2, 10),
        "sidecar",
        true,
    ),
    (
        "back",
        "shop",
        "back",
        Ipv4Addr::new(198, 18, 2, 11),
        "sidecar",
        true,
    ),
    (
        "old",
        "legacy",
        "old",
        Ipv4Addr::new(198, 18, 2, 12),
        "none",
        false,
    ),
];

fn config(dir: &Path) -> anyhow::Result<()> {
    let mut docs = vec![
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels:\n    braid.dev/mode: sidecar\n".to_string(),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: legacy\n  labels:\n    braid.dev/mode: none\n".to_string(),
    ];
    for (name, ns, sa, ip, _, sidecar) in PODS {
        let proxy = if sidecar {
            "  - name: braid-proxy\n    image: braid/proxy:dev\n"
        } else {
            ""
        };
        docs.push(format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    app: {name}\nspec:\n  nodeName: node-a\n  serviceAccountName: {sa}\n  containers:\n  - name: app\n    image: example/{name}:1\n{proxy}status:\n  phase: Running\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n  conditions:\n  - type: Ready\n    status: \"True\"\n"
        ));
        if sidecar {
            docs.push(format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sidecar-{name}\n  namespace: braid-system\ntype: braid.dev/proxy-token\nstringData:\n  token: {}\n  pod: {ns}/{name}\n",
                pod_token(name)
            ));
        }
    }
    std::fs::write(dir.join("mesh.yaml"), docs.join("---\n"))?;
    Ok(())
}

fn deny_shop(dir: &Path) -> anyhow::Result<()> {
    std::fs::write(
        dir.join("deny.yaml"),
        "apiVersion: braid.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata:\n  name: deny-front\n  namespace: shop\nspec:\n  selector:\n    matchLabels:\n      app: back\n  action: DENY\n  rules:\n  - from:\n      principals: [\"spiffe://cluster.local/ns/shop/sa/front\"]\n",
    )?;
    Ok(())
}

/// Runs `braid-proxy <args>` inside `pod`'s namespace.
fn in_pod(pod: &TestPod, args: &[&str]) -> (PathBuf, Vec<OsString>) {
    let mut all: Vec<OsString> = vec!["netns".into(), "exec".into(), pod.netns_name.clone().into()];
    all.push(binaries().proxy.clone().into());
    all.extend(args.iter().map(OsString::from));
    (PathBuf::from("ip"), all)
}

#[test]
fn sidecars_tunnel_enforce_policy_and_accept_plaintext() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let bins = binaries();
    let dir = tempfile::Builder::new()
        .prefix("braid-sidecar-")
        .tempdir()?;
    let config_dir = dir.path().join("config");
    std::fs::create_dir_all(&config_dir)?;
    config(&config_dir)?;

    let net = TestNet::new("sc")?;
    net.add_host_link(HOST)?;
    let mut pods = Vec::new();
    for (name, _, _, ip, _, _) in PODS {
        pods.push(net.add_pod(name, ip)?);
    }
    let (front, back, old) = (&pods[0], &pods[1], &pods[2]);
    let _echo: Vec<EchoServer> = pods
        .iter()
        .map(|p| EchoServer::start(p, ECHO_PORT))
        .collect();

    // The control plane listens on the host link, where the pods reach it.
    let xds = SocketAddr::from((HOST, free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let ca_dir = dir.path().join("ca");
    let control_args: Vec<OsString> = [
        "--config-dir",
        &config_dir.display().to_string(),
        "--xds-listen",
        &xds.to_string(),
        "--admin-listen",
        &admin.to_string(),
        "--ca-dir",
        &ca_dir.display().to_string(),
        "--debounce-ms",
        "20",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let mut processes = vec![Process::start(
        "braid-control",
        &bins.control,
        control_args,
        child_env("info"),
        dir.path().join("braid-control.log"),
    )];
    eventually(
        "braid-control /ready",
        Duration::from_secs(20),
        || match http_get(admin, "/ready") {
            Ok((200, _)) if ca_dir.join("root-cert.pem").is_file() => Ok(()),
            other => Err(format!("/ready: {other:?}")),
        },
    );
    let ca_root = ca_dir.join("root-cert.pem").display().to_string();

    // Each sidecar pod: init, then the sidecar, both inside the pod.
    for (i, pod) in [front, back].into_iter().enumerate() {
        let (_, ns, ..) = PODS[i];
        let (program, args) = in_pod(pod, &["init"]);
        let out = std::process::Command::new(&program).args(&args).output()?;
        anyhow::ensure!(
            out.status.success(),
            "init in {}: {}",
            pod.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let token_file = dir.path().join(format!("{}.token", pod.name));
        std::fs::write(&token_file, pod_token(&pod.name))?;
        let (program, args) = in_pod(
            pod,
            &[
                "sidecar",
                "--pod",
                &format!("{ns}/{}", pod.name),
                "--control-plane",
                &format!("http://{xds}"),
                "--ca-root",
                &ca_root,
                "--token-file",
                &token_file.display().to_string(),
            ],
        );
        processes.push(Process::start(
            &format!("sidecar {}", pod.name),
            &program,
            args,
            child_env("debug"),
            dir.path().join(format!("sidecar-{}.log", pod.name)),
        ));
    }

    // front → back: tunnelled into back's sidecar on :15008.
    let to_back = SocketAddr::from((back.ip, ECHO_PORT));
    eventually("front -> back echoes", Duration::from_secs(25), || {
        echo(front, to_back).map_err(|e| format!("{e}"))
    });
    let mut conn = EchoConn::connect(front, to_back).map_err(|e| anyhow::anyhow!("{e}"))?;
    conn.roundtrip().map_err(|e| anyhow::anyhow!("{e}"))?;
    eventually(
        "an HBONE connection from front into back's :15008",
        Duration::from_secs(5),
        || {
            let conns = established(back, 15008);
            conns
                .iter()
                .any(|(_, peer)| has_ip(peer, front.ip))
                .then_some(())
                .ok_or_else(|| format!("established on :15008 in back: {conns:?}"))
        },
    );
    drop(conn);

    // A pod outside the mesh reaches back in plaintext (PERMISSIVE).
    echo(old, to_back).map_err(|e| anyhow::anyhow!("old -> back: {e}"))?;

    // DENY by front's identity: refused; old (plaintext, no identity) still passes.
    deny_shop(&config_dir)?;
    eventually(
        "the DENY to refuse front -> back",
        Duration::from_secs(5),
        || refused(front, to_back),
    );
    echo(old, to_back).map_err(|e| anyhow::anyhow!("old -> back under the DENY: {e}"))?;
    std::fs::remove_file(config_dir.join("deny.yaml"))?;
    eventually(
        "front -> back after the DENY is gone",
        Duration::from_secs(5),
        || echo(front, to_back).map_err(|e| format!("{e}")),
    );

    for process in processes.iter_mut().rev() {
        process.stop();
    }
    Ok(())
}
