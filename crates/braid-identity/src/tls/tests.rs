//! Real TLS handshakes over loopback TCP.

use std::{
    io,
    net::{IpAddr, Ipv4Addr},
    sync::Mutex,
    time::Duration,
};

use rustls::{ProtocolVersion, pki_types::ServerName};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;
use crate::testing::{id, issue, issue_expired, new_ca};

/// Bounds every handshake and read in these tests.
const DEADLINE: Duration = Duration::from_secs(10);

/// Log output, captured for assertions.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Captures this thread's logs (tokio tests run on one thread) until the
    /// guard drops.
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl tracing_subscriber::fmt::MakeWriter<'_> for CapturedLogs {
    type Writer = Self;

    fn make_writer(&self) -> Self {
        self.clone()
    }
}

/// What each side saw of one connection attempt.
struct Outcome {
    /// The client identity the server saw, or why the server refused.
    server: Result<SpiffeId, String>,
    /// The server identity the client saw, or why the client failed.
    client: Result<SpiffeId, io::Error>,
}

/// Connects `client` to `server` over loopback. The server greets with
/// "ok" once it has accepted, so a client refused *after* its own side of
/// the handshake finished (TLS 1.3 verifies the client last) still fails.
async fn connect(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> Outcome {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = TlsAcceptor::from(server)
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        assert_eq!(conn.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        assert_eq!(conn.alpn_protocol(), Some(ALPN_H2));
        let peer = peer_identity(conn.peer_certificates().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        tls.write_all(b"ok").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok(peer)
    });
    let client_side = async move {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::IpAddress(IpAddr::from(Ipv4Addr::LOCALHOST).into());
        let mut tls = TlsConnector::from(client).connect(name, tcp).await?;
        let peer = peer_identity(tls.get_ref().1.peer_certificates().unwrap_or_default())
            .map_err(io::Error::other)?;
        let mut greeting = [0; 2];
        tls.read_exact(&mut greeting).await?;
        assert_eq!(&greeting, b"ok");
        Ok(peer)
    };
    let client = tokio::time::timeout(DEADLINE, client_side)
        .await
        .unwrap_or_else(|_| Err(io::Error::other("client timed out")));
    let server = tokio::time::timeout(DEADLINE, server_task)
        .await
        .expect("server timed out")
        .expect("server task panicked");
    Outcome { server, client }
}

#[tokio::test]
async fn expected_identities_connect_both_ways() {
    let test = new_ca();
    let bundle = test.ca.trust_bundle();
    let (api, web) = (id("shop", "api"), id("shop", "web"));
    let api_cert = issue(&test.ca, &api);
    let web_cert = issue(&test.ca, &web);

    // web calls api...
    let outcome = connect(
        server_config(&api_cert, bundle).unwrap(),
        client_config(&web_cert, bundle, api.clone()).unwrap(),
    )
    .await;
    assert_eq!(outcome.server.unwrap(), web);
    assert_eq!(outcome.client.unwrap(), api);

    // ...and api calls web.
    let outcome = connect(
        server_config(&web_cert, bundle).unwrap(),
        client_config(&api_cert, bundle, web.clone()).unwrap(),
    )
    .await;
    assert_eq!(outcome.server.unwrap(), api);
    assert_eq!(outcome.client.unwrap(), web);
}

#[tokio::test]
async fn client_refuses_a_server_with_another_identity() {
    let test = new_ca();
    let bundle = test.ca.trust_bundle();
    let (api, impostor, web) = (id("shop", "api"), id("shop", "impostor"), id("shop", "web"));
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let outcome = connect(
        server_config(&issue(&test.ca, &impostor), bundle).unwrap(),
        client_config(&issue(&test.ca, &web), bundle, api.clone()).unwrap(),
    )
    .await;
    let err = outcome.client.unwrap_err();
    let mismatch = IdentityMismatch::in_io_error(&err).expect("an identity mismatch");
    assert_eq!(mismatch.expected(), &api);
    assert_eq!(mismatch.presented(), Some(&impostor));
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("expected {api}, presented {impostor}")),
        "{msg}"
    );
    assert!(outcome.server.is_err(), "the client aborts the handshake");
    let logs = logs.text();
    assert!(
        logs.contains("WARN")
            && logs.contains(&format!("expected={api}"))
            && logs.contains(&format!("presented={impostor}")),
        "{logs}"
    );
}

#[tokio::test]
async fn client_refuses_a_server_from_a_foreign_ca() {
    let (ours, foreign) = (new_ca(), new_ca());
    let api = id("shop", "api");
    let outcome = connect(
        // The right identity, but signed by a CA the client does not trust.
        server_config(&issue(&foreign.ca, &api), foreign.ca.trust_bundle()).unwrap(),
        client_config(
            &issue(&ours.ca, &id("shop", "web")),
            ours.ca.trust_bundle(),
            api,
        )
        .unwrap(),
    )
    .await;
    let err = outcome.client.unwrap_err();
    assert!(IdentityMismatch::in_io_error(&err).is_none());
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn server_refuses_a_client_from_a_foreign_ca() {
    let (ours, foreign) = (new_ca(), new_ca());
    let api = id("shop", "api");
    let outcome = connect(
        server_config(&issue(&ours.ca, &api), ours.ca.trust_bundle()).unwrap(),
        // The client trusts our CA but presents a certificate from another.
        client_config(
            &issue(&foreign.ca, &id("shop", "web")),
            ours.ca.trust_bundle(),
            api,
        )
        .unwrap(),
    )
    .await;
    let err = outcome.server.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(outcome.client.is_err());
}

#[tokio::test]
async fn server_refuses_an_expired_client_certificate() {
    let test = new_ca();
    let bundle = test.ca.trust_bundle();
    let api = id("shop", "api");
    let expired = issue_expired(&test.ca, &id("shop", "web"));
    assert!(expired.is_expired_at(std::time::SystemTime::now()));
    let outcome = connect(
        server_config(&issue(&test.ca, &api), bundle).unwrap(),
        client_config(&expired, bundle, api).unwrap(),
    )
    .await;
    let err = outcome.server.unwrap_err();
    assert!(err.contains("expired"), "{err}");
    assert!(outcome.client.is_err());
}

#[tokio::test]
async fn server_refuses_a_client_without_a_certificate() {
    let test = new_ca();
    let bundle = test.ca.trust_bundle();
    let api = id("shop", "api");
    let provider = provider();
    // Verifies the server like ours does, but presents no certificate.
    let verifier = verifier::ServerVerifier::new(bundle.root_store(), api.clone(), &provider);
    let mut anonymous = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    anonymous.alpn_protocols = vec![ALPN_H2.to_vec()];
    let outcome = connect(
        server_config(&issue(&test.ca, &api), bundle).unwrap(),
        Arc::new(anonymous),
    )
    .await;
    let err = outcome.server.unwrap_err();
    assert!(err.contains("no certificates"), "{err}");
    assert!(outcome.client.is_err());
}

#[tokio::test]
async fn two_roots_are_trusted_during_rotation() {
    let (old, new) = (new_ca(), new_ca());
    let both = old.ca.trust_bundle().merge(new.ca.trust_bundle());
    assert_eq!(both.roots().len(), 2);
    let (api, web) = (id("shop", "api"), id("shop", "web"));

    // A client still on the old root calls a server already on the new one,
    // and the other way round.
    for (server_ca, client_ca) in [(&new.ca, &old.ca), (&old.ca, &new.ca)] {
        let outcome = connect(
            server_config(&issue(server_ca, &api), &both).unwrap(),
            client_config(&issue(client_ca, &web), &both, api.clone()).unwrap(),
        )
        .await;
        assert_eq!(outcome.server.unwrap(), web);
        assert_eq!(outcome.client.unwrap(), api);
    }

    // Once the old root is dropped, its certificates are refused.
    let outcome = connect(
        server_config(&issue(&new.ca, &api), new.ca.trust_bundle()).unwrap(),
        client_config(&issue(&old.ca, &web), &both, api.clone()).unwrap(),
    )
    .await;
    assert!(outcome.server.is_err());
}

#[tokio::test]
async fn intermediate_chains_verify_on_both_sides() {
    let (_, root_pem, cert_pem, key_pem) = crate::ca::tests::operator_pki("corp");
    let ca = crate::Ca::from_intermediate(
        &crate::testing::trust_domain(),
        &cert_pem,
        &key_pem,
        &root_pem,
    )
    .unwrap();
    let (api, web) = (id("shop", "api"), id("shop", "web"));
    let api_cert = issue(&ca, &api);
    assert_eq!(api_cert.chain().len(), 2);
    let outcome = connect(
        server_config(&api_cert, ca.trust_bundle()).unwrap(),
        client_config(&issue(&ca, &web), ca.trust_bundle(), api.clone()).unwrap(),
    )
    .await;
    assert_eq!(outcome.server.unwrap(), web);
    assert_eq!(outcome.client.unwrap(), api);
}

#[tokio::test]
async fn server_refuses_a_trusted_client_certificate_without_an_identity() {
    let (_, root_pem, cert_pem, key_pem) = crate::ca::tests::operator_pki("corp");
    let td = crate::testing::trust_domain();
    let ca = crate::Ca::from_intermediate(&td, &cert_pem, &key_pem, &root_pem).unwrap();
    let api = id("shop", "api");

    // A client certificate from the trusted intermediate with a DNS name only.
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&cert_pem, rcgen::KeyPair::from_pem(&key_pem).unwrap())
            .unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["web.example".to_string()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let leaf = params.signed_by(&key, &issuer).unwrap();
    let chain = vec![leaf.der().clone(), ca.certificate().clone()];
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into();

    let provider = provider();
    let verifier =
        verifier::ServerVerifier::new(ca.trust_bundle().root_store(), api.clone(), &provider);
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key)
        .unwrap();
    client.alpn_protocols = vec![ALPN_H2.to_vec()];
    let outcome = connect(
        server_config(&issue(&ca, &api), ca.trust_bundle()).unwrap(),
        Arc::new(client),
    )
    .await;
    let err = outcome.server.unwrap_err();
    assert!(err.contains("ApplicationVerificationFailure"), "{err}");
    assert!(outcome.client.is_err());
}
