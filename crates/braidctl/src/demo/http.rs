//! A deliberately tiny HTTP/1.1 client and server for the demo's
//! applications: one request per connection (`Connection: close`), so
//! every request is a new connection the proxies capture, decide on and
//! count. Sockets are opened inside a pod's network namespace and then
//! driven by this process's runtime like any other socket.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use braid_capture::{ListenOptions, NetNs};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpSocket, TcpStream},
};

/// The most a response or request head may take; the demo's are tiny.
const MAX_MESSAGE: usize = 64 * 1024;
/// How long a server waits for a request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `addr` from inside `netns` (the connection leaves with the
/// pod's address and passes the pod's capture rules).
pub(crate) async fn connect_in(netns: &NetNs, addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let socket = netns
        .tcp_socket(addr, None)
        .context("cannot open a socket in the pod")?;
    let socket = TcpSocket::from_std_stream(socket.into());
    socket
        .connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))
}

/// `GET path` on a connected stream; the status code and body.
pub(crate) async fn get(
    stream: TcpStream,
    host: &str,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    get_with(stream, host, path, &[]).await
}

/// [`get`] with extra request headers (the waypoint step's header match).
pub(crate) async fn get_with(
    mut stream: TcpStream,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, String)> {
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: braidctl-demo\r\n{extra}Connection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .context("send the request")?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(MAX_MESSAGE as u64)
        .read_to_end(&mut raw)
        .await
        .context("read the response")?;
    let text = String::from_utf8_lossy(&raw);
    let Some(status) = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
    else {
        if raw.is_empty() {
            bail!("connection closed without a response");
        }
        bail!("not an HTTP response ({} bytes)", raw.len());
    };
    let body = text
        .split_once("\r\n\r\n")
        .map_or_else(String::new, |(_, body)| body.to_owned());
    Ok((status, body))
}

/// A GET on loopback of the host (the proxies' and the control plane's
/// admin endpoints).
pub(crate) async fn get_local(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .with_context(|| format!("connect to {addr}: timed out"))?
        .with_context(|| format!("connect to {addr}"))?;
    tokio::time::timeout(Duration::from_secs(5), get(stream, &addr.to_string(), path))
        .await
        .with_context(|| format!("GET {path} on {addr}: timed out"))?
}

/// Binds `0.0.0.0:port` inside `netns` and answers every request with
/// `200 OK` and `body`, until the task is aborted.
pub(crate) fn serve(
    netns: &NetNs,
    port: u16,
    body: String,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let listener = netns
        .bind_tcp(addr, &ListenOptions::default())
        .with_context(|| format!("cannot listen on {addr} in the pod"))?;
    let listener = TcpListener::from_std(listener).context("cannot register the listener")?;
    let body: Arc<str> = body.into();
    Ok(tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                // Out of descriptors and the like: back off, keep serving.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let body = Arc::clone(&body);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(READ_TIMEOUT, answer(conn, &body)).await;
            });
        }
    }))
}

/// Reads one request head and writes the response.
async fn answer(mut conn: TcpStream, body: &str) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_MESSAGE {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes()).await?;
    conn.shutdown().await
}
