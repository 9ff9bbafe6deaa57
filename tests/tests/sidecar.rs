//! Sidecar mode end to end, in real network namespaces: two sidecar pods
//! and one unmeshed pod on a bridge; the control plane on the host, reached
//! by the sidecars over a host link. Each sidecar pod runs `braid-proxy
//! init` and then `braid-proxy sidecar` inside its namespace, exactly as an
//! init container and a sidecar container would.
//!
//! Checked: sidecar → sidecar traffic is tunnelled over HBONE (the
//! destination's :15008 holds the connection), a DENY policy refuses it by
//! the source's identity, and a pod outside the mesh reaches a sidecar pod
//! in plaintext under PERMISSIVE and is refused under STRICT; no path
//! connects a sidecar to itself (a `CONNECT` to a proxy port is `400`). Then HTTP
//! through the sidecar: HTTP/1.1 keep-alive and chunked, gRPC over HTTP/2,
//! an upgrade, a server-first protocol without a stall, upstream reuse,
//! request metrics and the JSON access log. Root only (skipped otherwise, unless
//! CI=true).

// Shared with tests/ambient.rs (it allows the parts this test leaves unused).
#[path = "ambient/support.rs"]
mod support;

#[path = "common/http_app.rs"]
mod http_app;
#[path = "sidecar/l7.rs"]
mod l7;
#[path = "sidecar/mesh.rs"]
mod mesh;
#[path = "sidecar/routes.rs"]
mod routes;
#[path = "sidecar/waypoint.rs"]
mod waypoint;

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    time::Duration,
};

use braid_capture::testing::{TestNet, TestPod, require_root};
use mesh::Mesh;
use support::{
    EchoConn, EchoServer, HOST, HboneProbe, ProbeRefused, allow_principal, echo, established,
    eventually, has_ip, http_get, open_fds, peer_authentication, pod_token, refused,
};

const ECHO_PORT: u16 = 8080;
/// HTTP/1.1 and HTTP/2 on one port (back and old).
const HTTP_PORT: u16 = 8081;
/// A server-first protocol (back).
const GREETING_PORT: u16 = 2525;
/// Service `back`'s virtual IP: port 80 (`http`) and 9090 (`grpc`) to
/// HTTP_PORT, 25 (`mail`, nothing declared) to GREETING_PORT.
const BACK_VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 11);

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
    docs.push(format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: back\n  namespace: shop\nspec:\n  clusterIP: {BACK_VIP}\n  selector:\n    app: back\n  ports:\n  - name: http\n    port: 80\n    targetPort: {HTTP_PORT}\n  - name: grpc\n    port: 9090\n    targetPort: {HTTP_PORT}\n  - name: mail\n    port: 25\n    targetPort: {GREETING_PORT}\n"
    ));
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

/// One test of this binary at a time: each gives the host the same
/// address on its host link ([`HOST`]), which two at once would share.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`ONE_AT_A_TIME`], even after another test panicked holding it.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn sidecars_tunnel_enforce_policy_and_accept_plaintext() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let _serial = one_at_a_time();
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
    let back_http = l7::start_http_server(back, HTTP_PORT)?;
    l7::start_http_server(old, HTTP_PORT)?;
    l7::start_greeting_server(back, GREETING_PORT)?;

    // The control plane listens on the host link, where the pods reach it.
    let mut mesh = Mesh::start(dir.path(), &config_dir)?;
    // front runs as the proxy uid 1337 without capabilities (no socket
    // mark: the rules exempt the uid), as an injected sidecar does, and
    // logs JSON so its per-request access log can be parsed.
    let as_proxy_uid = [
        "setpriv",
        "--reuid=1337",
        "--regid=1337",
        "--clear-groups",
        "--",
    ];
    mesh.add_sidecar(front, "shop", &as_proxy_uid, "json")?;
    mesh.add_sidecar(back, "shop", &[], "text")?;

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

    // ALLOW only front's identity on the echo port (namespace-wide in
    // shop): plaintext old, which proves no identity, is refused.
    std::fs::write(
        config_dir.join("allow.yaml"),
        allow_principal(
            "shop",
            "allow-front",
            "spiffe://cluster.local/ns/shop/sa/front",
            ECHO_PORT,
        ),
    )?;
    eventually(
        "the ALLOW to refuse old -> back",
        Duration::from_secs(5),
        || refused(old, to_back),
    );
    echo(front, to_back).map_err(|e| anyhow::anyhow!("front -> back under the ALLOW: {e}"))?;
    std::fs::remove_file(config_dir.join("allow.yaml"))?;
    eventually(
        "old -> back after the ALLOW is gone",
        Duration::from_secs(5),
        || echo(old, to_back).map_err(|e| format!("{e}")),
    );

    // STRICT on shop: plaintext from outside the mesh is refused by back's
    // sidecar, mTLS from front still passes.
    std::fs::write(
        config_dir.join("strict.yaml"),
        peer_authentication("shop", "strict", "STRICT"),
    )?;
    eventually(
        "STRICT to refuse old -> back",
        Duration::from_secs(5),
        || refused(old, to_back),
    );
    echo(front, to_back).map_err(|e| anyhow::anyhow!("front -> back under STRICT: {e}"))?;
    std::fs::remove_file(config_dir.join("strict.yaml"))?;
    eventually(
        "old -> back after STRICT is gone",
        Duration::from_secs(5),
        || echo(old, to_back).map_err(|e| format!("{e}")),
    );

    let sidecar_pids =
        [&mesh.processes[1], &mesh.processes[2]].map(|p| p.pid().expect("sidecar running"));
    connect_to_own_proxy_port_is_refused(front, back, old, &mesh.ca_dir(), sidecar_pids)?;

    check_http(front, back, old, &back_http)?;
    check_access_log(&dir.path().join("sidecar-front.log"))?;

    mesh.stop();
    Ok(())
}

/// No path makes a sidecar connect to itself (a loop took ~19 000 file
/// descriptors in 2 s): a mesh identity's `CONNECT` to any port a proxy
/// binds is answered `400` with the reason while the app port still
/// tunnels; plaintext straight at a capture port, and an app dialling its
/// own sidecar's ports or another sidecar's, are closed; the kubelet's
/// plaintext path to the sidecar's readiness port still answers; neither
/// sidecar's descriptors grow.
fn connect_to_own_proxy_port_is_refused(
    front: &TestPod,
    back: &TestPod,
    old: &TestPod,
    ca_dir: &Path,
    sidecar_pids: [u32; 2],
) -> anyhow::Result<()> {
    use braid_model::catalog::ports;
    let fds_before = sidecar_pids.map(open_fds);
    let probe = HboneProbe::new(ca_dir, "shop", "front");
    let (proxy, back_id) = (
        SocketAddr::from((back.ip, 15008)),
        "spiffe://cluster.local/ns/shop/sa/back",
    );
    probe
        .connect(old, proxy, back_id, SocketAddr::from((back.ip, ECHO_PORT)))
        .map_err(|e| anyhow::anyhow!("CONNECT to back's app port: {e:?}"))?;
    for port in ports::ALL.iter().map(|p| p.number) {
        if !ports::is_proxy_port(port) {
            continue;
        }
        let target = SocketAddr::from((back.ip, port));
        match probe.connect(old, proxy, back_id, target) {
            Err(ProbeRefused {
                status: Some(400),
                message,
            }) if message.contains(&format!("port {port} is reserved for the mesh's proxies")) => {}
            other => anyhow::bail!("CONNECT {target} at back's sidecar: {other:?}"),
        }
    }
    let closed = [
        (old, SocketAddr::from((back.ip, 15006))),
        (old, SocketAddr::from((back.ip, 15001))),
        (front, SocketAddr::from(([127, 0, 0, 1], 15001))),
        (front, SocketAddr::from((front.ip, 15001))),
        (front, SocketAddr::from((front.ip, 15006))),
        (front, SocketAddr::from((back.ip, 15001))),
        (front, SocketAddr::from((back.ip, 15021))),
    ];
    for (from, to) in closed {
        refused(from, to).map_err(|e| anyhow::anyhow!(e))?;
    }
    // The kubelet probes the sidecar in plaintext, through the redirect.
    let readiness = SocketAddr::from((back.ip, ports::PROXY_READINESS.number));
    let probed = old
        .netns()?
        .run(|| http_get(readiness, "/healthz/ready"))??;
    anyhow::ensure!(probed.0 == 200, "{readiness} from old: {probed:?}");
    for (pid, before) in sidecar_pids.into_iter().zip(fds_before) {
        let after = open_fds(pid);
        anyhow::ensure!(
            after <= before + 64,
            "sidecar {pid}: {before} file descriptors before, {after} after"
        );
    }
    Ok(())
}

/// HTTP through front's sidecar: HTTP/1.1 keep-alive and chunked, gRPC over
/// HTTP/2 with trailers, an upgrade, a server-first protocol without a
/// stall, upstream connection reuse, and request metrics with identities.
fn check_http(
    front: &TestPod,
    back: &TestPod,
    old: &TestPod,
    back_http: &std::sync::atomic::AtomicUsize,
) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering;

    let vip_http = SocketAddr::from((BACK_VIP, 80));
    let back_ip_http = SocketAddr::from((back.ip, HTTP_PORT));
    let (answers, _) = eventually(
        "front -> back over HTTP/1.1 (VIP)",
        Duration::from_secs(10),
        || {
            l7::http1(
                front,
                vip_http,
                &["/hello", "/chunked", "/hello", "/missing"],
            )
            .map_err(|e| format!("{e:#}"))
        },
    );
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    anyhow::ensure!(statuses == [200, 200, 200, 404], "statuses {statuses:?}");
    anyhow::ensure!(
        answers[0].body == "hello from back over HTTP/1.1\n",
        "body {:?}",
        answers[0].body
    );
    let chunked = (0..5).map(|i| format!("part {i}\n")).collect::<String>();
    anyhow::ensure!(
        answers[1].body == chunked,
        "chunked body {:?}",
        answers[1].body
    );

    // gRPC (HTTP/2 prior knowledge) on the port declared `grpc`.
    let grpc = l7::grpc(front, SocketAddr::from((BACK_VIP, 9090)))?;
    anyhow::ensure!(grpc.status == 200, "gRPC status {}", grpc.status);
    let trailers = grpc.trailers.unwrap_or_default();
    anyhow::ensure!(
        trailers.get("grpc-status").is_some_and(|v| v == "0")
            && trailers
                .get("grpc-message")
                .is_some_and(|v| v == "got 10 bytes"),
        "gRPC trailers {trailers:?}"
    );

    // An upgrade (what WebSocket does) by pod IP, where nothing is declared.
    l7::upgrade(front, back_ip_http)?;

    // A server-first protocol, declared nowhere: its greeting must not wait
    // for the client (the sniffing timeout is 5 s).
    for to in [
        SocketAddr::from((back.ip, GREETING_PORT)),
        SocketAddr::from((BACK_VIP, 25)),
    ] {
        let took = l7::greeting(front, to)?;
        anyhow::ensure!(
            took < Duration::from_secs(1),
            "the greeting from {to} took {took:?}"
        );
    }

    // Upstream reuse: three client connections, one request each, reach
    // back's application over at most one new connection.
    let before = back_http.load(Ordering::SeqCst);
    for _ in 0..3 {
        let answers = l7::http1(front, back_ip_http, &["/hello"])?;
        anyhow::ensure!(answers[0].status == 200, "status {}", answers[0].status);
    }
    let opened = back_http.load(Ordering::SeqCst) - before;
    anyhow::ensure!(opened <= 1, "3 client connections opened {opened} upstream");

    // Outside the mesh, both ways: plaintext HTTP, no identities.
    let to_old = SocketAddr::from((old.ip, HTTP_PORT));
    let answers = l7::http1(front, to_old, &["/hello"])?;
    anyhow::ensure!(
        answers[0].body == "hello from old over HTTP/1.1\n",
        "{answers:?}"
    );
    let answers = l7::http1(old, back_ip_http, &["/hello"])?;
    anyhow::ensure!(answers[0].status == 200, "old -> back: {answers:?}");

    // Request metrics on front's sidecar, with both identities.
    let metrics = l7::http1(
        front,
        SocketAddr::from(([127, 0, 0, 1], 15020)),
        &["/metrics"],
    )?
    .remove(0)
    .body;
    let mesh = "direction=\"outbound\",source_workload=\"front\",source_namespace=\"shop\",\
        source_principal=\"spiffe://cluster.local/ns/shop/sa/front\",destination_workload=\"back\",\
        destination_namespace=\"shop\",destination_principal=\"spiffe://cluster.local/ns/shop/sa/back\",\
        mtls=\"true\"";
    let ok = l7::sample_sum(
        &metrics,
        &format!("braid_requests_total{{{mesh},route=\"\",response_code=\"200\"}}"),
    );
    anyhow::ensure!(ok >= 7.0, "200s front -> back: {ok}\n{metrics}");
    let missing = l7::sample_sum(
        &metrics,
        &format!("braid_requests_total{{{mesh},route=\"\",response_code=\"404\"}}"),
    );
    anyhow::ensure!(missing == 1.0, "404s front -> back: {missing}\n{metrics}");
    let timed = l7::sample_sum(
        &metrics,
        &format!("braid_request_duration_seconds_count{{{mesh},route=\"\",response_code=\"200\"}}"),
    );
    anyhow::ensure!(timed == ok, "durations counted {timed} of {ok}");
    let plain = "destination_workload=\"old\",destination_namespace=\"legacy\"";
    anyhow::ensure!(
        metrics
            .lines()
            .any(|l| l.starts_with("braid_requests_total")
                && l.contains(plain)
                && l.contains("mtls=\"false\"")),
        "a plaintext series to old:\n{metrics}"
    );
    Ok(())
}

/// front's sidecar logs every request as one JSON object.
fn check_access_log(log: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(log)?;
    let found = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["target"] == "braid::access" && v["fields"]["message"] == "request")
        .any(|v| {
            let f = &v["fields"];
            f["path"] == "/hello"
                && f["status"] == 200
                && f["method"] == "GET"
                && f["src.principal"] == "spiffe://cluster.local/ns/shop/sa/front"
                && f["dst.principal"] == "spiffe://cluster.local/ns/shop/sa/back"
                && f["mtls"] == true
        });
    anyhow::ensure!(
        found,
        "no JSON request line for GET /hello in {}",
        log.display()
    );
    Ok(())
}
