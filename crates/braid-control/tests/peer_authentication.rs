//! In-process tests of PeerAuthentication end to end: YAML in the
//! configuration directory → index → Delta xDS, including the error path
//! (reported with file, document and field; the last good policy keeps
//! serving) and deletion.

mod support;

use std::{collections::HashMap, time::Duration};

use braid_api::{
    braid::security::v1alpha1::{MtlsMode, PeerAuthentication},
    envoy::service::discovery::v3::DeltaDiscoveryResponse,
    type_url,
};
use support::*;

/// A PeerAuthentication document; `selector` is a flow mapping of labels or empty.
fn peer_authentication(ns: &str, name: &str, selector: &str, mode: &str) -> String {
    let selector = if selector.is_empty() {
        String::new()
    } else {
        format!("  selector:\n    matchLabels: {selector}\n")
    };
    format!(
        "apiVersion: braid.dev/v1alpha1\nkind: PeerAuthentication\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{selector}  mtls:\n    mode: {mode}\n"
    )
}

fn decode(r: &DeltaDiscoveryResponse, name: &str) -> anyhow::Result<PeerAuthentication> {
    let resource = r
        .resources
        .iter()
        .find(|x| x.name == name)
        .ok_or_else(|| anyhow::anyhow!("{name} missing from {:?}", names(r)))?;
    let body = resource.resource.as_ref().expect("body");
    assert_eq!(body.type_url, type_url::PEER_AUTHENTICATION);
    Ok(<PeerAuthentication as prost::Message>::decode(
        body.value.as_slice(),
    )?)
}

#[tokio::test]
async fn peer_authentication_in_yaml_arrives_over_delta_xds() -> anyhow::Result<()> {
    let policies = format!(
        "{}---\n{}",
        peer_authentication("braid-system", "mesh", "", "PERMISSIVE"),
        peer_authentication("inventory", "stock-strict", "{app: stock}", "STRICT"),
    );
    let h = Harness::start(
        &[
            ("peer.yaml", policies),
            (
                "pods.yaml",
                pod("inventory", "stock-0", "198.18.0.1", "stock"),
            ),
        ],
        |_| {},
    )
    .await?;
    let mut proxy = h.proxy("ztunnel~node-a").await?;
    proxy
        .subscribe(type_url::PEER_AUTHENTICATION, &[], HashMap::new())
        .await?;
    let r = proxy.recv_ack(type_url::PEER_AUTHENTICATION).await?;
    assert_eq!(names(&r), ["braid-system/mesh", "inventory/stock-strict"]);
    let strict = decode(&r, "inventory/stock-strict")?;
    assert_eq!(strict.mode(), MtlsMode::Strict);
    assert_eq!(strict.namespace, "inventory");
    assert_eq!(
        strict.selector.get("app").map(String::as_str),
        Some("stock")
    );
    let mesh = decode(&r, "braid-system/mesh")?;
    assert_eq!(mesh.mode(), MtlsMode::Permissive);
    assert!(mesh.selector.is_empty(), "mesh-wide: no selector");

    // The proxy's own conversion accepts what the control plane serves.
    let model = braid_model::PeerAuthentication::try_from(strict)?;
    assert_eq!(model.mode, braid_model::MtlsMode::Strict);

    // An edit is pushed alone, and only on this type.
    h.write(
        "peer.yaml",
        &peer_authentication("braid-system", "mesh", "", "STRICT"),
    )?;
    let r = proxy.recv_ack(type_url::PEER_AUTHENTICATION).await?;
    assert_eq!(names(&r), ["braid-system/mesh"]);
    assert_eq!(decode(&r, "braid-system/mesh")?.mode(), MtlsMode::Strict);
    assert_eq!(r.removed_resources, ["inventory/stock-strict"]);
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn invalid_mode_is_reported_and_the_last_good_policy_keeps_serving() -> anyhow::Result<()> {
    let good = format!(
        "{}---\n{}",
        namespace("inventory", "ambient"),
        peer_authentication("inventory", "strict", "", "STRICT")
    );
    let h = Harness::start(&[("peer.yaml", good.clone())], |_| {}).await?;
    let mut proxy = h.proxy("p").await?;
    proxy
        .subscribe(type_url::PEER_AUTHENTICATION, &[], HashMap::new())
        .await?;
    let r = proxy.recv_ack(type_url::PEER_AUTHENTICATION).await?;
    assert_eq!(names(&r), ["inventory/strict"]);

    // Istio's DISABLE is not a Braid mode: document 1 is rejected, the file
    // with it, and nothing is pushed.
    h.write("peer.yaml", &good.replace("mode: STRICT", "mode: DISABLE"))?;
    eventually(|| async { !h.cp.config_errors().is_empty() }).await?;
    let errors = h.cp.config_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert!(e.file.ends_with("peer.yaml"), "{e}");
    assert_eq!(e.document, Some(1));
    assert_eq!(e.field, "spec.mtls.mode");
    assert!(
        e.message.contains("STRICT") && e.message.contains("PERMISSIVE"),
        "the message lists the valid modes: {e}"
    );
    proxy.expect_nothing(Duration::from_millis(200)).await?;

    // A new proxy still gets the last good policy.
    let mut late = h.proxy("late").await?;
    late.subscribe(type_url::PEER_AUTHENTICATION, &[], HashMap::new())
        .await?;
    let r = late.recv_ack(type_url::PEER_AUTHENTICATION).await?;
    assert_eq!(decode(&r, "inventory/strict")?.mode(), MtlsMode::Strict);

    // Fixing the file clears the error and applies the change.
    h.write(
        "peer.yaml",
        &good.replace("mode: STRICT", "mode: PERMISSIVE"),
    )?;
    let r = proxy.recv_ack(type_url::PEER_AUTHENTICATION).await?;
    assert_eq!(decode(&r, "inventory/strict")?.mode(), MtlsMode::Permissive);
    eventually(|| async { h.cp.config_errors().is_empty() }).await?;
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn deleting_the_file_removes_the_policy() -> anyhow::Result<()> {
    let h = Harness::start(
        &[
            (
                "peer.yaml",
                peer_authentication("shop", "web", "{app: web}", "STRICT"),
            ),
            ("pods.yaml", pod("shop", "web-0", "198.18.0.1", "web")),
        ],
        |_| {},
    )
    .await?;
    let mut proxy = h.proxy("p").await?;
    proxy
        .subscribe(type_url::PEER_AUTHENTICATION, &[], HashMap::new())
        .await?;
    let r = proxy.recv_ack(type_url::PEER_AUTHENTICATION).await?;
    assert_eq!(names(&r), ["shop/web"]);

    std::fs::remove_file(h.path("peer.yaml"))?;
    let r = proxy.recv_ack(type_url::PEER_AUTHENTICATION).await?;
    assert!(r.resources.is_empty());
    assert_eq!(r.removed_resources, ["shop/web"]);
    h.cp.shutdown().await;
    Ok(())
}
