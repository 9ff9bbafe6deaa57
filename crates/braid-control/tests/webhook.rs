//! The injection webhook over real HTTPS: the control plane's CA issues its
//! certificate, and a client that trusts only that root and checks the DNS
//! name posts an AdmissionReview.

mod support;

use std::{net::SocketAddr, path::Path, sync::Arc};

use anyhow::{Context as _, bail};
use braid_identity::{
    TrustBundle,
    rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName},
};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use support::{Harness, namespace};

const SERVICE_NAME: &str = "braid-control.braid-system.svc";

async fn start(ca_dir: &Path) -> anyhow::Result<Harness> {
    let ca_dir = ca_dir.to_path_buf();
    Harness::start(&[("ns.yaml", namespace("shop", "sidecar"))], move |c| {
        c.ca_dir = Some(ca_dir);
        c.webhook_dns_names = vec!["injector.example.test".to_string()];
    })
    .await
}

/// A TLS client trusting only the CA's root in `ca_dir`.
fn client_config(ca_dir: &Path) -> anyhow::Result<Arc<ClientConfig>> {
    client_trusting(&std::fs::read(ca_dir.join("root-cert.pem"))?)
}

/// A TLS client trusting only the roots in `pem`.
fn client_trusting(pem: &[u8]) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for root in TrustBundle::from_pem(pem)?.roots() {
        roots.add(root.clone())?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Sends one request over a fresh TLS connection that verifies `name`.
async fn send(
    tls: &Arc<ClientConfig>,
    addr: SocketAddr,
    name: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let server_name = ServerName::try_from(name.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(server_name, tcp)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", name)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    Ok((status, body))
}

fn review(uid: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin"},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-0", "namespace": "shop"},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}
            },
            "dryRun": false
        }
    })
}

#[tokio::test]
async fn webhook_serves_https_with_a_certificate_from_the_ca() -> anyhow::Result<()> {
    let ca = tempfile::tempdir()?;
    let ca_dir = ca.path().join("ca");
    let h = start(&ca_dir).await?;
    let addr =
        h.cp.webhook_addr()
            .context("the webhook serves with a CA")?;
    assert_ne!(addr.port(), 0, "the bound port is reported");
    let tls = client_config(&ca_dir)?;

    let body = serde_json::to_vec(&review("c0ffee"))?;
    let (status, out) = send(&tls, addr, SERVICE_NAME, "POST", "/inject", body.clone()).await?;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    let out: Value = serde_json::from_slice(&out)?;
    assert_eq!(out["kind"], "AdmissionReview");
    assert_eq!(out["response"]["uid"], "c0ffee");
    assert_eq!(out["response"]["allowed"], true);
    assert_eq!(out["response"]["patchType"], "JSONPatch");
    let patch: k8s_openapi::ByteString = serde_json::from_value(out["response"]["patch"].clone())?;
    let patch: json_patch::Patch = serde_json::from_slice(&patch.0)?;
    let mut pod = review("x")["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch)?;
    assert_eq!(pod["spec"]["initContainers"][1]["name"], "braid-proxy");

    // Every name the certificate carries verifies: the cluster-local
    // Service names, the extra --webhook-dns-name and the listen IP.
    for name in [
        "braid-control.braid-system.svc.cluster.local",
        "injector.example.test",
        "127.0.0.1",
    ] {
        let (status, _) = send(&tls, addr, name, "POST", "/inject", body.clone()).await?;
        assert_eq!(status, 200, "{name}");
    }
    // ...and no other.
    if send(
        &tls,
        addr,
        "evil.example.test",
        "POST",
        "/inject",
        body.clone(),
    )
    .await
    .is_ok()
    {
        bail!("the client accepted a certificate without the name it asked for");
    }

    let (status, out) = send(&tls, addr, SERVICE_NAME, "POST", "/inject", b"{}".to_vec()).await?;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&out).contains("AdmissionReview"));
    let (status, _) = send(&tls, addr, SERVICE_NAME, "GET", "/inject", Vec::new()).await?;
    assert_eq!(status, 405);
    let (status, _) = send(&tls, addr, SERVICE_NAME, "POST", "/mutate", body).await?;
    assert_eq!(status, 404);
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn with_an_intermediate_ca_the_chain_reaches_the_operators_root() -> anyhow::Result<()> {
    let (_, root_pem, cert_pem, key_pem) = braid_identity::test_util::operator_pki("corp");
    let pki = tempfile::tempdir()?;
    let path = |name: &str| pki.path().join(name);
    std::fs::write(path("ca.pem"), &cert_pem)?;
    std::fs::write(path("ca-key.pem"), &key_pem)?;
    std::fs::write(path("chain.pem"), &root_pem)?;
    let h = Harness::start(&[("ns.yaml", namespace("shop", "sidecar"))], |c| {
        c.ca_cert = Some(path("ca.pem"));
        c.ca_key = Some(path("ca-key.pem"));
        c.ca_chain = Some(path("chain.pem"));
    })
    .await?;
    let addr =
        h.cp.webhook_addr()
            .context("the webhook serves with a CA")?;
    // Only the operator's root is trusted: the server must send the
    // intermediate for the chain to verify.
    let tls = client_trusting(root_pem.as_bytes())?;
    let body = serde_json::to_vec(&review("1"))?;
    let (status, _) = send(&tls, addr, SERVICE_NAME, "POST", "/inject", body).await?;
    assert_eq!(status, 200);
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn without_a_ca_there_is_no_webhook() -> anyhow::Result<()> {
    let h = Harness::start(&[("ns.yaml", namespace("shop", "sidecar"))], |_| {}).await?;
    assert_eq!(h.cp.webhook_addr(), None);
    h.cp.shutdown().await;
    Ok(())
}
