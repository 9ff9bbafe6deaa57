//! HTTP routing by sidecars (Gateway API HTTPRoute, GAMMA: the route's
//! parent is the Service, so the caller's sidecar applies it), in real
//! network namespaces: a header match, an 80/20 split with a weight-0
//! backend, a rewrite with header modifiers, a mirror, a redirect, a request timeout
//! and the route label on request metrics; then a broken edit keeps the
//! last good routing and removing the route restores plain Service
//! traffic. sidecar → sidecar; the waypoint paths are in `waypoint.rs` and
//! the ambient test.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::ensure;
use braid_capture::testing::{TestNet, TestPod, require_root};
use http::Request;

use crate::{
    http_app::{APP_PORT, canary_and_split, get, send, start_app},
    l7,
    mesh::Mesh,
    support::{HOST, eventually, pod_token},
};

/// (pod, its `version` label, address, whether it runs a sidecar)
const PODS: [(&str, &str, Ipv4Addr, bool); 4] = [
    ("client", "", Ipv4Addr::new(198, 18, 3, 10), true),
    ("web-v1", "v1", Ipv4Addr::new(198, 18, 3, 11), true),
    ("web-v2", "v2", Ipv4Addr::new(198, 18, 3, 12), true),
    ("web-v3", "v3", Ipv4Addr::new(198, 18, 3, 13), false),
];
/// (Service, selector `version` or all web pods, VIP)
const SERVICES: [(&str, &str, Ipv4Addr); 4] = [
    ("web", "", Ipv4Addr::new(198, 19, 3, 1)),
    ("web-v1", "v1", Ipv4Addr::new(198, 19, 3, 2)),
    ("web-v2", "v2", Ipv4Addr::new(198, 19, 3, 3)),
    ("web-v3", "v3", Ipv4Addr::new(198, 19, 3, 4)),
];
const REQUEST_TIMEOUT_MS: u64 = 300;

/// The HTTPRoute under test, attached to Service web.
fn route_yaml() -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: shop
spec:
  parentRefs:
  - {{group: '', kind: Service, name: web, port: 80}}
  rules:
  - matches:
    - headers:
      - {{name: x-canary, value: 'yes'}}
    backendRefs:
    - {{name: web-v2, port: 80}}
  - matches:
    - path: {{type: PathPrefix, value: /rewrite}}
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {{type: ReplacePrefixMatch, replacePrefixMatch: /new}}
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{{name: x-routed, value: rewrite}}]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{{name: x-route, value: rewrite}}]
    backendRefs:
    - {{name: web-v1, port: 80}}
  - matches:
    - path: {{type: PathPrefix, value: /redirect}}
    filters:
    - type: RequestRedirect
      requestRedirect: {{hostname: example.org, statusCode: 301}}
  - matches:
    - path: {{type: PathPrefix, value: /mirror}}
    filters:
    - type: RequestMirror
      requestMirror:
        backendRef: {{name: web-v3, port: 80}}
    backendRefs:
    - {{name: web-v1, port: 80}}
  - matches:
    - path: {{type: PathPrefix, value: /slow}}
    timeouts: {{request: {REQUEST_TIMEOUT_MS}ms}}
    backendRefs:
    - {{name: web-v1, port: 80}}
  - backendRefs:
    - {{name: web-v1, port: 80, weight: 80}}
    - {{name: web-v2, port: 80, weight: 20}}
    - {{name: web-v3, port: 80, weight: 0}}
"
    )
}

fn mesh_yaml() -> String {
    let mut docs = vec![
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels:\n    braid.dev/mode: sidecar\n".to_string(),
    ];
    for (name, version, ip, sidecar) in PODS {
        let (proxy, mode) = if sidecar {
            (
                "  - name: braid-proxy\n    image: braid/proxy:dev\n",
                "sidecar",
            )
        } else {
            ("", "none")
        };
        let app = if version.is_empty() { "client" } else { "web" };
        docs.push(format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: shop\n  labels:\n    app: {app}\n    version: '{version}'\n    braid.dev/mode: {mode}\nspec:\n  nodeName: node-a\n  serviceAccountName: {name}\n  containers:\n  - name: app\n    image: example/{name}:1\n{proxy}status:\n  phase: Running\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n  conditions:\n  - type: Ready\n    status: \"True\"\n"
        ));
        if sidecar {
            docs.push(format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sidecar-{name}\n  namespace: braid-system\ntype: braid.dev/proxy-token\nstringData:\n  token: {}\n  pod: shop/{name}\n",
                pod_token(name)
            ));
        }
    }
    for (name, version, vip) in SERVICES {
        let selector = if version.is_empty() {
            "    app: web\n".to_string()
        } else {
            format!("    version: '{version}'\n")
        };
        docs.push(format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  clusterIP: {vip}\n  selector:\n{selector}  ports:\n  - name: http\n    port: 80\n    targetPort: {APP_PORT}\n"
        ));
    }
    docs.join("---\n")
}

#[test]
fn sidecars_apply_http_routes() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let _serial = crate::one_at_a_time();
    let dir = tempfile::Builder::new().prefix("braid-routes-").tempdir()?;
    let config_dir = dir.path().join("config");
    std::fs::create_dir_all(&config_dir)?;
    std::fs::write(config_dir.join("mesh.yaml"), mesh_yaml())?;

    let net = TestNet::new("rt")?;
    net.add_host_link(HOST)?;
    let mut pods = Vec::new();
    for (name, _, ip, _) in PODS {
        pods.push(net.add_pod(name, ip)?);
    }
    for pod in &pods[1..] {
        start_app(pod)?;
    }
    let mut mesh = Mesh::start(dir.path(), &config_dir)?;
    for (pod, (_, _, _, sidecar)) in pods.iter().zip(PODS) {
        if sidecar {
            mesh.add_sidecar(pod, "shop", &[], "json")?;
        }
    }
    let client = &pods[0];
    let web = SocketAddr::from((SERVICES[0].2, 80));
    eventually(
        "client -> web answers",
        Duration::from_secs(25),
        || match send(client, web, &[get("/")]) {
            Ok(replies) if replies[0].status == 200 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );

    std::fs::write(config_dir.join("route.yaml"), route_yaml())?;
    eventually(
        "the route to apply",
        Duration::from_secs(10),
        || match send(client, web, &[get("/rewrite/x")]) {
            Ok(replies) if replies[0].field("path") == "/new/x" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    check_routing(client, web)?;
    check_metrics(client)?;

    // A broken edit (a regular expression that does not compile) is
    // refused: the last good routing keeps serving.
    let broken = route_yaml().replace(
        "    - path: {type: PathPrefix, value: /slow}",
        "    - path: {type: RegularExpression, value: '/slow(['}",
    );
    std::fs::write(config_dir.join("route.yaml.tmp"), broken)?;
    std::fs::rename(
        config_dir.join("route.yaml.tmp"),
        config_dir.join("route.yaml"),
    )?;
    // Give the control plane a scan to (wrongly) apply it, then check.
    wait_for_log(&dir.path().join("braid-control.log"), "route.yaml")?;
    check_routing(client, web)?;

    std::fs::remove_file(config_dir.join("route.yaml"))?;
    eventually(
        "the route to go away",
        Duration::from_secs(10),
        || match send(client, web, &[get("/rewrite/x")]) {
            Ok(replies) if replies[0].field("path") == "/rewrite/x" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    mesh.stop();
    Ok(())
}

/// What the route does, request by request.
fn check_routing(client: &TestPod, web: SocketAddr) -> anyhow::Result<()> {
    // web-v3 has weight 0.
    canary_and_split(client, web, ["web-v1", "web-v2"])?;

    // A prefix rewrite keeps the query; header modifiers both ways.
    let reply = send(client, web, &[get("/rewrite/x?page=2")])?.remove(0);
    ensure!(reply.field("pod") == "web-v1", "{reply:?}");
    ensure!(reply.field("path") == "/new/x?page=2", "{reply:?}");
    ensure!(reply.field("x-routed") == "rewrite", "{reply:?}");
    ensure!(reply.header("x-route") == "rewrite", "{reply:?}");

    // A mirror gets a copy of each request, body included; the client gets
    // the backend's answer only.
    let body = "x".repeat(100_000);
    let post = Request::post("/mirror/a")
        .body(body.clone())
        .expect("test request");
    let reply = send(client, web, &[post])?.remove(0);
    ensure!(reply.field("pod") == "web-v1", "{reply:?}");
    ensure!(reply.field("body") == "100000", "{reply:?}");
    let mirror = SocketAddr::from((PODS[3].2, APP_PORT));
    eventually("the mirror to get the copy", Duration::from_secs(5), || {
        let seen = send(client, mirror, &[get("/seen")]).map_err(|e| e.to_string())?;
        seen[0]
            .body
            .contains("seen=POST /mirror/a 100000\n")
            .then_some(())
            .ok_or_else(|| format!("web-v3 saw {:?}", seen[0].body))
    });

    // A redirect is answered by the client's sidecar.
    let reply = send(client, web, &[get("/redirect/a?b=c")])?.remove(0);
    ensure!(reply.status == 301, "{reply:?}");
    ensure!(
        reply.header("location") == "http://example.org/redirect/a?b=c",
        "{reply:?}"
    );

    // A backend that never answers: 504 once the rule's timeout passed.
    let started = Instant::now();
    let reply = send(client, web, &[get("/slow")])?.remove(0);
    let took = started.elapsed();
    ensure!(reply.status == 504, "{reply:?}");
    let limit = Duration::from_millis(REQUEST_TIMEOUT_MS);
    ensure!(
        took >= limit && took <= limit + Duration::from_millis(50),
        "504 after {took:?} for a {limit:?} timeout"
    );
    Ok(())
}

/// The client's request series carry the route that took them.
fn check_metrics(client: &TestPod) -> anyhow::Result<()> {
    let metrics = l7::http1(
        client,
        SocketAddr::from(([127, 0, 0, 1], 15020)),
        &["/metrics"],
    )?
    .remove(0)
    .body;
    let routed = metrics
        .lines()
        .filter(|l| l.starts_with("braid_requests_total{") && l.contains("route=\"shop/web\""))
        .count();
    ensure!(
        routed >= 3,
        "request series labelled with the route:\n{metrics}"
    );
    let from_client = l7::sample_sum(
        &metrics,
        "braid_requests_total{direction=\"outbound\",source_workload=\"client\"",
    );
    ensure!(
        from_client > 0.0,
        "no request series for client:\n{metrics}"
    );
    ensure!(
        metrics.contains("route=\"shop/web\",response_code=\"504\"}"),
        "the 504 under its route:\n{metrics}"
    );
    Ok(())
}

/// Waits until `log` mentions `needle` (the control plane reported the
/// file), with a deadline.
fn wait_for_log(log: &Path, needle: &str) -> anyhow::Result<()> {
    eventually(
        "the control plane to report the edit",
        Duration::from_secs(10),
        || {
            let text = std::fs::read_to_string(log).map_err(|e| e.to_string())?;
            text.lines()
                .any(|l| l.contains(needle) && l.contains("WARN"))
                .then_some(())
                .ok_or_else(|| format!("no warning naming {needle} in {}", log.display()))
        },
    );
    Ok(())
}
