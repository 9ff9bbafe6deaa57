//! The certificate service: proxies present a token from a
//! `braid.dev/proxy-token` Secret; a node proxy gets identities of meshed
//! pods on its node, a sidecar only its own pod's; the mesh components'
//! identities are never issued; the CA root persists (0600).

mod support;

use std::{
    os::unix::fs::PermissionsExt as _,
    str::FromStr as _,
    time::{Duration, SystemTime},
};

use braid_api::braid::security::v1alpha1::{
    SignRequest, SignResponse, certificate_service_client::CertificateServiceClient,
};
use braid_identity::{CertificateRequest, SpiffeId, TrustBundle};
use support::*;
use tonic::{Code, Request};

const NODE_A_TOKEN: &str = "node-a-0123456789abcdef0123456789abcdef";
const WEB_TOKEN: &str = "web-0-0123456789abcdef0123456789abcdef";

fn token_secret(name: &str, token: &str, holder: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: braid-system}}\ntype: braid.dev/proxy-token\nstringData:\n  token: {token}\n  {holder}\n"
    )
}

fn pod_on(ns: &str, name: &str, sa: &str, node: &str, ip: &str) -> String {
    pod(ns, name, ip, sa).replace("nodeName: node-a", &format!("nodeName: {node}"))
}

fn namespace(name: &str, mode: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{braid.dev/mode: {mode}}}}}\n"
    )
}

fn files() -> Vec<(&'static str, String)> {
    vec![
        (
            "namespaces.yaml",
            format!(
                "{}---\n{}",
                namespace("shop", "sidecar"),
                namespace("inventory", "ambient")
            ),
        ),
        (
            "pods.yaml",
            format!(
                "{}---\n{}",
                pod_on("shop", "web-0", "web", "node-a", "198.18.0.1"),
                pod_on("inventory", "stock-0", "stock", "node-b", "198.18.0.2")
            ),
        ),
        (
            "tokens.yaml",
            format!(
                "{}---\n{}",
                token_secret("ztunnel-node-a", NODE_A_TOKEN, "node: node-a"),
                token_secret("sidecar-web-0", WEB_TOKEN, "pod: shop/web-0")
            ),
        ),
    ]
}

async fn start(ca_dir: &std::path::Path) -> anyhow::Result<Harness> {
    start_with(ca_dir, Vec::new()).await
}

/// [`start`] with `extra` files next to [`files`].
async fn start_with(
    ca_dir: &std::path::Path,
    extra: Vec<(&'static str, String)>,
) -> anyhow::Result<Harness> {
    let ca_dir = ca_dir.to_path_buf();
    let mut all = files();
    all.extend(extra);
    Harness::start(&all, move |c| {
        c.ca_dir = Some(ca_dir);
        c.cert_lifetime = Duration::from_secs(3600);
    })
    .await
}

/// How to reach a control plane whose CA lives in `ca_dir`: TLS, expecting
/// its own identity, trusting its root.
fn control_plane_tls(ca_dir: &std::path::Path) -> anyhow::Result<braid_xds::ControlPlaneTls> {
    let bundle = TrustBundle::from_pem(std::fs::read(ca_dir.join("root-cert.pem"))?)?;
    let expected = SpiffeId::control_plane(&"cluster.local".parse()?);
    Ok(braid_xds::ControlPlaneTls { bundle, expected })
}

/// Asks for `id` with `token`; returns the response and the key it generated.
async fn sign(
    h: &Harness,
    token: Option<&str>,
    id: &str,
) -> Result<(SignResponse, CertificateRequest), tonic::Status> {
    let tls = h
        .ca_dir
        .as_deref()
        .map(control_plane_tls)
        .transpose()
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    sign_with(h, tls.as_ref(), token, id).await
}

/// [`sign`] over a channel trusting `tls` (plaintext without).
async fn sign_with(
    h: &Harness,
    tls: Option<&braid_xds::ControlPlaneTls>,
    token: Option<&str>,
    id: &str,
) -> Result<(SignResponse, CertificateRequest), tonic::Status> {
    let parsed = SpiffeId::from_str(id).map_err(|e| tonic::Status::internal(e.to_string()))?;
    let csr = CertificateRequest::generate(&parsed)
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    let channel = braid_xds::channel::connect(&format!("http://{}", h.cp.xds_addr()), tls)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut client = CertificateServiceClient::new(channel);
    let mut request = Request::new(SignRequest {
        csr: csr.csr.as_ref().to_vec(),
        identity: id.into(),
    });
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}")
                .parse()
                .map_err(|_| tonic::Status::internal("metadata"))?,
        );
    }
    let response = client.sign(request).await?.into_inner();
    Ok((response, csr))
}

fn chain(pem: &str) -> anyhow::Result<Vec<rustls_pki_types::CertificateDer<'static>>> {
    use rustls_pki_types::pem::PemObject as _;
    Ok(
        rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?,
    )
}

#[tokio::test]
async fn node_and_sidecar_tokens_get_exactly_their_identities() -> anyhow::Result<()> {
    let ca_dir = tempfile::tempdir()?;
    let h = start(&ca_dir.path().join("ca")).await?;

    // The node proxy on node-a: identities of pods on node-a.
    let (issued, csr) = sign(
        &h,
        Some(NODE_A_TOKEN),
        "spiffe://cluster.local/ns/shop/sa/web",
    )
    .await?;
    let cert = csr.into_certificate(chain(&issued.cert_chain_pem)?)?;
    assert_eq!(
        cert.spiffe_id().as_str(),
        "spiffe://cluster.local/ns/shop/sa/web"
    );
    let lifetime = cert.not_after().duration_since(SystemTime::now())?;
    assert!(
        lifetime <= Duration::from_secs(3600) && lifetime > Duration::from_secs(3500),
        "{lifetime:?}"
    );
    let bundle = TrustBundle::from_pem(&issued.trust_bundle_pem)?;
    let root = std::fs::read(ca_dir.path().join("ca/root-cert.pem"))?;
    assert_eq!(
        bundle.roots(),
        TrustBundle::from_pem(&root)?.roots(),
        "the bundle is the CA's root"
    );

    let refused = sign(
        &h,
        Some(NODE_A_TOKEN),
        "spiffe://cluster.local/ns/inventory/sa/stock",
    )
    .await
    .expect_err("stock runs on node-b");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("no pod with service account \"stock\" in namespace \"inventory\" is scheduled on that node"), "{refused:?}");

    // The sidecar of shop/web-0: only its own service account.
    sign(&h, Some(WEB_TOKEN), "spiffe://cluster.local/ns/shop/sa/web").await?;
    let refused = sign(
        &h,
        Some(WEB_TOKEN),
        "spiffe://cluster.local/ns/shop/sa/admin",
    )
    .await
    .expect_err("not its account");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("the pod runs as shop/sa/web"),
        "{refused:?}"
    );

    // No token, an unknown token, a foreign trust domain, a malformed ID.
    let refused = sign(&h, None, "spiffe://cluster.local/ns/shop/sa/web")
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let refused = sign(
        &h,
        Some("not-a-listed-token-0123456789abcdef"),
        "spiffe://cluster.local/ns/shop/sa/web",
    )
    .await
    .expect_err("unknown");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(
        refused.message().contains("braid.dev/proxy-token"),
        "{refused:?}"
    );
    let refused = sign(
        &h,
        Some(NODE_A_TOKEN),
        "spiffe://other.domain/ns/shop/sa/web",
    )
    .await
    .expect_err("foreign domain");
    assert_eq!(refused.code(), Code::InvalidArgument);

    // A pod scheduled onto node-a later: the node proxy may now get its identity.
    let version = h.cp.version();
    h.write(
        "late.yaml",
        &pod_on("inventory", "stock-1", "stock", "node-a", "198.18.0.3"),
    )?;
    h.wait_version(version + 1).await?;
    sign(
        &h,
        Some(NODE_A_TOKEN),
        "spiffe://cluster.local/ns/inventory/sa/stock",
    )
    .await?;
    h.cp.shutdown().await;
    Ok(())
}

/// Issue 14: with a Pod of `braid-system/braid-control` on node-a (where
/// the control plane runs), node-a's token got the control plane's own
/// identity, which every proxy, CNI agent and braidctl trust to serve
/// configuration. Refused to every token, even with the pod labelled into
/// the mesh; the control plane still serves TLS as it.
#[tokio::test]
async fn sign_refuses_control_plane_identity_to_node_token() -> anyhow::Result<()> {
    const CONTROL_TOKEN: &str = "control-0-0123456789abcdef0123456789abcdef";
    let control_pod = |name: &str, ip: &str, labels: &str| {
        pod_on("braid-system", name, "braid-control", "node-a", ip)
            .replace("    app: braid-control\n", labels)
    };
    let ca_dir = tempfile::tempdir()?;
    let h = start_with(
        &ca_dir.path().join("ca"),
        vec![(
            "control.yaml",
            [
                namespace("braid-system", "none"),
                control_pod("braid-control-0", "198.18.0.8", "    app: braid-control\n"),
                // An attacker who may create pods in braid-system, or a
                // mislabelled one: the label must not matter.
                control_pod("rogue", "198.18.0.9", "    braid.dev/mode: ambient\n"),
                token_secret("sidecar-rogue", CONTROL_TOKEN, "pod: braid-system/rogue"),
            ]
            .join("---\n"),
        )],
    )
    .await?;
    let control = SpiffeId::control_plane(&"cluster.local".parse()?);
    for token in [NODE_A_TOKEN, WEB_TOKEN, CONTROL_TOKEN] {
        let refused = sign(&h, Some(token), control.as_str())
            .await
            .expect_err("never the control plane's identity");
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert!(
            refused
                .message()
                .contains("is reserved for the control plane"),
            "{refused:?}"
        );
    }
    let refused = sign(
        &h,
        Some(NODE_A_TOKEN),
        "spiffe://cluster.local/ns/braid-system/sa/braid-node",
    )
    .await
    .expect_err("the node DaemonSet's identity is reserved");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("reserved"), "{refused:?}");

    // Every call above verified the port's TLS as that very identity: the
    // control plane issues it to itself from the CA, not through Sign. Other
    // identities are still issued.
    sign(
        &h,
        Some(NODE_A_TOKEN),
        "spiffe://cluster.local/ns/shop/sa/web",
    )
    .await?;
    h.cp.shutdown().await;
    Ok(())
}

/// Issue 14: the identity of an unmeshed pod (`legacy/default`) was issued.
/// Refused until its namespace joins the mesh; a pod that still runs its
/// sidecar after its namespace left keeps getting its identity.
#[tokio::test]
async fn sign_refuses_identity_of_unmeshed_pod() -> anyhow::Result<()> {
    const OLD_TOKEN: &str = "old-0-0123456789abcdef0123456789abcdef";
    const LEGACY: &str = "spiffe://cluster.local/ns/legacy/sa/default";
    let ca_dir = tempfile::tempdir()?;
    let h = start_with(
        &ca_dir.path().join("ca"),
        vec![
            ("legacy-ns.yaml", namespace("legacy", "none")),
            (
                "legacy.yaml",
                [
                    pod_on("legacy", "old-0", "default", "node-a", "198.18.0.7"),
                    token_secret("sidecar-old-0", OLD_TOKEN, "pod: legacy/old-0"),
                ]
                .join("---\n"),
            ),
        ],
    )
    .await?;
    for token in [NODE_A_TOKEN, OLD_TOKEN] {
        let refused = sign(&h, Some(token), LEGACY)
            .await
            .expect_err("legacy is not in the mesh");
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().contains("not in the mesh"), "{refused:?}");
    }

    // The namespace joins the mesh: issued.
    let version = h.cp.version();
    h.write("legacy-ns.yaml", &namespace("legacy", "sidecar"))?;
    h.wait_version(version + 1).await?;
    sign(&h, Some(OLD_TOKEN), LEGACY).await?;

    // Injected, then the namespace leaves the mesh again: the pod keeps its
    // sidecar until re-created, and its certificate renews meanwhile.
    let version = h.cp.version();
    h.write(
        "legacy.yaml",
        &[
            pod_on("legacy", "old-0", "default", "node-a", "198.18.0.7").replace(
                "  containers:\n",
                "  containers:\n  - name: braid-proxy\n    image: braid/proxy\n",
            ),
            token_secret("sidecar-old-0", OLD_TOKEN, "pod: legacy/old-0"),
        ]
        .join("---\n"),
    )?;
    h.wait_version(version + 1).await?;
    let version = h.cp.version();
    h.write("legacy-ns.yaml", &namespace("legacy", "none"))?;
    h.wait_version(version + 1).await?;
    sign(&h, Some(OLD_TOKEN), LEGACY).await?;
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_root_key_is_private_and_reused_across_restarts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca_dir = dir.path().join("ca");
    let h = start(&ca_dir).await?;
    let mode = std::fs::metadata(ca_dir.join("root-key.pem"))?
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let root = std::fs::read(ca_dir.join("root-cert.pem"))?;
    let (before, _) = sign(&h, Some(WEB_TOKEN), "spiffe://cluster.local/ns/shop/sa/web").await?;
    h.cp.shutdown().await;

    let h = start(&ca_dir).await?;
    assert_eq!(
        std::fs::read(ca_dir.join("root-cert.pem"))?,
        root,
        "the root is reused"
    );
    let (after, _) = sign(&h, Some(WEB_TOKEN), "spiffe://cluster.local/ns/shop/sa/web").await?;
    assert_eq!(before.trust_bundle_pem, after.trust_bundle_pem);
    h.cp.shutdown().await;

    // A key others can read is refused at start-up, with the path in the error.
    std::fs::set_permissions(
        ca_dir.join("root-key.pem"),
        std::fs::Permissions::from_mode(0o644),
    )?;
    let err = Harness::start(&files(), |c| c.ca_dir = Some(ca_dir.clone()))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("root-key.pem"), "{err:#}");
    Ok(())
}

#[tokio::test]
async fn without_a_ca_dir_no_certificates_are_issued() -> anyhow::Result<()> {
    let h = Harness::start(&files(), |_| {}).await?;
    let refused = sign(&h, Some(WEB_TOKEN), "spiffe://cluster.local/ns/shop/sa/web")
        .await
        .expect_err("no CA");
    assert_eq!(refused.code(), Code::Unimplemented);
    h.cp.shutdown().await;
    Ok(())
}

/// What a proxy does: braid-identity's certificate manager fetching through
/// braid-xds's gRPC source from the real control plane.
#[tokio::test]
async fn a_proxy_fetches_its_certificate_through_the_manager() -> anyhow::Result<()> {
    use std::sync::Arc;

    use braid_identity::{CertificateManager, FetchError, ManagerConfig, SourceError};
    use braid_xds::GrpcCertificateSource;

    let dir = tempfile::tempdir()?;
    let h = start(&dir.path().join("ca")).await?;
    let tls = control_plane_tls(&dir.path().join("ca"))?;
    let source = GrpcCertificateSource::new(
        &format!("http://{}", h.cp.xds_addr()),
        NODE_A_TOKEN,
        Some(&tls),
    )?;
    let manager = CertificateManager::new(Arc::new(source), ManagerConfig::default());

    let web = SpiffeId::from_str("spiffe://cluster.local/ns/shop/sa/web")?;
    let cert = tokio::time::timeout(DEADLINE, manager.fetch(&web)).await??;
    assert_eq!(cert.spiffe_id(), &web);
    let again = manager.fetch(&web).await?;
    assert!(
        Arc::ptr_eq(&cert, &again),
        "the second fetch is served from the cache"
    );
    let bundle = manager
        .trust_bundle()
        .expect("the CA's bundle arrived with the certificate");
    assert_eq!(bundle.roots().len(), 1);

    // A refusal reaches the caller with the control plane's reason.
    let stock = SpiffeId::from_str("spiffe://cluster.local/ns/inventory/sa/stock")?;
    let err = tokio::time::timeout(DEADLINE, manager.fetch(&stock))
        .await?
        .expect_err("stock is not on node-a");
    let FetchError::Source {
        source: SourceError::Refused { reason, .. },
        ..
    } = &err
    else {
        anyhow::bail!("expected a refusal, got {err:?}");
    };
    assert!(reason.contains("is scheduled on that node"), "{reason}");
    manager.shutdown();
    h.cp.shutdown().await;
    Ok(())
}

/// With a CA the xDS port speaks TLS as the control plane's own identity:
/// proxies that trust the root get configuration; plaintext, a foreign root
/// or another expected identity get nothing.
#[tokio::test]
async fn with_a_ca_the_xds_port_serves_tls_as_the_control_plane() -> anyhow::Result<()> {
    use braid_xds::{Backoff, Client, ConnectionState, Delta, NodeInfo, Subscription};

    let dir = tempfile::tempdir()?;
    let ca_dir = dir.path().join("ca");
    let h = start(&ca_dir).await?;
    let uri = format!("http://{}", h.cp.xds_addr());
    let tls = control_plane_tls(&ca_dir)?;

    let (tx, mut deltas) = tokio::sync::mpsc::unbounded_channel();
    let client = Client::builder(uri.clone(), NodeInfo::new("ztunnel~node-a"))
        .control_plane_tls(tls.clone())
        .watch::<braid_model::Workload>(
            Subscription::Wildcard,
            move |d: Delta<braid_model::Workload>| {
                let _ = tx.send(d.updated.len());
            },
        )
        .build()?;
    let (handle, task) = client.spawn();
    assert_eq!(
        tokio::time::timeout(DEADLINE, deltas.recv()).await?,
        Some(2)
    );
    handle.shutdown();
    let _ = task.await;

    // Each of these must fail to connect, and say so.
    let foreign = tempfile::tempdir()?;
    let foreign_ca = braid_identity::Ca::load_or_create(foreign.path(), &"cluster.local".parse()?)?;
    let wrong_root = braid_xds::ControlPlaneTls {
        bundle: foreign_ca.trust_bundle().clone(),
        expected: tls.expected.clone(),
    };
    let wrong_identity = braid_xds::ControlPlaneTls {
        bundle: tls.bundle.clone(),
        expected: SpiffeId::from_str("spiffe://cluster.local/ns/shop/sa/web")?,
    };
    for (what, tls) in [
        ("plaintext", None),
        ("a foreign root", Some(&wrong_root)),
        ("another identity", Some(&wrong_identity)),
    ] {
        let mut builder = Client::builder(uri.clone(), NodeInfo::new("intruder"))
            .backoff(Backoff::new(
                Duration::from_millis(20),
                Duration::from_millis(100),
            ))
            .watch::<braid_model::Workload>(
                Subscription::Wildcard,
                |_: Delta<braid_model::Workload>| {},
            );
        if let Some(tls) = tls {
            builder = builder.control_plane_tls(tls.clone());
        }
        let (handle, task) = builder.build()?.spawn();
        let mut status = handle.status_changes();
        // Keep no watch::Ref alive: it would block the client's status updates.
        let failed = tokio::time::timeout(
            DEADLINE,
            status.wait_for(|s| matches!(s.connection, ConnectionState::BackingOff { .. })),
        )
        .await
        .is_ok_and(|changed| changed.is_ok());
        assert!(failed, "{what}: expected the connection to fail");
        assert!(
            !handle.status().types.values().any(|t| t.resources > 0),
            "{what}: got resources"
        );
        handle.shutdown();
        tokio::time::timeout(DEADLINE, task).await??;
    }
    h.cp.shutdown().await;
    Ok(())
}

/// With `--ca-cert/--ca-key/--ca-chain` the control plane signs with the
/// operator's intermediate: workload chains carry it, the bundle is the
/// operator's root, and the gRPC port is verified against that root.
#[tokio::test]
async fn an_operator_intermediate_signs_and_serves_tls() -> anyhow::Result<()> {
    let (root_der, root_pem, cert_pem, key_pem) = braid_identity::test_util::operator_pki("corp");
    let pki = tempfile::tempdir()?;
    let path = |name: &str| pki.path().join(name);
    std::fs::write(path("ca.pem"), &cert_pem)?;
    std::fs::write(path("ca-key.pem"), &key_pem)?;
    std::fs::write(path("chain.pem"), &root_pem)?;
    let h = Harness::start(&files(), |c| {
        c.ca_cert = Some(path("ca.pem"));
        c.ca_key = Some(path("ca-key.pem"));
        c.ca_chain = Some(path("chain.pem"));
    })
    .await?;

    // Proxies are given the operator's root, not a file of ours.
    let tls = braid_xds::ControlPlaneTls {
        bundle: TrustBundle::from_pem(&root_pem)?,
        expected: SpiffeId::control_plane(&"cluster.local".parse()?),
    };
    let (issued, csr) = sign_with(
        &h,
        Some(&tls),
        Some(WEB_TOKEN),
        "spiffe://cluster.local/ns/shop/sa/web",
    )
    .await?;
    let cert = csr.into_certificate(chain(&issued.cert_chain_pem)?)?;
    assert_eq!(
        cert.chain().len(),
        2,
        "leaf and the operator's intermediate"
    );
    assert_eq!(cert.chain()[1], chain(&cert_pem)?[0]);
    let bundle = TrustBundle::from_pem(&issued.trust_bundle_pem)?;
    assert_eq!(bundle.roots(), [root_der]);
    h.cp.shutdown().await;

    // A key that does not belong to the certificate is refused at start-up,
    // naming the file.
    let (_, _, _, other_key) = braid_identity::test_util::operator_pki("other");
    std::fs::write(path("ca-key.pem"), &other_key)?;
    let err = Harness::start(&files(), |c| {
        c.ca_cert = Some(path("ca.pem"));
        c.ca_key = Some(path("ca-key.pem"));
        c.ca_chain = Some(path("chain.pem"));
    })
    .await
    .err()
    .map(|e| format!("{e:#}"))
    .unwrap_or_default();
    assert!(err.contains("ca.pem"), "{err}");
    Ok(())
}
