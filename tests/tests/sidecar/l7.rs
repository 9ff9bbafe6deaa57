//! HTTP servers and clients inside pods for the sidecar end-to-end test:
//! HTTP/1.1 and HTTP/2 (prior knowledge) on one port, a gRPC-style answer
//! with trailers, chunked bodies, an upgrade that echoes bytes after `101`
//! (what WebSocket does), and a server-first TCP protocol.

use std::{
    convert::Infallible,
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use braid_capture::testing::TestPod;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::runtime::Runtime;

/// Bounds every client exchange.
const TIMEOUT: Duration = Duration::from_secs(5);

type Body = BoxBody<Bytes, Infallible>;

/// Serves HTTP/1.1 and HTTP/2 on `port` in `pod` until the test process
/// ends (the pod's namespace is deleted with the test, closing it).
/// Returns the count of connections it accepted.
pub(crate) fn start_http_server(pod: &TestPod, port: u16) -> anyhow::Result<Arc<AtomicUsize>> {
    let listener = bind(pod, port)?;
    let name = pod.name.clone();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::Builder::new()
        .name(format!("http-{name}"))
        .spawn(move || {
            let Ok(runtime) = Runtime::new() else { return };
            runtime.block_on(async move {
                if listener.set_nonblocking(true).is_err() {
                    return;
                }
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                while let Ok((tcp, _)) = listener.accept().await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let name = name.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let name = name.clone();
                            async move { Ok::<_, Infallible>(answer(&name, req).await) }
                        });
                        let builder =
                            hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                        let _ = builder
                            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                            .await;
                    });
                }
            });
        })?;
    Ok(accepted)
}

/// Accepts on `port` in `pod` and greets first, then echoes: a server-first
/// protocol such as SMTP or MySQL.
pub(crate) fn start_greeting_server(pod: &TestPod, port: u16) -> anyhow::Result<()> {
    let listener = bind(pod, port)?;
    std::thread::Builder::new()
        .name(format!("greet-{}", pod.name))
        .spawn(move || {
            while let Ok((mut conn, _)) = listener.accept() {
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                    if conn.write_all(b"220 braid-test ready\r\n").is_err() {
                        return;
                    }
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = conn.read(&mut buf) {
                        if conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        })?;
    Ok(())
}

fn bind(pod: &TestPod, port: u16) -> anyhow::Result<TcpListener> {
    let listener = pod
        .netns()?
        .run(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))??;
    Ok(listener)
}

async fn answer(name: &str, mut req: Request<Incoming>) -> Response<Body> {
    let version = format!("{:?}", req.version());
    match req.uri().path() {
        "/hello" => text(
            StatusCode::OK,
            format!("hello from {name} over {version}\n"),
        ),
        "/chunked" => {
            // Frames of unknown total length: chunked on HTTP/1.1.
            let frames = (0..5).map(|i| Ok(Frame::data(Bytes::from(format!("part {i}\n")))));
            Response::new(StreamBody::new(tokio_stream::iter(frames)).boxed())
        }
        "/grpc" => {
            let request = req.into_body().collect().await.map(|c| c.to_bytes());
            let got = request.map(|b| b.len()).unwrap_or_default();
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().expect("static"));
            trailers.insert(
                "grpc-message",
                format!("got {got} bytes").parse().expect("ascii"),
            );
            let frames = vec![
                Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x02ok"))),
                Ok(Frame::trailers(trailers)),
            ];
            let mut response = Response::new(StreamBody::new(tokio_stream::iter(frames)).boxed());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                "application/grpc".parse().expect("static"),
            );
            response
        }
        "/upgrade" => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
            let mut response = Response::new(Empty::new().boxed());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = response.headers_mut();
            h.insert(header::CONNECTION, "upgrade".parse().expect("static"));
            h.insert(header::UPGRADE, "braid-echo".parse().expect("static"));
            response
        }
        _ => text(StatusCode::NOT_FOUND, "no such path\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response
}

/// A tokio stream connected from inside `from`'s namespace (so its capture
/// rules apply, as to the pod's own applications).
async fn connect(from: &TestPod, to: SocketAddr) -> anyhow::Result<tokio::net::TcpStream> {
    let tcp = from
        .netns()?
        .run(|| TcpStream::connect_timeout(&to, TIMEOUT))?
        .with_context(|| format!("{} -> {to}: connect", from.name))?;
    tcp.set_nonblocking(true)?;
    Ok(tokio::net::TcpStream::from_std(tcp)?)
}

/// A response as the test sees it.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
    pub(crate) trailers: Option<HeaderMap>,
}

async fn read(response: Response<Incoming>) -> anyhow::Result<Answer> {
    let (parts, body) = response.into_parts();
    let collected = body.collect().await?;
    let trailers = collected.trailers().cloned();
    Ok(Answer {
        status: parts.status.as_u16(),
        body: String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        trailers,
    })
}

/// Sends `paths` one after another on ONE HTTP/1.1 keep-alive connection
/// from `from` to `to`.
pub(crate) fn http1(from: &TestPod, to: SocketAddr, paths: &[&str]) -> anyhow::Result<Vec<Answer>> {
    Runtime::new()?.block_on(async {
        tokio::time::timeout(TIMEOUT * 2, async {
            let tcp = connect(from, to).await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(conn);
            let mut answers = Vec::new();
            for path in paths {
                sender.ready().await?;
                let req = Request::get(*path)
                    .header(header::HOST, format!("{to}"))
                    .body(Empty::<Bytes>::new())?;
                answers.push(read(sender.send_request(req).await?).await?);
            }
            Ok(answers)
        })
        .await
        .context("HTTP/1.1 exchange timed out")?
    })
}

/// One HTTP/2 (prior knowledge) gRPC-style POST from `from` to `to`.
pub(crate) fn grpc(from: &TestPod, to: SocketAddr) -> anyhow::Result<Answer> {
    Runtime::new()?.block_on(async {
        tokio::time::timeout(TIMEOUT, async {
            let tcp = connect(from, to).await?;
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await?;
            tokio::spawn(conn);
            let req = Request::post(format!("http://{to}/grpc"))
                .header(header::CONTENT_TYPE, "application/grpc")
                .header(header::TE, "trailers")
                .body(Full::new(Bytes::from_static(b"\0\0\0\0\x05hello")))?;
            read(sender.send_request(req).await?).await
        })
        .await
        .context("HTTP/2 exchange timed out")?
    })
}

/// An HTTP/1.1 upgrade from `from` to `to`, then bytes both ways.
pub(crate) fn upgrade(from: &TestPod, to: SocketAddr) -> anyhow::Result<()> {
    let ns = from.netns()?;
    let mut tcp = ns.run(|| TcpStream::connect_timeout(&to, TIMEOUT))??;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    write!(
        tcp,
        "GET /upgrade HTTP/1.1\r\nHost: {to}\r\nConnection: Upgrade\r\nUpgrade: braid-echo\r\n\r\n"
    )?;
    let head = read_until(&mut tcp, b"\r\n\r\n")?;
    ensure!(
        head.starts_with("HTTP/1.1 101"),
        "expected 101 Switching Protocols, got {head:?}"
    );
    tcp.write_all(b"after the upgrade\n")?;
    let echoed = read_until(&mut tcp, b"\n")?;
    ensure!(echoed == "after the upgrade\n", "upgraded echo: {echoed:?}");
    Ok(())
}

/// Connects from `from` to a server-first protocol at `to`; returns how
/// long its greeting took to arrive, and checks an echo afterwards.
pub(crate) fn greeting(from: &TestPod, to: SocketAddr) -> anyhow::Result<Duration> {
    let ns = from.netns()?;
    let started = Instant::now();
    let mut tcp = ns.run(|| TcpStream::connect_timeout(&to, TIMEOUT))??;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    let greeting = read_until(&mut tcp, b"\r\n")?;
    let took = started.elapsed();
    ensure!(
        greeting == "220 braid-test ready\r\n",
        "greeting: {greeting:?}"
    );
    tcp.write_all(b"EHLO braid\r\n")?;
    let echoed = read_until(&mut tcp, b"\r\n")?;
    ensure!(
        echoed == "EHLO braid\r\n",
        "echo after the greeting: {echoed:?}"
    );
    Ok(took)
}

fn read_until(tcp: &mut TcpStream, end: &[u8]) -> anyhow::Result<String> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(end) {
        if tcp.read(&mut byte)? == 0 {
            bail!("EOF after {:?}", String::from_utf8_lossy(&got));
        }
        got.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// The sum of every sample of the series whose text starts with `prefix`
/// (a metric name and the start of its labels).
pub(crate) fn sample_sum(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}
