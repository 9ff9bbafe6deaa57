//! The HBONE tunnel end to end: real TLS over loopback, certificates minted
//! at runtime, a real server, the pool as the client.

#[path = "hbone/support.rs"]
mod support;

use std::{io, net::SocketAddr, sync::Arc};

use braid_identity::tls;
use braid_proxy::hbone::{Error, REASON_HEADER, Settings};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use support::{DEADLINE, Mesh, TestCa, echo_backend, eventually, exchange, id, within};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsConnector, rustls::pki_types::ServerName};

#[tokio::test]
async fn tunnels_data_both_ways() -> anyhow::Result<()> {
    let backend = echo_backend().await?;
    let mesh = Mesh::start(Settings::default(), None).await?;
    let mut stream = mesh.tunnel(backend).await?;
    stream.write_all(b"ping").await?;
    let mut echoed = [0; 4];
    within("echo", stream.read_exact(&mut echoed)).await?;
    assert_eq!(&echoed, b"ping");
    let rest = within("exchange", exchange(&mut stream, b"pong")).await?;
    assert_eq!(rest, b"pongbye");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_data_flows_intact_in_both_directions() -> anyhow::Result<()> {
    const LEN: usize = 32 * 1024 * 1024;
    let backend = echo_backend().await?;
    let mesh = Mesh::start(Settings::default(), None).await?;
    let stream = mesh.tunnel(backend).await?;
    let (mut read, mut write) = tokio::io::split(stream);
    let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        write.write_all(&data).await?;
        write.shutdown().await?;
        anyhow::Ok(write)
    });
    let mut received = Vec::with_capacity(LEN + 3);
    within("bulk echo", read.read_to_end(&mut received)).await?;
    within("writer", writer).await??;
    assert_eq!(received.len(), LEN + 3);
    assert!(received[..LEN] == expected[..], "echoed bytes differ");
    assert_eq!(&received[LEN..], b"bye");
    Ok(())
}

#[tokio::test]
async fn idle_connections_are_closed_and_redialled() -> anyhow::Result<()> {
    let backend = echo_backend().await?;
    let mut settings = Settings::default();
    settings.keepalive_interval = std::time::Duration::from_millis(20);
    settings.idle_timeout = std::time::Duration::from_millis(100);
    let mesh = Mesh::start(settings, None).await?;
    let mut stream = mesh.tunnel(backend).await?;
    assert_eq!(
        within("exchange", exchange(&mut stream, b"1")).await?,
        b"1bye"
    );
    drop(stream);
    eventually("the idle connection closes", || {
        mesh.pool.connections() == 0 && mesh.counters.open() == 0
    })
    .await;
    let mut stream = mesh.tunnel(backend).await?;
    assert_eq!(
        within("exchange", exchange(&mut stream, b"2")).await?,
        b"2bye"
    );
    assert_eq!(mesh.counters.accepted(), 2);
    Ok(())
}

#[tokio::test]
async fn a_warm_connection_carries_new_streams_without_a_handshake() -> anyhow::Result<()> {
    let backend = echo_backend().await?;
    let mesh = Mesh::start(Settings::default(), None).await?;
    for round in 0..5 {
        let mut stream = mesh.tunnel(backend).await?;
        let got = within("exchange", exchange(&mut stream, b"x")).await?;
        assert_eq!(got, b"xbye", "round {round}");
    }
    assert_eq!(
        mesh.counters.accepted(),
        1,
        "one TLS connection for every stream"
    );
    assert_eq!(mesh.pool.connections(), 1);
    Ok(())
}

#[tokio::test]
async fn a_server_with_another_identity_is_refused() -> anyhow::Result<()> {
    let backend = echo_backend().await?;
    let mesh = Mesh::start(Settings::default(), None).await?;
    let expected = id("payments");
    let connect = mesh
        .pool
        .connect(&mesh.client, mesh.proxy, &expected, backend);
    let error = within("connect", connect).await.expect_err("refused");
    assert!(matches!(error, Error::WrongIdentity { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(expected.as_str()), "{message}");
    assert!(message.contains(mesh.server_id.as_str()), "{message}");
    assert!(!error.is_retry_safe());
    assert_eq!(mesh.pool.connections(), 0);
    Ok(())
}

#[tokio::test]
async fn a_client_certificate_from_a_foreign_ca_is_refused() -> anyhow::Result<()> {
    let backend = echo_backend().await?;
    let mesh = Mesh::start(Settings::default(), None).await?;
    let foreign = TestCa::new()?;
    // The client trusts the real CA (so the server passes), but presents a
    // certificate for the same identity from another CA.
    let intruder = foreign.issue("client")?;
    let connect = mesh
        .pool
        .connect(&intruder, mesh.proxy, &mesh.server_id, backend);
    let error = within("connect", connect).await.expect_err("refused");
    assert!(matches!(error, Error::Handshake { .. }), "{error:?}");
    assert!(!error.is_retry_safe());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_streams_share_few_connections() -> anyhow::Result<()> {
    const STREAMS: usize = 1000;
    let backend = echo_backend().await?;
    let mesh = Arc::new(Mesh::start(Settings::default(), None).await?);
    // Every stream stays open until all are open, so the pool must spread
    // them over ceil(1000 / 100) connections.
    let all_open = Arc::new(tokio::sync::Barrier::new(STREAMS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..STREAMS {
        let (mesh, all_open) = (mesh.clone(), all_open.clone());
        tasks.spawn(async move {
            let mut stream = mesh.tunnel(backend).await?;
            all_open.wait().await;
            let payload = format!("stream {i}");
            let got = exchange(&mut stream, payload.as_bytes()).await?;
            anyhow::ensure!(
                got == format!("{payload}bye").as_bytes(),
                "stream {i} got {got:?}"
            );
            anyhow::Ok(())
        });
    }
    let mut done = 0;
    while let Some(result) = within("all streams", tasks.join_next()).await {
        result??;
        done += 1;
    }
    assert_eq!(done, STREAMS);
    let accepted = mesh.counters.accepted();
    assert_eq!(
        mesh.pool.connections(),
        accepted,
        "every connection is pooled"
    );
    assert!(
        (10..=12).contains(&accepted),
        "{accepted} TCP connections for {STREAMS} streams"
    );
    Ok(())
}

#[tokio::test]
async fn the_servers_stream_limit_is_respected() -> anyhow::Result<()> {
    let backend = echo_backend().await?;
    let mut settings = Settings::default();
    settings.max_concurrent_streams = 5;
    let mesh = Mesh::start(settings.clone(), None).await?;
    // The client would put 100 streams on a connection; the server allows 5.
    let client = braid_proxy::hbone::Pool::new(mesh.ca.bundle(), Settings::default());
    let mut open = Vec::new();
    for _ in 0..20 {
        let connect = client.connect(&mesh.client, mesh.proxy, &mesh.server_id, backend);
        open.push(within("connect", connect).await?);
    }
    assert_eq!(mesh.counters.accepted(), 4);
    assert_eq!(client.connections(), 4);
    for mut stream in open {
        assert_eq!(
            within("exchange", exchange(&mut stream, b"a")).await?,
            b"abye"
        );
    }
    Ok(())
}

#[tokio::test]
async fn client_half_close_lets_the_backend_keep_sending() -> anyhow::Result<()> {
    // The echo backend answers "bye" only after it read EOF.
    let backend = echo_backend().await?;
    let mesh = Mesh::start(Settings::default(), None).await?;
    let mut stream = mesh.tunnel(backend).await?;
    let got = within("exchange", exchange(&mut stream, b"hello")).await?;
    assert_eq!(got, b"hellobye");
    Ok(())
}

#[tokio::test]
async fn backend_half_close_lets_the_client_keep_sending() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let backend = listener.local_addr()?;
    let backend_task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await?;
        tcp.write_all(b"greeting").await?;
        tcp.shutdown().await?;
        let mut received = Vec::new();
        tcp.read_to_end(&mut received).await?;
        anyhow::Ok(received)
    });
    let mesh = Mesh::start(Settings::default(), None).await?;
    let mut stream = mesh.tunnel(backend).await?;
    let mut greeting = Vec::new();
    within("read to EOF", stream.read_to_end(&mut greeting)).await?;
    assert_eq!(greeting, b"greeting");
    stream.write_all(b"late reply").await?;
    stream.shutdown().await?;
    let received = within("backend", backend_task).await??;
    assert_eq!(received, b"late reply");
    Ok(())
}

#[tokio::test]
async fn a_backend_reset_reaches_the_client_as_an_error() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let backend = listener.local_addr()?;
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await?;
        // Once the tunnel carries data, abort the connection.
        let mut go = [0; 2];
        tcp.read_exact(&mut go).await?;
        tcp.set_zero_linger()?;
        drop(tcp);
        anyhow::Ok(())
    });
    let mesh = Mesh::start(Settings::default(), None).await?;
    let mut stream = mesh.tunnel(backend).await?;
    stream.write_all(b"go").await?;
    let mut buf = Vec::new();
    let read = within("read", stream.read_to_end(&mut buf)).await;
    let error = read.expect_err("a reset, not EOF");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
    Ok(())
}

#[tokio::test]
async fn a_dropped_stream_closes_the_backend_connection() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let backend = listener.local_addr()?;
    let backend_task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await?;
        let mut received = [0; 5];
        tcp.read_exact(&mut received).await?;
        tcp.write_all(&received).await?;
        let mut rest = Vec::new();
        // EOF or a reset: either way the tunnel is gone.
        let _ = tcp.read_to_end(&mut rest).await;
        anyhow::Ok(received)
    });
    let mesh = Mesh::start(Settings::default(), None).await?;
    let mut stream = mesh.tunnel(backend).await?;
    stream.write_all(b"hello").await?;
    let mut echoed = [0; 5];
    within("echo", stream.read_exact(&mut echoed)).await?;
    // Dropped without a shutdown: an abort, reset on the wire.
    drop(stream);
    assert_eq!(&within("backend", backend_task).await??, b"hello");
    Ok(())
}

#[tokio::test]
async fn a_refusal_is_403_with_its_reason() -> anyhow::Result<()> {
    let backend = echo_backend().await?;
    let mesh = Mesh::start(Settings::default(), Some(backend)).await?;
    let error = mesh.tunnel(backend).await.expect_err("refused");
    assert_eq!(error.status(), Some(StatusCode::FORBIDDEN), "{error}");
    let message = error.to_string();
    assert!(message.contains("no policy allows"), "{message}");
    assert!(message.contains(id("client").as_str()), "{message}");
    assert!(!error.is_retry_safe());
    Ok(())
}

#[tokio::test]
async fn a_target_nobody_listens_on_is_503() -> anyhow::Result<()> {
    let closed = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let mesh = Mesh::start(Settings::default(), None).await?;
    let error = mesh.tunnel(closed).await.expect_err("dial fails");
    assert_eq!(
        error.status(),
        Some(StatusCode::SERVICE_UNAVAILABLE),
        "{error}"
    );
    assert!(error.to_string().contains(&closed.to_string()), "{error}");
    assert!(error.is_retry_safe());
    Ok(())
}

/// A pod that just became ambient is announced to every proxy as its node
/// agent starts capturing it: its `:15008` refuses for a moment, and a
/// tunnel opened then waits for it instead of failing.
#[tokio::test]
async fn a_proxy_port_that_opens_moments_later_is_reached() -> anyhow::Result<()> {
    let backend = echo_backend().await?;
    let mesh = Mesh::start(Settings::default(), None).await?;
    // A port that refuses until a relay to the real proxy binds it.
    let late = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let proxy = mesh.proxy;
    let relay = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let listener = TcpListener::bind(late).await?;
        let (mut downstream, _) = listener.accept().await?;
        let mut upstream = TcpStream::connect(proxy).await?;
        tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await?;
        anyhow::Ok(())
    });
    let connect = mesh
        .pool
        .connect(&mesh.client, late, &mesh.server_id, backend);
    let mut stream = within("connect through the late port", connect).await?;
    assert_eq!(
        within("exchange", exchange(&mut stream, b"late")).await?,
        b"latebye"
    );
    drop(stream);
    drop(mesh);
    relay.abort();
    Ok(())
}

#[tokio::test]
async fn a_proxy_nobody_listens_on_is_a_retryable_connect_error() -> anyhow::Result<()> {
    let mesh = Mesh::start(Settings::default(), None).await?;
    let nowhere = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let connect = mesh
        .pool
        .connect(&mesh.client, nowhere, &mesh.server_id, mesh.proxy);
    let error = within("connect", connect)
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains(&nowhere.to_string()), "{error}");
    assert!(error.is_retry_safe());
    assert_eq!(mesh.pool.connections(), 0);
    Ok(())
}

#[tokio::test]
async fn an_undialable_target_is_400() -> anyhow::Result<()> {
    let mesh = Mesh::start(Settings::default(), None).await?;
    let target = SocketAddr::from(([0, 0, 0, 0], 80));
    let error = mesh.tunnel(target).await.expect_err("bad authority");
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST), "{error}");
    Ok(())
}

#[tokio::test]
async fn host_names_get_400_and_other_methods_405() -> anyhow::Result<()> {
    let mesh = Mesh::start(Settings::default(), None).await?;
    let mut send = within("raw client", raw_client(&mesh)).await?;
    let host = Request::builder()
        .method(Method::CONNECT)
        .uri("example.com:80")
        .body(())?;
    let (status, reason) = within("CONNECT", raw_request(&mut send, host)).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.contains("not ip:port"), "{reason}");
    let get = Request::builder()
        .method(Method::GET)
        .uri(format!("https://{}/", mesh.proxy))
        .body(())?;
    let (status, reason) = within("GET", raw_request(&mut send, get)).await?;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(reason.contains("CONNECT"), "{reason}");
    Ok(())
}

#[tokio::test]
async fn a_dead_connection_is_evicted_and_replaced() -> anyhow::Result<()> {
    let backend = echo_backend().await?;
    let mut mesh = Mesh::start(Settings::default(), None).await?;
    let mut stream = mesh.tunnel(backend).await?;
    assert_eq!(
        within("exchange", exchange(&mut stream, b"1")).await?,
        b"1bye"
    );
    drop(stream);
    mesh.stop_server();
    eventually("the pool notices", || mesh.pool.connections() == 0).await;
    mesh.restart_server(Settings::default()).await?;
    let mut stream = mesh.tunnel(backend).await?;
    assert_eq!(
        within("exchange", exchange(&mut stream, b"2")).await?,
        b"2bye"
    );
    assert_eq!(mesh.counters.accepted(), 1);
    Ok(())
}

/// An HTTP/2 connection to the mesh's server, for requests the pool would
/// never send.
async fn raw_client(mesh: &Mesh) -> anyhow::Result<h2::client::SendRequest<Bytes>> {
    let config = tls::client_config(&mesh.client, &mesh.ca.bundle(), mesh.server_id.clone())?;
    let tcp = TcpStream::connect(mesh.proxy).await?;
    let name = ServerName::IpAddress(mesh.proxy.ip().into());
    let tls = TlsConnector::from(config).connect(name, tcp).await?;
    let (send, conn) = h2::client::handshake(tls).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// Sends `request` and returns the status and reason header.
async fn raw_request(
    send: &mut h2::client::SendRequest<Bytes>,
    request: Request<()>,
) -> anyhow::Result<(StatusCode, String)> {
    let (response, _stream) = send.clone().ready().await?.send_request(request, true)?;
    let response = tokio::time::timeout(DEADLINE, response).await??;
    let reason = response
        .headers()
        .get(REASON_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    Ok((response.status(), reason))
}
