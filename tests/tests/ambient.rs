//! Ambient mode end to end, on a real network-namespace "cluster" (DESIGN
//! §7, tier 3): `braid-control`, and per node a `braid-proxy ztunnel` and a
//! `braid-cni agent`, as separate processes; pods as network namespaces;
//! real iptables capture installed by the agent; pods announced by running
//! the `braid-cni` plugin binary as a container runtime does.
//!
//! ```text
//! node-a: client (shop, ambient)   web (shop, ambient, echo :8080, Service web 198.19.0.10:80)
//! node-b: api (inventory, ambient, echo :9090)   legacy (legacy, mode none, echo :7070)
//! ```
//!
//! Steps, each asserting what an application or operator would see:
//!
//! 0. CNI ADD captures the ambient pods (ztunnel listeners in the pod), not
//!    the mode-none pod.
//! 1. client → web through the Service VIP, → api on the other node, →
//!    legacy (not meshed, passthrough) all echo.
//! 2. Ambient traffic is tunnelled (the destination pod holds an HBONE
//!    connection on :15008 from the client's IP); a DENY by source namespace
//!    refuses the client but not plaintext legacy; an ALLOW by SPIFFE
//!    principal and port admits only that identity on that port.
//! 3. Plaintext legacy → api works under PERMISSIVE, is refused under
//!    STRICT while mTLS client → api keeps working. A `CONNECT` to a port a
//!    proxy binds is refused (`400`), and no path connects a ztunnel to
//!    itself (its file descriptors stay put). Then (3e) a waypoint, a
//!    `braid-waypoint` Gateway, in front of ambient pods: ambient →
//!    waypoint → ambient and sidecar → waypoint → ambient apply the
//!    Service's HTTPRoute at the waypoint (a header match, an 80/20
//!    split); a direct call bypassing the waypoint is refused.
//! 4. node-b's ztunnel is SIGKILLed (traffic to api fails closed) and started
//!    again; the agent replays the pod and traffic recovers.
//! 5. CNI DEL releases a pod: listeners gone, its traffic no longer captured.
//! 6. A pod labelled `braid.dev/mode: none` is released; removing the label
//!    captures it again, in place.
//! 7. The `orders` namespace switches sidecar → ambient → sidecar while the
//!    ambient client loops connections to its pod: none fails, a running
//!    sidecar keeps serving until the pod restarts, and after each restart
//!    the pod's :15008 belongs to the proxy its mode asks for.
//! 8. A running pod in mode none (`late`, its own namespace, added now)
//!    whose namespace turns ambient is captured in place, without a restart
//!    or any CNI call, while an ambient pod loops connections to it: none
//!    fails, and traffic to it then arrives over HBONE with the caller's
//!    identity.
//! 9. A running pod the agent never saw (`early`, no CNI ADD) is adopted
//!    when its namespace turns ambient: found by its address, captured with
//!    no connection failing either way; the runtime's later ADD takes the
//!    capture over without breaking an open tunnel, and its DEL releases it
//!    for good (not adopted again while the control plane still lists it).
//!
//! Needs root (namespaces, iptables): skipped with a message otherwise, unless
//! `CI=true`. The test first runs `cargo build -p braid-control -p
//! braid-proxy -p braid-cni --bins` (dev profile, this test's target
//! directory) once.
//!
//! ```sh
//! cargo test -p braid-tests --test ambient -- --nocapture
//! ```
//!
//! `BRAID_LOG` sets the children's log filter (default: debug for the
//! ztunnels and agents), `BRAID_E2E_KEEP=1` keeps the temporary directory
//! (configuration, logs), `BRAID_E2E_BIN_DIR=DIR` uses prebuilt binaries.
//!
//! The steps share one set of processes, so they run in one test function,
//! in order; each is bounded (no step waits more than ~30 s).

#[path = "ambient/support.rs"]
mod support;

#[path = "common/http_app.rs"]
mod http_app;
#[path = "ambient/waypoint.rs"]
mod waypoint;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use braid_capture::testing::{TestPod, require_root};
use support::{
    Cluster, EARLY, EchoConn, EchoServer, HboneProbe, LATE, Looper, PODS, PodDef, ProbeRefused,
    WEB_VIP, allow_principal, base_config, deny_from_namespace, echo, established, eventually,
    has_ip, http_get, listener_pid, listening_ports, namespace_yaml, namespaces_yaml, open_fds,
    parse_ss, peer_authentication, pod_def, pod_document, refused,
};

/// First traffic: certificates, xDS and the hand-off all have to happen.
const FIRST_TRAFFIC: Duration = Duration::from_secs(25);
/// A policy edit in the configuration directory reaching the ztunnels.
const POLICY_PROPAGATION: Duration = Duration::from_secs(5);
/// A restarted ztunnel serving again (agent backoff ≤ 5 s, then replay).
const RESTART: Duration = Duration::from_secs(30);

const DENY_FILE: &str = "inventory-deny-shop.yaml";
const ALLOW_FILE: &str = "inventory-allow-client.yaml";
const CLIENT_ID: &str = "spiffe://cluster.local/ns/shop/sa/client";
const STRICT_FILE: &str = "inventory-strict.yaml";
const LATE_NAMESPACE_FILE: &str = "late-namespace.yaml";
const LATE_POD_FILE: &str = "late-pod.yaml";
const LATE_ALLOW_FILE: &str = "late-allow-api.yaml";
const EARLY_NAMESPACE_FILE: &str = "early-namespace.yaml";
const EARLY_POD_FILE: &str = "early-pod.yaml";
const API_ID: &str = "spiffe://cluster.local/ns/inventory/sa/api";

#[test]
fn ambient_mesh_end_to_end() {
    if !require_root() {
        return;
    }
    let started = Instant::now();
    let mut c = Cluster::start();
    step("cluster up", started);

    let t = Instant::now();
    pods_are_captured(&mut c);
    step("0: ambient pods captured, legacy not", t);

    let t = Instant::now();
    traffic_flows(&mut c);
    step("1: client -> web VIP, api, legacy echo", t);

    let t = Instant::now();
    traffic_is_tunnelled(&c);
    step("2a: ambient traffic arrives over HBONE (:15008)", t);

    let t = Instant::now();
    authorization_uses_the_peer_identity(&mut c);
    step("2b: DENY by source namespace", t);

    let t = Instant::now();
    allow_by_principal_and_port(&mut c);
    step("2c: ALLOW by principal and port", t);

    let t = Instant::now();
    strict_refuses_plaintext(&mut c);
    step("3: PERMISSIVE / STRICT", t);

    let t = Instant::now();
    telemetry_shows_identities(&c);
    step("3b: metrics, access log, config dump", t);
    report_memory(&mut c);

    let t = Instant::now();
    connect_to_own_proxy_port_is_refused(&mut c);
    step("3d: no path connects a ztunnel to itself", t);

    let t = Instant::now();
    sidecar_and_ambient_pods_talk_over_hbone(&mut c);
    step("3c: sidecar <-> ambient interop", t);

    let t = Instant::now();
    waypoint::through_a_waypoint(&mut c);
    step("3e: ambient and sidecar -> waypoint -> ambient", t);

    let t = Instant::now();
    ztunnel_restart_recovers(&mut c);
    step("4: ztunnel restart", t);

    let t = Instant::now();
    cni_del_releases_the_pod(&mut c);
    step("5: CNI DEL", t);

    let t = Instant::now();
    a_label_switch_to_none_releases_the_pod(&mut c);
    step("6: label switch to none", t);

    let t = Instant::now();
    a_namespace_switches_modes_under_load(&mut c);
    step("7: orders sidecar -> ambient -> sidecar under load", t);

    let t = Instant::now();
    a_running_pod_turns_ambient_in_place(&mut c);
    step("8: late none -> ambient in place, under load", t);

    let t = Instant::now();
    a_pod_unknown_to_the_agent_is_adopted(&mut c);
    step(
        "9: a pod the agent never saw is adopted, then ADD and DEL",
        t,
    );

    c.assert_processes();
    drop(c);
    step("total", started);

    // Test tier 4: the same traffic matrix with the configuration applied to
    // a real API server and braid-control watching it (`--source kube`).
    let Some(api) = support::kube::ApiServer::from_env() else {
        eprintln!(
            "ambient e2e: no test API server (BRAID_TEST_KUBECONFIG); skipping the --source kube run"
        );
        return;
    };
    let started = Instant::now();
    let mut c = Cluster::start_with(Some(api));
    step("kube: cluster up", started);
    let t = Instant::now();
    pods_are_captured(&mut c);
    traffic_flows(&mut c);
    traffic_is_tunnelled(&c);
    step("kube 0-2a: captured, traffic, HBONE", t);
    let t = Instant::now();
    authorization_uses_the_peer_identity(&mut c);
    allow_by_principal_and_port(&mut c);
    strict_refuses_plaintext(&mut c);
    step("kube 2b-3: DENY, ALLOW, PERMISSIVE / STRICT", t);
    let t = Instant::now();
    sidecar_and_ambient_pods_talk_over_hbone(&mut c);
    step("kube 3c: sidecar <-> ambient interop", t);
    let t = Instant::now();
    a_namespace_switches_modes_under_load(&mut c);
    step("kube 7: orders sidecar -> ambient -> sidecar under load", t);
    let t = Instant::now();
    a_running_pod_turns_ambient_in_place(&mut c);
    step("kube 8: late none -> ambient in place, under load", t);
    let t = Instant::now();
    a_pod_unknown_to_the_agent_is_adopted(&mut c);
    step("kube 9: a pod the agent never saw is adopted", t);
    c.assert_processes();
    if let Some(api) = &c.kube {
        api.clean_up();
    }
    drop(c);
    step("kube total", started);
}

fn step(name: &str, since: Instant) {
    eprintln!("ambient e2e: {name} ({:?})", since.elapsed());
}

/// The agent handed every ambient pod to its node's ztunnel, which listens
/// on 15001/15006/15008 inside the pod; the mode-none pod is left alone.
fn pods_are_captured(c: &mut Cluster) {
    for def in &PODS {
        let pod = c.pod(def.name).clone();
        if def.ambient {
            eventually(
                &format!("ztunnel listeners in pod {}", def.name),
                FIRST_TRAFFIC,
                || {
                    c.assert_processes();
                    let ports = listening_ports(&pod);
                    [15001, 15006, 15008]
                        .iter()
                        .all(|p| ports.contains(p))
                        .then_some(())
                        .ok_or_else(|| format!("listening ports in {}: {ports:?}", def.name))
                },
            );
        } else {
            let ports = listening_ports(&pod);
            assert!(
                !ports.iter().any(|p| [15001, 15006, 15008].contains(p)),
                "mode-none pod {} must not be captured; listening: {ports:?}",
                def.name
            );
        }
    }
}

/// Step 1: what the client application sees.
fn traffic_flows(c: &mut Cluster) {
    let client = c.pod("client").clone();
    let api = pod_def("api").echo_addr();
    let legacy = pod_def("legacy").echo_addr();
    for (what, to) in [
        ("client -> web via the Service VIP", WEB_VIP),
        ("client -> api (other node, pod IP)", api),
        ("client -> legacy (not meshed, passthrough)", legacy),
    ] {
        let (_, took) = eventually(what, FIRST_TRAFFIC, || {
            c.assert_processes();
            echo(&client, to).map_err(|e| e.to_string())
        });
        eprintln!("ambient e2e:   {what}: echoed after {took:?}");
        // Not a fluke: several fresh connections in a row.
        for i in 0..5 {
            echo(&client, to).unwrap_or_else(|e| panic!("{what}, connection {i}: {e}"));
        }
    }
}

/// Step 2a: while a connection between two ambient pods is open, the
/// destination pod has an established connection on its HBONE port 15008
/// from the source pod's own IP; and the destination application never sees
/// a plaintext connection from the source pod's address.
fn traffic_is_tunnelled(c: &Cluster) {
    let client_def = pod_def("client");
    let client = c.pod("client");
    for (dest, to) in [("web", WEB_VIP), ("api", pod_def("api").echo_addr())] {
        let dest_pod = c.pod(dest);
        let app_port = pod_def(dest).port.expect("echo port");
        let mut conn =
            EchoConn::connect(client, to).unwrap_or_else(|e| panic!("client -> {dest}: {e}"));
        conn.roundtrip()
            .unwrap_or_else(|e| panic!("client -> {dest}: {e}"));
        eventually(
            &format!("an HBONE connection from client into {dest}'s :15008"),
            Duration::from_secs(5),
            || {
                let conns = established(dest_pod, 15008);
                conns
                    .iter()
                    .any(|(_, peer)| has_ip(peer, client_def.ip))
                    .then_some(())
                    .ok_or_else(|| format!("established on :15008 in {dest}: {conns:?}"))
            },
        );
        // The echo server's side of our connection: its peer must not be
        // the client's own (captured) socket address, which is what a
        // direct, untunnelled connection would look like.
        if let Some(local) = conn.local_addr() {
            let app = established(dest_pod, app_port);
            assert!(
                !app.iter().any(|(_, peer)| peer == &local.to_string()),
                "{dest}:{app_port} sees the client's socket {local} directly: {app:?}"
            );
        }
        conn.roundtrip()
            .unwrap_or_else(|e| panic!("client -> {dest} after inspection: {e}"));
    }
}

/// Step 2b: a DENY policy on the source *namespace* can only match an
/// authenticated identity: the ambient client (mTLS, spiffe://…/ns/shop/…)
/// is refused, the plaintext legacy pod is not, and removing the policy
/// restores access.
fn authorization_uses_the_peer_identity(c: &mut Cluster) {
    let client = c.pod("client").clone();
    let legacy = c.pod("legacy").clone();
    let api = pod_def("api").echo_addr();
    echo(&legacy, api).unwrap_or_else(|e| panic!("legacy -> api before the policy: {e}"));

    c.write_config(
        DENY_FILE,
        &deny_from_namespace("inventory", "deny-shop", "shop"),
    );
    let (how, took) = eventually(
        "client -> api refused by the DENY policy",
        POLICY_PROPAGATION,
        || {
            c.assert_processes();
            refused(&client, api).map_err(|e| format!("{e}; config errors: {}", c.config_errors()))
        },
    );
    eprintln!("ambient e2e:   DENY applied after {took:?} ({how})");
    // Stays refused, and only for the identity the policy names.
    for i in 0..3 {
        refused(&client, api).unwrap_or_else(|e| panic!("client -> api, attempt {i}: {e}"));
    }
    echo(&legacy, api)
        .unwrap_or_else(|e| panic!("legacy -> api (plaintext, no identity) under the DENY: {e}"));
    echo(&client, WEB_VIP)
        .unwrap_or_else(|e| panic!("client -> web (other namespace's pods) under the DENY: {e}"));

    c.remove_config(DENY_FILE);
    let (_, took) = eventually(
        "client -> api allowed again after removing the policy",
        POLICY_PROPAGATION,
        || echo(&client, api).map_err(|e| e.to_string()),
    );
    eprintln!("ambient e2e:   DENY removed after {took:?}");
}

/// Step 2c: an ALLOW policy naming one SPIFFE principal and one port is
/// exclusive: the client's identity reaches api:9090, web (same namespace,
/// other service account) and legacy (plaintext, no identity) are refused;
/// moving the rule to another port refuses the client too.
fn allow_by_principal_and_port(c: &mut Cluster) {
    let client = c.pod("client").clone();
    let web = c.pod("web").clone();
    let legacy = c.pod("legacy").clone();
    let api = pod_def("api").echo_addr();
    echo(&web, api).unwrap_or_else(|e| panic!("web -> api before the policy: {e}"));

    c.write_config(
        ALLOW_FILE,
        &allow_principal("inventory", "allow-client", CLIENT_ID, 9090),
    );
    let (how, took) = eventually(
        "web -> api refused by the ALLOW policy for the client only",
        POLICY_PROPAGATION,
        || {
            c.assert_processes();
            refused(&web, api).map_err(|e| format!("{e}; config errors: {}", c.config_errors()))
        },
    );
    eprintln!("ambient e2e:   ALLOW applied after {took:?} ({how})");
    echo(&client, api).unwrap_or_else(|e| panic!("client -> api, the allowed principal: {e}"));
    refused(&legacy, api)
        .unwrap_or_else(|e| panic!("legacy -> api (no identity) under an ALLOW policy: {e}"));

    c.write_config(
        ALLOW_FILE,
        &allow_principal("inventory", "allow-client", CLIENT_ID, 9091),
    );
    eventually(
        "client -> api:9090 refused once the rule allows only port 9091",
        POLICY_PROPAGATION,
        || refused(&client, api),
    );

    c.remove_config(ALLOW_FILE);
    for (who, pod) in [("client", &client), ("web", &web), ("legacy", &legacy)] {
        eventually(
            &format!("{who} -> api allowed again after removing the policy"),
            POLICY_PROPAGATION,
            || echo(pod, api).map_err(|e| e.to_string()),
        );
    }
}

/// Step 3: plaintext into an ambient pod is accepted under the default
/// PERMISSIVE mode and refused under STRICT, while mTLS keeps working.
fn strict_refuses_plaintext(c: &mut Cluster) {
    let client = c.pod("client").clone();
    let legacy = c.pod("legacy").clone();
    let api = pod_def("api").echo_addr();
    echo(&legacy, api).unwrap_or_else(|e| panic!("legacy -> api under PERMISSIVE: {e}"));

    c.write_config(
        STRICT_FILE,
        &peer_authentication("inventory", "strict", "STRICT"),
    );
    let (how, took) = eventually(
        "legacy -> api (plaintext) refused under STRICT",
        POLICY_PROPAGATION,
        || {
            c.assert_processes();
            refused(&legacy, api).map_err(|e| format!("{e}; config errors: {}", c.config_errors()))
        },
    );
    eprintln!("ambient e2e:   STRICT applied after {took:?} ({how})");
    for i in 0..3 {
        echo(&client, api)
            .unwrap_or_else(|e| panic!("client -> api (mTLS) under STRICT, attempt {i}: {e}"));
        refused(&legacy, api)
            .unwrap_or_else(|e| panic!("legacy -> api under STRICT, attempt {i}: {e}"));
    }
    // Only the inventory namespace is strict.
    echo(&client, pod_def("legacy").echo_addr())
        .unwrap_or_else(|e| panic!("client -> legacy under inventory's STRICT: {e}"));

    c.remove_config(STRICT_FILE);
    let (_, took) = eventually(
        "legacy -> api accepted again after removing STRICT",
        POLICY_PROPAGATION,
        || echo(&legacy, api).map_err(|e| e.to_string()),
    );
    eprintln!("ambient e2e:   STRICT removed after {took:?}");
}

/// Step 4: node-b's ztunnel crashes (SIGKILL) and is started again with the
/// same arguments; the agent replays its pods and traffic recovers.
/// After the steps above (mTLS client → api, plaintext legacy → api, and
/// STRICT refusals), the ztunnels' own endpoints show what happened: both
/// identities and mTLS on the tunnelled series, refusals counted, the
/// access log naming both sides, the config dump listing the pods.
fn telemetry_shows_identities(c: &Cluster) {
    let node = |name: &str| {
        c.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("node {name}"))
    };
    let (node_a, node_b) = (node("node-a"), node("node-b"));
    let api = API_ID;
    let series = |direction: &str, source: &str, destination: &str, mtls: bool| {
        format!(
            "direction=\"{direction}\",{source},destination_workload=\"api\",\
             destination_namespace=\"inventory\",destination_principal=\"{destination}\",\
             mtls=\"{mtls}\"}}"
        )
    };
    let get = |addr, path| match http_get(addr, path) {
        Ok((200, body)) => body,
        other => panic!("GET {path} on {addr}: {other:?}"),
    };

    // node-b served client → api inbound over mTLS, with both identities.
    let metrics = get(node_b.admin, "/metrics");
    let inbound = series(
        "inbound",
        &format!(
            "source_workload=\"unknown\",source_namespace=\"shop\",source_principal=\"{CLIENT_ID}\""
        ),
        api,
        true,
    );
    for counter in [
        "braid_tcp_connections_opened_total",
        "braid_tcp_connections_closed_total",
    ] {
        let value = counter_value(&metrics, &format!("{counter}{{{inbound}"));
        assert!(
            value >= 1,
            "{counter} for client → api over mTLS is {value}:\n{metrics}"
        );
    }
    assert!(
        counter_value(&metrics, &format!("braid_tcp_sent_bytes_total{{{inbound}")) > 0,
        "bytes counted:\n{metrics}"
    );
    // legacy → api in plaintext was refused under STRICT and counted so.
    let refused = metrics
        .lines()
        .filter(|l| l.starts_with("braid_tcp_connections_denied_total{direction=\"inbound\""))
        .filter(|l| l.contains("source_workload=\"legacy\"") && l.contains("mtls=\"false\""))
        .count();
    assert!(refused >= 1, "a refused plaintext series:\n{metrics}");

    // node-a sent it: the outbound series names the client workload.
    let metrics = get(node_a.admin, "/metrics");
    let outbound = series(
        "outbound",
        &format!(
            "source_workload=\"client\",source_namespace=\"shop\",source_principal=\"{CLIENT_ID}\""
        ),
        api,
        true,
    );
    let opened = counter_value(
        &metrics,
        &format!("braid_tcp_connections_opened_total{{{outbound}"),
    );
    assert!(opened >= 1, "client → api outbound over mTLS:\n{metrics}");

    // The access log has a line with both identities.
    let log = std::fs::read_to_string(c.root.join("ztunnel-node-b.log")).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("braid::access") && l.contains(CLIENT_ID) && l.contains(api)),
        "an access-log line naming both identities in ztunnel-node-b.log"
    );

    // The config dump lists the captured pods and the certificates held.
    let dump: serde_json::Value =
        serde_json::from_str(&get(node_b.admin, "/config_dump")).expect("config dump is JSON");
    let pods = dump["captured_pods"].to_string();
    assert!(pods.contains("inventory/api"), "captured pods: {pods}");
    let certs = dump["certificates"].to_string();
    assert!(certs.contains(api), "certificates: {certs}");
    assert_eq!(get(node_b.admin, "/healthz/ready").trim(), "ready");
}

/// Step 3d: no path makes a ztunnel connect to itself (a loop took ~19 000
/// file descriptors in 2 s). A mesh identity's `CONNECT` to any port a
/// proxy binds is answered `400` with the reason and counted denied, while
/// the app port still tunnels; plaintext straight at a capture port, and an
/// app dialling its own proxy's ports (directly or through its ztunnel to
/// another pod's), are closed; neither ztunnel's descriptors grow.
fn connect_to_own_proxy_port_is_refused(c: &mut Cluster) {
    let (client, legacy) = (&c.pod("client").clone(), &c.pod("legacy").clone());
    let (client_ip, api_ip) = (pod_def("client").ip, pod_def("api").ip);
    let pids = ["node-a", "node-b"].map(|n| c.ztunnel_pid(n).expect("ztunnel running"));
    let fds_before = pids.map(open_fds);
    let node_b = c
        .nodes
        .iter()
        .find(|n| n.name == "node-b")
        .expect("node-b")
        .admin;
    let denied = || {
        let (_, metrics) = http_get(node_b, "/metrics").expect("node-b /metrics");
        metrics
            .lines()
            .filter(|l| l.starts_with("braid_tcp_connections_denied_total{direction=\"inbound\""))
            .filter(|l| l.contains(CLIENT_ID))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let denied_before = denied();

    let probe = HboneProbe::new(&c.root.join("ca"), "shop", "client");
    let proxy = SocketAddr::from((api_ip, 15008));
    probe
        .connect(legacy, proxy, API_ID, pod_def("api").echo_addr())
        .unwrap_or_else(|e| panic!("CONNECT to api's app port: {e:?}"));
    let own_ports: Vec<u16> = braid_model::catalog::ports::ALL
        .iter()
        .map(|p| p.number)
        .filter(|&p| braid_model::catalog::ports::is_proxy_port(p))
        .collect();
    for &port in &own_ports {
        let target = SocketAddr::from((api_ip, port));
        match probe.connect(legacy, proxy, API_ID, target) {
            Err(ProbeRefused {
                status: Some(400),
                message,
            }) if message.contains(&format!("port {port} is reserved for the mesh's proxies")) => {}
            other => panic!("CONNECT {target} at api's ztunnel: {other:?}"),
        }
    }
    let closed = [
        (legacy, SocketAddr::from((api_ip, 15006))),
        (legacy, SocketAddr::from((api_ip, 15001))),
        (client, SocketAddr::from(([127, 0, 0, 1], 15001))),
        (client, SocketAddr::from((client_ip, 15001))),
        (client, SocketAddr::from((client_ip, 15006))),
        (client, SocketAddr::from((api_ip, 15001))),
    ];
    for (from, to) in closed {
        refused(from, to).unwrap_or_else(|e| panic!("{e}"));
    }
    for (pid, before) in pids.into_iter().zip(fds_before) {
        let after = open_fds(pid);
        assert!(
            after <= before + 64,
            "ztunnel {pid}: {before} file descriptors before, {after} after"
        );
    }
    let counted = denied() - denied_before;
    assert!(
        counted >= own_ports.len() as u64,
        "node-b counted {counted} of {} refused CONNECTs as denied",
        own_ports.len()
    );
    let log = std::fs::read_to_string(c.root.join("ztunnel-node-b.log")).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("braid::access") && l.contains("reserved for the mesh's proxies")),
        "an access-log line with the reason in ztunnel-node-b.log"
    );
    c.assert_processes();
}

/// A pod whose `braid.dev/mode` label becomes `none` is released by its
/// node's agent without any CNI call: the ztunnel's listeners and the
/// redirect rules leave the pod, and its traffic flows uncaptured.
fn a_label_switch_to_none_releases_the_pod(c: &mut Cluster) {
    let (_, pods) = base_config()
        .into_iter()
        .find(|(file, _)| *file == "pods.yaml")
        .expect("the fixture has pods.yaml");
    let labelled = "  labels:\n    app: web\n";
    assert!(pods.contains(labelled), "web's labels in the fixture");
    let switched = pods.replace(
        labelled,
        "  labels:\n    app: web\n    braid.dev/mode: none\n",
    );
    c.write_config("pods.yaml", &switched);

    let web = c.pod("web").clone();
    eventually(
        "the agent to release web after its label changed",
        Duration::from_secs(10),
        || {
            let ports = listening_ports(&web);
            let rules = web
                .exec("iptables-save", ["-t", "nat"])
                .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
                .unwrap_or_default();
            (!ports.iter().any(|p| [15001, 15006, 15008].contains(p)) && !rules.contains("BRAID_"))
                .then_some(())
                .ok_or_else(|| format!("web still listens on {ports:?} or has BRAID_ rules"))
        },
    );
    let legacy_addr = pod_def("legacy").echo_addr();
    let mut conn = EchoConn::connect(&web, legacy_addr)
        .unwrap_or_else(|e| panic!("web -> legacy after the switch: {e}"));
    conn.roundtrip()
        .unwrap_or_else(|e| panic!("web -> legacy after the switch: {e}"));
    let local = conn.local_addr().expect("local address").to_string();
    let seen = established(c.pod("legacy"), 7070);
    assert!(
        seen.iter().any(|(_, peer)| *peer == local),
        "legacy must see web's own socket {local} (uncaptured): {seen:?}"
    );
    // Removing the label again captures the running pod in place: the
    // agent kept its record, uncaptured.
    c.write_config("pods.yaml", &pods);
    let ztunnel = c.ztunnel_pid("node-a");
    let (_, took) = eventually(
        "the agent to capture web again after its label was removed",
        Duration::from_secs(10),
        || match listener_pid(&web, 15008) {
            serving if serving.is_some() && serving == ztunnel => Ok(()),
            serving => Err(format!(":15008 in web belongs to {serving:?}")),
        },
    );
    eprintln!("ambient e2e:   web captured again after {took:?}");
    eventually(
        "web -> api after web was captured again",
        Duration::from_secs(10),
        || echo(&web, pod_def("api").echo_addr()).map_err(|e| e.to_string()),
    );
}

/// Step 8: pod `late` starts in mode none (its namespace says so), is
/// added with CNI ADD and served in plaintext. Its namespace then turns
/// ambient while `api` (ambient, the other node) loops connections to it
/// and it loops connections to api: node-a's agent captures it in place,
/// with no restart and no CNI call, and no connection fails either way
/// (the callers' HBONE dials wait out the moment between their switch and
/// the capture; late's rules come only once the ztunnel listens in it).
/// Afterwards api's connections arrive on late's :15008, and an ALLOW policy for api's SPIFFE identity
/// admits api but refuses plaintext legacy: late's side sees who calls.
fn a_running_pod_turns_ambient_in_place(c: &mut Cluster) {
    let late = c.add_extra_pod(&LATE);
    let server = EchoServer::start(&late, LATE.port.expect("late's echo port"));
    c.echo.push(server);
    c.write_config(LATE_NAMESPACE_FILE, &namespace_yaml(LATE.namespace, "none"));
    c.write_config(LATE_POD_FILE, &pod_document(&LATE));
    // The runtime retries an ADD until the control plane knows the pod.
    eventually("CNI ADD of late", Duration::from_secs(15), || {
        c.cni_add_extra(&LATE)
    });
    let ports = listening_ports(&late);
    assert!(
        !ports.iter().any(|p| [15001, 15006, 15008].contains(p)),
        "late (mode none) must not be captured yet; listening: {ports:?}"
    );
    let api = c.pod("api").clone();
    let (to_late, to_api) = (LATE.echo_addr(), pod_def("api").echo_addr());
    eventually("api <-> late (mode none)", Duration::from_secs(10), || {
        echo(&api, to_late).map_err(|e| e.to_string())?;
        echo(&late, to_api).map_err(|e| e.to_string())
    });

    let took = turn_ambient_under_load(c, &LATE, LATE_NAMESPACE_FILE);
    eprintln!("ambient e2e:   late captured in place {took:?} after its namespace turned ambient");
    hbone_from_api(&api, &LATE, &late);

    let legacy = c.pod("legacy").clone();
    c.write_config(
        LATE_ALLOW_FILE,
        &allow_principal(LATE.namespace, "allow-api", API_ID, 8082),
    );
    eventually(
        "legacy -> late refused by the ALLOW policy for api's identity",
        POLICY_PROPAGATION,
        || {
            refused(&legacy, to_late)
                .map_err(|e| format!("{e}; config errors: {}", c.config_errors()))
        },
    );
    echo(&api, to_late).unwrap_or_else(|e| panic!("api -> late, the allowed principal: {e}"));
    c.remove_config(LATE_ALLOW_FILE);
}

/// Step 9: pod `early` runs before the agent knows of it (no CNI ADD, as
/// for a pod started before Braid was installed on the node). When its
/// namespace turns ambient, node-a's agent finds its network namespace by
/// its address and captures it, while `api` loops connections to it and it
/// loops connections to api: none fails. The runtime's ADD afterwards takes
/// the capture over (a tunnel open through it keeps working, same
/// listeners), and its DEL releases the pod.
fn a_pod_unknown_to_the_agent_is_adopted(c: &mut Cluster) {
    let early = c.add_extra_pod(&EARLY);
    let server = EchoServer::start(&early, EARLY.port.expect("early's echo port"));
    c.echo.push(server);
    c.write_config(
        EARLY_NAMESPACE_FILE,
        &namespace_yaml(EARLY.namespace, "none"),
    );
    c.write_config(EARLY_POD_FILE, &pod_document(&EARLY));
    let api = c.pod("api").clone();
    let (to_early, to_api) = (EARLY.echo_addr(), pod_def("api").echo_addr());
    eventually("api <-> early (mode none)", Duration::from_secs(15), || {
        echo(&api, to_early).map_err(|e| e.to_string())?;
        echo(&early, to_api).map_err(|e| e.to_string())
    });

    let took = turn_ambient_under_load(c, &EARLY, EARLY_NAMESPACE_FILE);
    eprintln!("ambient e2e:   early adopted {took:?} after its namespace turned ambient");

    // A tunnel through the adopted capture survives the runtime's ADD.
    let mut tunnel = hbone_from_api(&api, &EARLY, &early);
    let ztunnel = c.ztunnel_pid("node-a");
    c.cni_extra("ADD", &EARLY)
        .unwrap_or_else(|e| panic!("ADD of the adopted pod: {e}"));
    tunnel
        .roundtrip()
        .unwrap_or_else(|e| panic!("a tunnel opened before the ADD: {e}"));
    assert_eq!(listener_pid(&early, 15008), ztunnel, "still the ztunnel's");
    echo(&early, to_api).unwrap_or_else(|e| panic!("early -> api after the ADD: {e}"));

    drop(tunnel);
    c.cni_extra("DEL", &EARLY)
        .unwrap_or_else(|e| panic!("DEL of the adopted pod: {e}"));
    let released = || {
        let ports = listening_ports(&early);
        match ports.iter().any(|p| [15001, 15006, 15008].contains(p)) {
            false => Ok(()),
            true => Err(format!("listening in early: {ports:?}")),
        }
    };
    eventually(
        "early released by its DEL",
        Duration::from_secs(5),
        released,
    );
    // A deleted pod the control plane still lists is not adopted again,
    // whatever changes meanwhile (here its mode, twice).
    for mode in ["none", "ambient"] {
        c.write_config(EARLY_NAMESPACE_FILE, &namespace_yaml(EARLY.namespace, mode));
        std::thread::sleep(Duration::from_millis(500));
    }
    released().unwrap_or_else(|e| panic!("early adopted again after its DEL: {e}"));
    c.remove_config(EARLY_POD_FILE);
}

/// Switches `def`'s namespace (its file `ns_file`) to ambient while `api`
/// loops connections to the pod and the pod loops connections to api;
/// waits until the pod's :15008 belongs to its node's ztunnel and checks
/// that no connection failed either way. Returns how long the capture took.
fn turn_ambient_under_load(c: &Cluster, def: &PodDef, ns_file: &str) -> Duration {
    let (api, pod) = (c.pod("api").clone(), c.pod(def.name).clone());
    let (to_pod, to_api) = (def.echo_addr(), pod_def("api").echo_addr());
    let inbound = Looper::start(&api, to_pod);
    let outbound = Looper::start(&pod, to_api);
    c.write_config(ns_file, &namespace_yaml(def.namespace, "ambient"));
    let ztunnel = c.ztunnel_pid(def.node);
    let (_, took) = eventually(
        &format!("{}'s agent to capture {}", def.node, def.name),
        Duration::from_secs(10),
        || match listener_pid(&pod, 15008) {
            serving if serving.is_some() && serving == ztunnel => Ok(()),
            serving => Err(format!(":15008 in {} belongs to {serving:?}", def.name)),
        },
    );
    // Keep looping while both ztunnels settle on the new mode.
    std::thread::sleep(Duration::from_secs(1));
    let name = def.name;
    expect_no_failures(inbound, &format!("calls to {name} while it is captured"));
    expect_no_failures(
        outbound,
        &format!("{name}'s own calls while it is captured"),
    );
    took
}

/// An open connection from `api` to `def`'s pod that arrived on the pod's
/// :15008, i.e. over HBONE.
fn hbone_from_api(api: &TestPod, def: &PodDef, pod: &TestPod) -> EchoConn {
    let api_ip = pod_def("api").ip;
    eventually(
        &format!("an HBONE connection from api into {}'s :15008", def.name),
        Duration::from_secs(5),
        || {
            let mut conn = EchoConn::connect(api, def.echo_addr()).map_err(|e| e.to_string())?;
            conn.roundtrip().map_err(|e| e.to_string())?;
            let conns = established(pod, 15008);
            if conns.iter().any(|(_, peer)| has_ip(peer, api_ip)) {
                Ok(conn)
            } else {
                Err(format!("established on :15008 in {}: {conns:?}", def.name))
            }
        },
    )
    .0
}

/// A sidecar pod (`orders`, its own proxy) and ambient pods (served by the
/// ztunnels) reach each other over HBONE, each side presenting its own
/// identity; a pod outside the mesh reaches the sidecar pod in plaintext.
fn sidecar_and_ambient_pods_talk_over_hbone(c: &mut Cluster) {
    // The agents run with --sidecar-rules: CNI ADD already installed the
    // sidecar pod's rules (and `init` below leaves them as they are).
    let rules = c
        .pod("orders")
        .exec("iptables-save", ["-t", "nat"])
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        rules.contains("BRAID_OUTPUT") && rules.contains("--to-ports 15001"),
        "the CNI plugin installed the sidecar pod's rules:\n{rules}"
    );
    c.start_sidecar("orders");
    let orders_def = pod_def("orders");
    let (client_def, api_def) = (pod_def("client"), pod_def("api"));
    let orders = c.pod("orders").clone();
    let to_orders = orders_def.echo_addr();

    // ambient client (node-a ztunnel) → sidecar: into the sidecar's :15008.
    let (_, took) = eventually("client -> orders (sidecar)", FIRST_TRAFFIC, || {
        c.assert_processes();
        echo(c.pod("client"), to_orders).map_err(|e| e.to_string())
    });
    eprintln!("ambient e2e:   client -> orders (sidecar) echoed after {took:?}");
    let mut conn = EchoConn::connect(c.pod("client"), to_orders)
        .unwrap_or_else(|e| panic!("client -> orders: {e}"));
    conn.roundtrip()
        .unwrap_or_else(|e| panic!("client -> orders: {e}"));
    let conns = established(&orders, 15008);
    assert!(
        conns.iter().any(|(_, peer)| has_ip(peer, client_def.ip)),
        "the sidecar's :15008 holds the client's tunnel: {conns:?}"
    );
    drop(conn);

    // sidecar → ambient api (node-b ztunnel): into api's :15008 from orders.
    let to_api = api_def.echo_addr();
    let mut conn =
        EchoConn::connect(&orders, to_api).unwrap_or_else(|e| panic!("orders -> api: {e}"));
    conn.roundtrip()
        .unwrap_or_else(|e| panic!("orders -> api: {e}"));
    let conns = established(c.pod("api"), 15008);
    assert!(
        conns.iter().any(|(_, peer)| has_ip(peer, orders_def.ip)),
        "api's :15008 holds the sidecar's tunnel: {conns:?}"
    );
    drop(conn);

    // Outside the mesh → sidecar pod, plaintext under PERMISSIVE.
    echo(c.pod("legacy"), to_orders).unwrap_or_else(|e| panic!("legacy -> orders: {e}"));
}

/// Prints each ztunnel's resident memory, for the record (the bench owns
/// the targets; this only makes the number visible with --nocapture).
fn report_memory(c: &mut Cluster) {
    for node in ["node-a", "node-b"] {
        let rss = c
            .ztunnel(node)
            .pid()
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .map(|l| l.trim_start_matches("VmRSS:").trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        eprintln!("ambient e2e:   {node} ztunnel RSS {rss}");
    }
}

/// The value of the first series starting with `prefix` (0 when absent).
fn counter_value(metrics: &str, prefix: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn ztunnel_restart_recovers(c: &mut Cluster) {
    let client = c.pod("client").clone();
    let legacy = c.pod("legacy").clone();
    let api = pod_def("api").echo_addr();
    echo(&client, api).unwrap_or_else(|e| panic!("client -> api before the restart: {e}"));

    let old = c.ztunnel("node-b").pid();
    c.ztunnel("node-b").kill();
    // Fails closed while api's ztunnel is gone: nothing bypasses it.
    let outage = echo(&client, api);
    assert!(
        outage.is_err(),
        "client -> api echoed while node-b's ztunnel (pid {old:?}) was down"
    );
    let ports = listening_ports(c.pod("api"));
    assert!(
        !ports.contains(&15008),
        "api still listens on 15008 with its ztunnel dead: {ports:?}"
    );

    c.ztunnel("node-b").restart();
    eprintln!(
        "ambient e2e:   node-b ztunnel restarted: pid {old:?} -> {:?}",
        c.ztunnel("node-b").pid()
    );
    let (_, took) = eventually(
        "client -> api after node-b's ztunnel restarted",
        RESTART,
        || {
            c.assert_processes();
            echo(&client, api).map_err(|e| e.to_string())
        },
    );
    eprintln!("ambient e2e:   client -> api recovered after {took:?}");
    // Inbound plaintext capture is back too, and node-a was never affected.
    eventually(
        "legacy -> api after the restart",
        Duration::from_secs(5),
        || echo(&legacy, api).map_err(|e| e.to_string()),
    );
    echo(&client, WEB_VIP).unwrap_or_else(|e| panic!("client -> web after the restart: {e}"));
}

/// Step 5: the runtime tears the client pod down with CNI DEL (twice: DEL
/// is idempotent). The ztunnel closes its listeners in the pod and the
/// pod's connections are no longer captured: legacy sees the client's own
/// socket, and api still accepts it as plaintext (PERMISSIVE).
fn cni_del_releases_the_pod(c: &mut Cluster) {
    for i in 0..2 {
        let out = c.cni("DEL", "client");
        assert_eq!(out.code, 0, "CNI DEL #{i} of client: {out:?}");
    }
    let client = c.pod("client").clone();
    eventually(
        "the ztunnel's listeners to leave the client pod",
        Duration::from_secs(10),
        || {
            let ports = listening_ports(&client);
            (!ports.iter().any(|p| [15001, 15006, 15008].contains(p)))
                .then_some(())
                .ok_or_else(|| format!("listening in client: {ports:?}"))
        },
    );
    let legacy_addr = pod_def("legacy").echo_addr();
    let mut conn = EchoConn::connect(&client, legacy_addr)
        .unwrap_or_else(|e| panic!("client -> legacy after DEL: {e}"));
    conn.roundtrip()
        .unwrap_or_else(|e| panic!("client -> legacy after DEL: {e}"));
    let local = conn.local_addr().expect("local address").to_string();
    let seen = established(c.pod("legacy"), 7070);
    assert!(
        seen.iter().any(|(_, peer)| *peer == local),
        "legacy must see the released client's own socket {local}: {seen:?}"
    );
    echo(&client, pod_def("api").echo_addr())
        .unwrap_or_else(|e| panic!("client (released, plaintext) -> api: {e}"));
}

// === without root ===

/// The fixture's YAML (including the policy files the steps write) is
/// accepted by the control plane with no configuration errors.
#[tokio::test(flavor = "multi_thread")]
async fn fixture_configuration_is_valid() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for (file, text) in base_config() {
        std::fs::write(dir.path().join(file), text)?;
    }
    std::fs::write(
        dir.path().join(DENY_FILE),
        deny_from_namespace("inventory", "deny-shop", "shop"),
    )?;
    std::fs::write(
        dir.path().join(ALLOW_FILE),
        allow_principal("inventory", "allow-client", CLIENT_ID, 9090),
    )?;
    std::fs::write(
        dir.path().join(STRICT_FILE),
        peer_authentication("inventory", "strict", "STRICT"),
    )?;
    let cp =
        braid_control::ControlPlane::start(braid_control::Config::for_tests(dir.path())).await?;
    let errors = cp.config_errors();
    cp.shutdown().await;
    anyhow::ensure!(errors.is_empty(), "configuration errors: {errors:#?}");
    Ok(())
}

#[test]
fn ss_output_is_parsed() {
    let text = "0      0      198.18.0.12:15008   198.18.0.11:40112\n\
                ESTAB 0 0 [::ffff:198.18.1.21]:15008 [::ffff:198.18.0.11]:5555 users:((\"x\",pid=1,fd=3))\n\
                LISTEN 0 128 0.0.0.0:8080 0.0.0.0:*\n";
    let parsed = parse_ss(text);
    assert_eq!(parsed.len(), 3, "{parsed:?}");
    assert_eq!(parsed[0].0, "198.18.0.12:15008");
    let client = "198.18.0.11".parse().expect("ip");
    assert!(has_ip(&parsed[0].1, client));
    assert!(has_ip(&parsed[1].1, client));
    assert!(!has_ip(&parsed[2].1, client));
    assert_eq!(parsed[2].0, "0.0.0.0:8080");
}

/// Switches `orders` between sidecar and ambient while `client` loops
/// connections to it. A switch alone changes no pod: a running sidecar
/// keeps serving (the ztunnel never takes a pod with a sidecar), and a pod
/// leaving ambient is released after the agent's grace with its traffic
/// flowing in plaintext meanwhile. Restarts then move the pod to the data
/// plane its namespace asks for.
fn a_namespace_switches_modes_under_load(c: &mut Cluster) {
    let to_orders = pod_def("orders").echo_addr();
    let client = c.pod("client").clone();
    let orders = c.pod("orders").clone();
    let sidecar_pid = |c: &Cluster| {
        c.sidecars
            .iter()
            .find(|p| p.name == "sidecar orders")
            .and_then(|p| p.pid())
    };

    // sidecar → ambient: nothing fails, and the sidecar still serves.
    let looper = Looper::start(&client, to_orders);
    c.write_config(
        "namespaces.yaml",
        &namespaces_yaml(&[("orders", "ambient")]),
    );
    wait_for_mode(c, "orders", "ambient");
    std::thread::sleep(Duration::from_secs(1));
    expect_no_failures(looper, "switching orders to ambient");
    let serving = listener_pid(&orders, 15008);
    assert!(
        serving.is_some() && serving == sidecar_pid(c),
        "orders' sidecar still holds :15008 ({serving:?})"
    );

    // The restart: a pod without a sidecar, captured by node-a's ztunnel.
    c.restart_pod("orders", false);
    let ztunnel_pid = c.ztunnel("node-a").pid();
    eventually("client -> orders via the ztunnel", FIRST_TRAFFIC, || {
        echo(&client, to_orders).map_err(|e| e.to_string())?;
        let serving = listener_pid(&orders, 15008);
        (serving.is_some() && serving == ztunnel_pid)
            .then_some(())
            .ok_or_else(|| format!(":15008 in orders belongs to {serving:?}"))
    });

    // ambient → sidecar: the pod is released after the grace, and nothing
    // fails meanwhile or after.
    let looper = Looper::start(&client, to_orders);
    c.write_config("namespaces.yaml", &namespaces_yaml(&[]));
    wait_for_mode(c, "orders", "sidecar");
    eventually(
        "the agent to release orders",
        Duration::from_secs(10),
        || match listener_pid(&orders, 15008) {
            None => Ok(()),
            Some(pid) => Err(format!(":15008 still held by {pid}")),
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    expect_no_failures(looper, "switching orders back to sidecar");

    // The restart: a pod with a sidecar again.
    c.restart_pod("orders", true);
    eventually("client -> orders via its sidecar", FIRST_TRAFFIC, || {
        echo(&client, to_orders).map_err(|e| e.to_string())?;
        let serving = listener_pid(&orders, 15008);
        (serving.is_some() && serving == sidecar_pid(c))
            .then_some(())
            .ok_or_else(|| format!(":15008 in orders belongs to {serving:?}"))
    });
}

/// Waits until node-a's ztunnel sees workload `name` in `mode`.
fn wait_for_mode(c: &Cluster, name: &str, mode: &str) {
    let admin = c.nodes[0].admin;
    eventually(
        &format!("node-a's ztunnel to see {name} in mode {mode}"),
        POLICY_PROPAGATION,
        || {
            let dump: serde_json::Value = serde_json::from_str(
                &http_get(admin, "/config_dump")
                    .map_err(|e| e.to_string())?
                    .1,
            )
            .map_err(|e| e.to_string())?;
            let seen = dump["workloads"]
                .as_array()
                .is_some_and(|w| w.iter().any(|w| w["name"] == name && w["mode"] == mode));
            seen.then_some(()).ok_or_else(|| "not yet".to_string())
        },
    );
}

fn expect_no_failures(looper: Looper, what: &str) {
    let (ok, failures) = looper.finish();
    eprintln!(
        "ambient e2e:   {what}: {ok} connections, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{what}: {} of {} connections failed:\n{}",
        failures.len(),
        ok + failures.len() as u64,
        failures.join("\n")
    );
    assert!(ok >= 20, "{what}: only {ok} connections");
}
