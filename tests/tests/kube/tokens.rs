//! The certificate service accepts Kubernetes ServiceAccount tokens (real
//! tokens from `kubectl create token`, reviewed by the real API server): a
//! pod-bound token gets its pod's identity only, the node proxies' account
//! gets the identities of pods on its node only, and a token with the wrong
//! audience or bound to nothing is refused with the reason.

use std::str::FromStr as _;

use braid_api::braid::security::v1alpha1::{
    SignRequest, certificate_service_client::CertificateServiceClient,
};
use braid_control::{Config, ControlPlane};
use braid_identity::{CertificateRequest, SpiffeId, TrustBundle};
use tonic::{Code, Request};

use crate::{
    source::run_pod_as,
    support::{self, Cluster},
};

/// A token for `account` with `args` (audience, binding).
fn token(cluster: &Cluster, ns: &str, account: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["create", "token", account, "--namespace", ns];
    all.extend_from_slice(args);
    Ok(cluster.kubectl(&all)?.trim().to_string())
}

/// Asks `control` for `id` with `token`; the gRPC status code (Ok on success)
/// and its message.
async fn sign(
    control: &ControlPlane,
    ca_dir: &std::path::Path,
    token: &str,
    id: &str,
) -> anyhow::Result<(Code, String)> {
    let bundle = TrustBundle::from_pem(std::fs::read(ca_dir.join("root-cert.pem"))?)?;
    let expected = SpiffeId::control_plane(&"cluster.local".parse()?);
    let tls = braid_xds::ControlPlaneTls { bundle, expected };
    let channel =
        braid_xds::channel::connect(&format!("http://{}", control.xds_addr()), Some(&tls)).await?;
    let csr = CertificateRequest::generate(&SpiffeId::from_str(id)?)?;
    let mut request = Request::new(SignRequest {
        csr: csr.csr.as_ref().to_vec(),
        identity: id.into(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(
        match CertificateServiceClient::new(channel).sign(request).await {
            Ok(_) => (Code::Ok, String::new()),
            Err(status) => (status.code(), status.message().to_string()),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_get_exactly_their_identities() -> anyhow::Result<()> {
    let Some(cluster) = support::cluster() else {
        return Ok(());
    };
    cluster.install_crds()?;
    let ns = cluster.namespace("tokens", &[("braid.dev/mode", "ambient")])?;
    let ns = ns.name().to_string();
    for account in ["web", "far", "node-proxy"] {
        cluster.kubectl(&["create", "serviceaccount", account, "--namespace", &ns])?;
    }
    run_pod_as(cluster, &ns, "web", "web", "node-a", "198.18.41.10")?;
    run_pod_as(cluster, &ns, "far", "far", "node-b", "198.18.41.11")?;
    run_pod_as(
        cluster,
        &ns,
        "ztunnel",
        "node-proxy",
        "node-a",
        "198.18.41.12",
    )?;

    let ca = tempfile::tempdir()?;
    let mut config = Config::for_kube_tests(&cluster.kubeconfig);
    config.ca_dir = Some(ca.path().to_path_buf());
    config.node_service_account = (ns.clone(), "node-proxy".into());
    config.pod_namespace = ns.clone();
    let control = ControlPlane::start(config).await?;
    let id = |sa: &str| format!("spiffe://cluster.local/ns/{ns}/sa/{sa}");
    let bound = |pod: &str| {
        [
            "--audience",
            "braid",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            pod,
        ]
        .map(String::from)
    };

    // A sidecar's token: its own pod's identity, nobody else's.
    let args = bound("web");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let web = token(cluster, &ns, "web", &args)?;
    assert_eq!(
        sign(&control, ca.path(), &web, &id("web")).await?.0,
        Code::Ok
    );
    let (code, message) = sign(&control, ca.path(), &web, &id("far")).await?;
    assert_eq!(code, Code::PermissionDenied, "{message}");

    // The node proxy's token: pods on its node (node-a), not node-b's.
    let args = bound("ztunnel");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = token(cluster, &ns, "node-proxy", &args)?;
    assert_eq!(
        sign(&control, ca.path(), &node, &id("web")).await?.0,
        Code::Ok
    );
    let (code, message) = sign(&control, ca.path(), &node, &id("far")).await?;
    assert_eq!(code, Code::PermissionDenied, "{message}");
    assert!(message.contains("node"), "{message}");

    // The API server's default audience is not ours.
    let other = token(cluster, &ns, "web", &[])?;
    let (code, message) = sign(&control, ca.path(), &other, &id("web")).await?;
    assert_eq!(code, Code::Unauthenticated, "{message}");

    // Our audience but bound to no pod: refused, saying what to mount.
    let unbound = token(cluster, &ns, "web", &["--audience", "braid"])?;
    let (code, message) = sign(&control, ca.path(), &unbound, &id("web")).await?;
    assert_eq!(code, Code::Unauthenticated, "{message}");
    assert!(message.contains("projected"), "{message}");

    // The xDS stream takes the same tokens: the node proxy's opens and
    // receives the mesh; a token the API server rejects is refused.
    let web_uid = format!("{ns}/web");
    let (good, good_task) = xds(&control, ca.path(), &node)?;
    let (bad, bad_task) = xds(&control, ca.path(), &other)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let received = good
            .store::<braid_model::Workload>()
            .is_some_and(|s| s.get(&web_uid).is_some());
        let refused = match bad.status().connection {
            braid_xds::ConnectionState::BackingOff { last_error, .. } => {
                Some(last_error.to_string())
            }
            _ => None,
        };
        if received && let Some(refused) = &refused {
            assert!(
                refused.contains("the API server rejected the token"),
                "{refused}"
            );
            assert!(
                bad.store::<braid_model::Workload>()
                    .is_none_or(|s| s.get(&web_uid).is_none())
            );
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "xDS with tokens: good stream received {web_uid}: {received}; bad stream refused: {refused:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for (handle, task) in [(good, good_task), (bad, bad_task)] {
        handle.shutdown();
        let _ = task.await;
    }

    control.shutdown().await;
    Ok(())
}

/// An xDS client over TLS presenting `token`, watching every workload.
fn xds(
    control: &ControlPlane,
    ca_dir: &std::path::Path,
    token: &str,
) -> anyhow::Result<(braid_xds::ClientHandle, tokio::task::JoinHandle<()>)> {
    let bundle = TrustBundle::from_pem(std::fs::read(ca_dir.join("root-cert.pem"))?)?;
    let expected = SpiffeId::control_plane(&"cluster.local".parse()?);
    let client = braid_xds::Client::builder(
        format!("http://{}", control.xds_addr()),
        braid_xds::NodeInfo::new("ztunnel~198.18.41.12~node-a"),
    )
    .control_plane_tls(braid_xds::ControlPlaneTls { bundle, expected })
    .bearer_token(token)
    .watch::<braid_model::Workload>(braid_xds::Subscription::Wildcard, |_| {})
    .build()?;
    Ok(client.spawn())
}
