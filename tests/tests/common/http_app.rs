//! An HTTP app and client for tests in pods: the app answers with what it
//! got (which pod, path, headers), the client sends requests from inside a
//! pod's namespace (its capture applies). Shared by the sidecar and ambient
//! tests, which include this file each.

#![allow(unreachable_pub, dead_code)]

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, ensure};
use braid_capture::testing::TestPod;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::runtime::Runtime;

/// The port [`start_app`] serves.
pub const APP_PORT: u16 = 8080;

/// A header match (`x-canary: yes`) sends every request to `v2`; 2 000
/// other requests split 80/20 between `v1` and `v2` within 4 points, and
/// nothing else gets any.
pub(crate) fn canary_and_split(
    client: &TestPod,
    web: SocketAddr,
    [v1, v2]: [&str; 2],
) -> anyhow::Result<()> {
    let canary: Vec<_> = (0..20)
        .map(|_| with_header("/", Some(("x-canary", "yes"))))
        .collect();
    for reply in send(client, web, &canary)? {
        ensure!(reply.field("pod") == v2, "x-canary: yes: {reply:?}");
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
    ensure!((share(v1) - 80.0).abs() <= 4.0, "split: {pods:?}");
    ensure!((share(v2) - 20.0).abs() <= 4.0, "split: {pods:?}");
    ensure!(pods.len() == 2, "only {v1} and {v2} get requests: {pods:?}");
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
