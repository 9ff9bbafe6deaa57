//! HTTP routing by sidecars (Gateway API HTTPRoute, GAMMA: the route's
//! parent is the Service, so the caller's sidecar applies it), in real
//! network namespaces: a header match, an 80/20 split with a weight-0
//! backend, a rewrite with header modifiers, a mirror, a redirect, a request timeout
//! and the route label on request metrics; then a broken edit keeps the
//! last good routing and removing the route restores plain Service
//! traffic. sidecar → sidecar; the waypoint paths come with waypoints.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use braid_capture::testing::{TestNet, TestPod, require_root};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::runtime::Runtime;

use crate::{
    l7,
    mesh::Mesh,
    support::{HOST, eventually, pod_token},
};

const APP_PORT: u16 = 8080;
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

/// A header match (`x-canary: yes`) sends every request to web-v2; 2 000
/// other requests split 80/20 between web-v1 and web-v2 within 4 points,
/// and nothing else gets any.
pub(crate) fn canary_and_split(client: &TestPod, web: SocketAddr) -> anyhow::Result<()> {
    let canary: Vec<_> = (0..20)
        .map(|_| with_header("/", Some(("x-canary", "yes"))))
        .collect();
    for reply in send(client, web, &canary)? {
        ensure!(reply.field("pod") == "web-v2", "x-canary: yes: {reply:?}");
    }
    let mut pods = BTreeMap::<String, usize>::new();
    for _ in 0..10 {
        let batch: Vec<_> = (0..200).map(|_| get("/")).collect();
        for reply in send(client, web, &batch)? {
            ensure!(reply.status == 200, "split: {reply:?}");
            *pods.entry(reply.field("pod").to_string()).or_default() += 1;
        }
    }
    let share = |pod: &str| pods.get(pod).copied().unwrap_or_default() as f64 / 20.0;
    ensure!((share("web-v1") - 80.0).abs() <= 4.0, "split: {pods:?}");
    ensure!((share("web-v2") - 20.0).abs() <= 4.0, "split: {pods:?}");
    ensure!(
        pods.len() == 2,
        "only web-v1 and web-v2 get requests: {pods:?}"
    );
    Ok(())
}

/// What the route does, request by request.
fn check_routing(client: &TestPod, web: SocketAddr) -> anyhow::Result<()> {
    // web-v3 has weight 0.
    canary_and_split(client, web)?;

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

/// A GET for `path` (the test adds `Host`).
pub(crate) fn get(path: &str) -> Request<String> {
    with_header(path, None)
}

/// A GET for `path` with one header.
pub(crate) fn with_header(path: &str, header: Option<(&str, &str)>) -> Request<String> {
    let mut request = Request::get(path);
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request.body(String::new()).expect("test request")
}

/// One answer as the test sees it.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    headers: HeaderMap,
    /// `key=value` lines the app wrote about the request it got.
    pub(crate) body: String,
}

impl Reply {
    /// What the app reported for `key` (`pod`, `path`, or a header name).
    pub(crate) fn field(&self, key: &str) -> &str {
        self.body
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or("")
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Sends `requests` one after another on one HTTP/1.1 keep-alive
/// connection from inside `from` (its capture applies) to `to`.
pub(crate) fn send(
    from: &TestPod,
    to: SocketAddr,
    requests: &[Request<String>],
) -> anyhow::Result<Vec<Reply>> {
    let tcp = from
        .netns()?
        .run(|| TcpStream::connect_timeout(&to, Duration::from_secs(5)))?
        .with_context(|| format!("{} -> {to}: connect", from.name))?;
    tcp.set_nonblocking(true)?;
    Runtime::new()?.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            let tcp = tokio::net::TcpStream::from_std(tcp)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(conn);
            let mut replies = Vec::new();
            for original in requests {
                sender.ready().await?;
                let mut request = Request::builder()
                    .method(original.method().clone())
                    .uri(original.uri().clone())
                    .header("host", "web.shop.svc.cluster.local");
                for (name, value) in original.headers() {
                    request = request.header(name, value);
                }
                let body = Full::new(Bytes::from(original.body().clone()));
                let response = sender.send_request(request.body(body)?).await?;
                let (parts, body) = response.into_parts();
                let body = body.collect().await?.to_bytes();
                replies.push(Reply {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
            }
            anyhow::Ok(replies)
        })
        .await
        .context("HTTP/1.1 exchange timed out")?
    })
}

/// Serves HTTP/1.1 on APP_PORT in `pod`, answering with what it got:
/// `pod=`, `path=`, `body=` (its length), then each request header as
/// `name=value`. `/slow` never answers (until 10 s passed); `/seen` lists
/// every request so far as `seen=<method> <path> <body length>` lines.
pub(crate) fn start_app(pod: &TestPod) -> anyhow::Result<()> {
    let listener = pod
        .netns()?
        .run(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, APP_PORT)))??;
    listener.set_nonblocking(true)?;
    let name = pod.name.clone();
    std::thread::Builder::new()
        .name(format!("app-{name}"))
        .spawn(move || {
            let Ok(runtime) = Runtime::new() else { return };
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let seen = Arc::new(Mutex::new(Vec::new()));
                while let Ok((tcp, _)) = listener.accept().await {
                    let (name, seen) = (name.clone(), seen.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let (name, seen) = (name.clone(), seen.clone());
                            async move { Ok::<_, Infallible>(describe(&name, &seen, req).await) }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tcp), service)
                            .await;
                    });
                }
            });
        })?;
    Ok(())
}

async fn describe(
    pod: &str,
    seen: &Mutex<Vec<String>>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    if path == "/seen" {
        let lines = seen.lock().map(|s| s.join("")).unwrap_or_default();
        return Response::new(Full::new(Bytes::from(lines)));
    }
    if path.starts_with("/slow") {
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let (parts, body) = request.into_parts();
    let length = body
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    if let Ok(mut seen) = seen.lock() {
        seen.push(format!("seen={} {path} {length}\n", parts.method));
    }
    let mut body = format!("pod={pod}\npath={path}\nbody={length}\n");
    for (name, value) in &parts.headers {
        body.push_str(&format!("{name}={}\n", value.to_str().unwrap_or("")));
    }
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::OK;
    response
}
