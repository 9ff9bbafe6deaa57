//! Certificate renewal under load: the server follows its certificate
//! manager, a renewal drops none of 100 live streams, and a client's renewed
//! certificate goes on new pooled connections.

// Shared with tests/hbone.rs; this test uses only part of it.
#[allow(dead_code)]
#[path = "hbone/support.rs"]
mod support;

use std::{sync::Arc, time::Duration};

use braid_identity::{Ca, CertificateManager, CertificateRequest, LocalCa, ManagerConfig};
use braid_proxy::hbone::{DirectConnector, Pool, Server, Settings};
use support::{echo_backend, id, within};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_under_a_hundred_live_streams_drops_none() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = Arc::new(Ca::load_or_create(
        &dir.path().join("ca"),
        &"cluster.local".parse()?,
    )?);
    let bundle = ca.trust_bundle().clone();
    let server_id = id("server");
    // Short-lived server certificates, renewed after ~0.5 s.
    let source = LocalCa::new(ca.clone(), Duration::from_secs(5));
    let config = ManagerConfig {
        renew_fraction: 0.1,
        renew_jitter: 0.0,
        ..ManagerConfig::default()
    };
    let manager = CertificateManager::new(Arc::new(source), config);
    let mut certs = within("first certificate", manager.watch(&server_id)).await?;
    let first = certs.borrow_and_update().clone();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy = listener.local_addr()?;
    let connector = DirectConnector {
        timeout: Duration::from_secs(5),
    };
    let server = Server::rotating(
        certs.clone(),
        bundle.clone(),
        connector,
        Settings::default(),
    )?;
    let counters = server.counters();
    let serving = tokio::spawn(server.serve(listener));

    let backend = echo_backend().await?;
    let request = CertificateRequest::generate(&id("client"))?;
    let issued = ca.sign(&request.csr, &id("client"), Duration::from_secs(3600))?;
    let client = request.into_certificate(issued.chain)?;
    let pool = Pool::new(bundle.clone(), Settings::default());
    let mut streams = Vec::new();
    for i in 0..100u32 {
        let mut stream = within(
            "a tunnel",
            pool.connect(&client, proxy, &server_id, backend),
        )
        .await?;
        let message = format!("before {i:03}");
        stream.write_all(message.as_bytes()).await?;
        let mut echoed = vec![0; message.len()];
        within("the echo", stream.read_exact(&mut echoed)).await?;
        assert_eq!(echoed, message.as_bytes());
        streams.push(stream);
    }

    // The manager renews; the server must keep every open stream.
    within("a renewal", certs.changed()).await?;
    let renewed = certs.borrow_and_update().clone();
    assert_ne!(first.chain()[0], renewed.chain()[0], "a new certificate");
    for (i, stream) in streams.iter_mut().enumerate() {
        let message = format!("after {i:03}");
        stream.write_all(message.as_bytes()).await?;
        let mut echoed = vec![0; message.len()];
        within("the echo after renewal", stream.read_exact(&mut echoed)).await?;
        assert_eq!(
            echoed,
            message.as_bytes(),
            "stream {i} survived the renewal"
        );
    }

    // A new connection is handed the renewed certificate.
    let tcp = tokio::net::TcpStream::connect(proxy).await?;
    let config = braid_identity::tls::client_config(&client, &bundle, server_id.clone())?;
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let tls = within(
        "a TLS handshake",
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await?;
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .unwrap_or_default()
        .first()
        .cloned();
    assert_eq!(
        presented.as_ref(),
        Some(&renewed.chain()[0]),
        "the server presents the renewed certificate"
    );
    drop(tls);

    // And tunnels over a new connection work (a fresh pool dials anew).
    let accepted = counters.accepted();
    let fresh = Pool::new(bundle, Settings::default());
    let mut stream = within(
        "a tunnel after renewal",
        fresh.connect(&client, proxy, &server_id, backend),
    )
    .await?;
    stream.write_all(b"new").await?;
    let mut echoed = [0; 3];
    within("the echo", stream.read_exact(&mut echoed)).await?;
    assert_eq!(&echoed, b"new");
    assert_eq!(counters.accepted(), accepted + 1);

    // The client renews too: its next tunnel goes on a new pooled connection
    // that presents the new certificate; the 100 old streams stay put.
    let request = CertificateRequest::generate(&id("client"))?;
    let issued = ca.sign(&request.csr, &id("client"), Duration::from_secs(3600))?;
    let renewed_client = request.into_certificate(issued.chain)?;
    let before = pool.connections();
    let mut stream = within(
        "a tunnel with the renewed client certificate",
        pool.connect(&renewed_client, proxy, &server_id, backend),
    )
    .await?;
    stream.write_all(b"renewed").await?;
    let mut echoed = [0; 7];
    within("the echo", stream.read_exact(&mut echoed)).await?;
    assert_eq!(&echoed, b"renewed");
    assert_eq!(pool.connections(), before + 1, "a connection of its own");
    streams[0].write_all(b"old").await?;
    let mut echoed = [0; 3];
    within(
        "the echo on an old stream",
        streams[0].read_exact(&mut echoed),
    )
    .await?;
    assert_eq!(&echoed, b"old");
    manager.shutdown();
    serving.abort();
    Ok(())
}
