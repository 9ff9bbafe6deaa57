//! A waypoint in front of a Service, in real network namespaces, declared
//! as a `braid-waypoint` Gateway (its Service implied from it): the
//! caller's sidecar honours `braid.dev/waypoint` and sends over HBONE to
//! the waypoint process, which applies the Service's HTTPRoute (a header
//! match and an 80/20 split), labels its request series with the route and
//! the caller, and forwards over HBONE to the chosen backend's sidecar.
//! A pod behind the waypoint refuses callers that dial it directly. With
//! the waypoint stopped, callers get a refusal naming it (fail closed),
//! never the backends directly. sidecar → waypoint → sidecar.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use anyhow::ensure;
use braid_capture::testing::{TestNet, TestPod, require_root};

use crate::{
    http_app::{canary_and_split, get, send, start_app},
    l7,
    mesh::Mesh,
    support::{HOST, eventually, pod_token},
};

/// (pod, its `app` and `version` labels, address)
const PODS: [(&str, &str, &str, Ipv4Addr); 5] = [
    ("client", "client", "", Ipv4Addr::new(198, 18, 5, 10)),
    ("wp-0", "wp", "", Ipv4Addr::new(198, 18, 5, 20)),
    ("web-v1", "web", "v1", Ipv4Addr::new(198, 18, 5, 11)),
    ("web-v2", "web", "v2", Ipv4Addr::new(198, 18, 5, 12)),
    ("admin", "admin", "", Ipv4Addr::new(198, 18, 5, 13)),
];
/// The label that puts a Service behind waypoint `wp`.
const BEHIND_WP: &str = "braid.dev/waypoint: wp";
/// (Service, selector, VIP, port, target port, labels). The web pods are
/// also behind their version's Service, which has no waypoint; `admin` is
/// behind the waypoint-fronted Service `admin` only. The waypoint itself
/// is a Gateway: its Service is implied from it.
const SERVICES: [(&str, &str, Ipv4Addr, u16, u16, &str); 4] = [
    (
        "web",
        "app: web",
        Ipv4Addr::new(198, 19, 5, 1),
        80,
        8080,
        BEHIND_WP,
    ),
    (
        "web-v1",
        "version: v1",
        Ipv4Addr::new(198, 19, 5, 2),
        80,
        8080,
        "",
    ),
    (
        "web-v2",
        "version: v2",
        Ipv4Addr::new(198, 19, 5, 3),
        80,
        8080,
        "",
    ),
    (
        "admin",
        "app: admin",
        Ipv4Addr::new(198, 19, 5, 4),
        80,
        8080,
        BEHIND_WP,
    ),
];

fn mesh_yaml() -> String {
    let mut docs = vec![
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels:\n    braid.dev/mode: sidecar\n".to_string(),
    ];
    for (name, app, version, ip) in PODS {
        // The waypoint's pod runs braid-proxy as its container, so the mesh
        // issues it its identity like a sidecar's; its Gateway's label
        // makes it an endpoint of the waypoint.
        let gateway = match app {
            "wp" => "    gateway.networking.k8s.io/gateway-name: wp\n",
            _ => "",
        };
        docs.push(format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: shop\n  labels:\n    app: {app}\n    version: '{version}'\n{gateway}spec:\n  nodeName: node-a\n  serviceAccountName: {name}\n  containers:\n  - name: app\n    image: example/{name}:1\n  - name: braid-proxy\n    image: braid/proxy:dev\nstatus:\n  phase: Running\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n  conditions:\n  - type: Ready\n    status: \"True\"\n"
        ));
        docs.push(format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: proxy-{name}\n  namespace: braid-system\ntype: braid.dev/proxy-token\nstringData:\n  token: {}\n  pod: shop/{name}\n",
            pod_token(name)
        ));
    }
    for (name, selector, vip, port, target, labels) in SERVICES {
        docs.push(format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: shop\n  labels: {{{labels}}}\nspec:\n  clusterIP: {vip}\n  selector: {{{selector}}}\n  ports:\n  - name: http\n    port: {port}\n    targetPort: {target}\n"
        ));
    }
    docs.push(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wp, namespace: shop}
spec:
  gatewayClassName: braid-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs:
  - {group: '', kind: Service, name: web, port: 80}
  rules:
  - matches:
    - headers: [{name: x-canary, value: 'yes'}]
    backendRefs: [{name: web-v2, port: 80}]
  - backendRefs:
    - {name: web-v1, port: 80, weight: 80}
    - {name: web-v2, port: 80, weight: 20}
"
        .to_string(),
    );
    docs.join("---\n")
}

#[test]
fn a_waypoint_applies_the_routes_of_the_services_it_fronts() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let _serial = crate::one_at_a_time();
    let dir = tempfile::Builder::new()
        .prefix("braid-waypoint-")
        .tempdir()?;
    let config_dir = dir.path().join("config");
    std::fs::create_dir_all(&config_dir)?;
    std::fs::write(config_dir.join("mesh.yaml"), mesh_yaml())?;

    let net = TestNet::new("wp")?;
    net.add_host_link(HOST)?;
    let mut pods = Vec::new();
    for (name, _, _, ip) in PODS {
        pods.push(net.add_pod(name, ip)?);
    }
    for pod in &pods[2..] {
        start_app(pod)?;
    }
    let mut mesh = Mesh::start(dir.path(), &config_dir)?;
    for pod in [&pods[0], &pods[2], &pods[3], &pods[4]] {
        mesh.add_sidecar(pod, "shop", &[], "json")?;
    }
    mesh.add_waypoint(&pods[1], "shop", "shop/wp")?;
    let (client, waypoint) = (&pods[0], &pods[1]);
    let web = SocketAddr::from((SERVICES[0].2, 80));
    eventually(
        "client -> web answers through the waypoint",
        Duration::from_secs(25),
        || match send(client, web, &[get("/")]) {
            Ok(replies) if replies[0].status == 200 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );

    // The header match and the 80/20 split, applied at the waypoint.
    canary_and_split(client, web, ["web-v1", "web-v2"])?;
    check_metrics(client, waypoint)?;

    // Bypass: the pod behind the waypoint refuses a direct call; through
    // its Service (and so the waypoint) it answers.
    let admin_pod = SocketAddr::from((PODS[4].3, 8080));
    let admin_vip = SocketAddr::from((SERVICES[3].2, 80));
    let reply = send(client, admin_vip, &[get("/")])?.remove(0);
    ensure!(
        reply.field("pod") == "admin",
        "through the waypoint: {reply:?}"
    );
    let reply = send(client, admin_pod, &[get("/")])?.remove(0);
    ensure!(reply.status == 403, "a direct call to the pod: {reply:?}");
    ensure!(
        reply
            .header("braid-proxy-error")
            .contains("behind waypoint shop/wp"),
        "the refusal says why: {reply:?}"
    );
    // A pod another Service without a waypoint also selects stays
    // reachable directly, as that Service's callers need.
    let web_v1_pod = SocketAddr::from((PODS[2].3, 8080));
    let reply = send(client, web_v1_pod, &[get("/")])?.remove(0);
    ensure!(reply.field("pod") == "web-v1", "web-v1 directly: {reply:?}");

    // The waypoint down: refused with its name, never sent around it.
    if let Some(mut waypoint) = mesh.processes.pop() {
        waypoint.stop();
    }
    let reply = send(client, web, &[get("/")])?.remove(0);
    ensure!(reply.status == 503, "with the waypoint down: {reply:?}");
    ensure!(
        reply
            .header("braid-proxy-error")
            .contains("waypoint shop/wp"),
        "the refusal names the waypoint: {reply:?}"
    );
    mesh.stop();
    Ok(())
}

/// The waypoint's request series carry the route and the caller; the
/// caller's sidecar left routing to the waypoint.
fn check_metrics(client: &TestPod, waypoint: &TestPod) -> anyhow::Result<()> {
    let metrics = |pod: &TestPod| -> anyhow::Result<String> {
        let admin = SocketAddr::from(([127, 0, 0, 1], 15020));
        Ok(l7::http1(pod, admin, &["/metrics"])?.remove(0).body)
    };
    let at_waypoint = metrics(waypoint)?;
    let routed = l7::sample_sum(
        &at_waypoint,
        "braid_requests_total{direction=\"outbound\",source_workload=\"unknown\",source_namespace=\"shop\",source_principal=\"spiffe://cluster.local/ns/shop/sa/client\"",
    );
    ensure!(
        routed >= 2_000.0,
        "the waypoint's series from the client, under the route:\n{at_waypoint}"
    );
    ensure!(
        at_waypoint.contains("route=\"shop/web\",response_code=\"200\"}"),
        "the waypoint labels requests with the route:\n{at_waypoint}"
    );
    let at_client = metrics(client)?;
    ensure!(
        !at_client.contains("route=\"shop/web\""),
        "the client's sidecar must not route what the waypoint routes:\n{at_client}"
    );
    Ok(())
}
