//! In-process tests of the Delta xDS server against a YAML directory: what a
//! proxy receives, when, and what proxy-status reports.

mod support;

use std::{collections::HashMap, time::Duration};

use braid_api::{
    braid::{
        admin::v1alpha1::{
            ProxyStatusRequest, control_plane_debug_client::ControlPlaneDebugClient,
        },
        workload::v1alpha1 as wl,
    },
    type_url,
};
use prost::Message as _;
use support::*;

fn decode_workload(r: &braid_api::envoy::service::discovery::v3::Resource) -> wl::Workload {
    let any = r.resource.as_ref().expect("resource body");
    assert_eq!(any.type_url, type_url::WORKLOAD);
    wl::Workload::decode(any.value.as_slice()).expect("decodes as Workload")
}

#[tokio::test]
async fn initial_snapshot_of_hundreds_of_workloads_is_complete() -> anyhow::Result<()> {
    let files = vec![
        (
            "namespaces.yaml",
            format!(
                "{}---\n{}",
                namespace("shop", "sidecar"),
                namespace("inventory", "ambient")
            ),
        ),
        ("shop/pods.yaml", many_pods("shop", 1, 200)),
        ("inventory/pods.yml", many_pods("inventory", 2, 150)),
        ("legacy/nested/deeper/pods.yaml", many_pods("legacy", 3, 50)),
        (
            "shop/svc.yaml",
            service("shop", "web", "app-3", "198.19.0.10"),
        ),
    ];
    let h = Harness::start(&files, |_| {}).await?;
    let mut proxy = h.proxy("ztunnel~node-a").await?;
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    let r = proxy.recv_ack(type_url::WORKLOAD).await?;
    assert_eq!(r.resources.len(), 400, "every pod is a workload");
    assert!(r.removed_resources.is_empty());
    let by_name: HashMap<_, _> = r
        .resources
        .iter()
        .map(|r| (r.name.clone(), decode_workload(r)))
        .collect();
    let w = &by_name["shop/pod-41"];
    assert_eq!(w.namespace, "shop");
    assert_eq!(w.service_account, "app-1");
    assert_eq!(w.node, "node-a");
    assert_eq!(w.addresses, vec![vec![198, 18, 1, 42]]);
    assert_eq!(w.mode(), wl::DataPlaneMode::Sidecar);
    assert_eq!(w.labels.get("app").map(String::as_str), Some("app-1"));
    assert_eq!(
        by_name["inventory/pod-0"].mode(),
        wl::DataPlaneMode::Ambient
    );
    assert_eq!(
        by_name["legacy/pod-9"].mode(),
        wl::DataPlaneMode::None,
        "no namespace object: mode none"
    );

    proxy
        .subscribe(type_url::SERVICE, &[], HashMap::new())
        .await?;
    let r = proxy.recv_ack(type_url::SERVICE).await?;
    assert_eq!(names(&r), vec!["shop/web"]);
    let svc = wl::Service::decode(
        r.resources[0]
            .resource
            .as_ref()
            .expect("body")
            .value
            .as_slice(),
    )?;
    assert_eq!(svc.hostname, "web.shop.svc.cluster.local");
    assert_eq!(svc.endpoints.len(), 20, "pods with app=app-3 among 200");
    assert!(
        svc.endpoints
            .iter()
            .all(|e| e.ports.get(&80) == Some(&8080)),
        "named target port resolved"
    );
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn editing_one_pod_sends_exactly_that_workload() -> anyhow::Result<()> {
    let files = vec![
        ("pods.yaml", many_pods("shop", 1, 50)),
        ("other.yaml", pod("shop", "solo", "198.18.9.9", "solo")),
    ];
    let h = Harness::start(&files, |_| {}).await?;
    let mut proxy = h.proxy("sidecar~a").await?;
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    let initial = proxy.recv_ack(type_url::WORKLOAD).await?;
    assert_eq!(initial.resources.len(), 51);

    h.write(
        "other.yaml",
        &pod("shop", "solo", "198.18.9.9", "solo")
            .replace("app: solo", "app: solo\n    tier: gold"),
    )?;
    let r = proxy.recv_ack(type_url::WORKLOAD).await?;
    assert_eq!(names(&r), vec!["shop/solo"]);
    assert!(r.removed_resources.is_empty());
    assert_eq!(
        decode_workload(&r.resources[0])
            .labels
            .get("tier")
            .map(String::as_str),
        Some("gold")
    );
    assert_ne!(r.resources[0].version, versions(&initial)["shop/solo"]);
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn deleting_a_file_sends_its_removals() -> anyhow::Result<()> {
    let files = vec![
        ("a.yaml", many_pods("shop", 1, 3)),
        ("b.yaml", pod("shop", "keep", "198.18.2.1", "keep")),
    ];
    let h = Harness::start(&files, |_| {}).await?;
    let mut proxy = h.proxy("p").await?;
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    assert_eq!(proxy.recv_ack(type_url::WORKLOAD).await?.resources.len(), 4);

    std::fs::remove_file(h.path("a.yaml"))?;
    let r = proxy.recv_ack(type_url::WORKLOAD).await?;
    assert!(r.resources.is_empty());
    let mut removed = r.removed_resources.clone();
    removed.sort();
    assert_eq!(removed, vec!["shop/pod-0", "shop/pod-1", "shop/pod-2"]);
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn nack_shows_in_proxy_status_with_its_reason() -> anyhow::Result<()> {
    let h = Harness::start(
        &[("p.yaml", pod("shop", "web-0", "198.18.0.1", "web"))],
        |_| {},
    )
    .await?;
    let mut proxy = h.proxy("sidecar~198.18.0.1~web-0.shop").await?;
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    let r = proxy.recv().await?;
    proxy
        .nack(
            &r,
            "Workload \"shop/web-0\": field addresses[0]: unsupported",
        )
        .await?;

    let mut debug = ControlPlaneDebugClient::connect(format!("http://{}", h.cp.xds_addr())).await?;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let found = loop {
        let status = debug
            .proxy_status(ProxyStatusRequest {})
            .await?
            .into_inner();
        let nack = status
            .proxies
            .iter()
            .find(|p| p.node_id == "sidecar~198.18.0.1~web-0.shop")
            .and_then(|p| p.types.first())
            .and_then(|t| t.last_nack.clone().map(|n| (t.in_sync, n)));
        if nack.is_some() || tokio::time::Instant::now() > deadline {
            break nack;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (in_sync, nack) = found.expect("nack recorded");
    assert!(!in_sync, "a NACKed type is not in sync");
    assert!(
        nack.reason.contains("addresses[0]: unsupported"),
        "{nack:?}"
    );
    assert_eq!(nack.version, h.cp.version().to_string());

    // The admin endpoint shows the same.
    let body = http_get(h.cp.admin_addr(), "/debug/proxy-status").await?;
    assert!(body.contains("addresses[0]: unsupported"), "{body}");

    // A later ACK puts the proxy back in sync.
    h.write("p.yaml", &pod("shop", "web-0", "198.18.0.2", "web"))?;
    proxy.recv_ack(type_url::WORKLOAD).await?;
    eventually(|| {
        let mut debug = debug.clone();
        async move {
            let Ok(status) = debug.proxy_status(ProxyStatusRequest {}).await else {
                return false;
            };
            status
                .into_inner()
                .proxies
                .iter()
                .all(|p| p.types.iter().all(|t| t.in_sync))
        }
    })
    .await?;
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn reconnect_with_held_versions_gets_only_the_differences() -> anyhow::Result<()> {
    let x = pod("shop", "x", "198.18.5.5", "x");
    let h = Harness::start(
        &[("pods.yaml", format!("{}---\n{x}", many_pods("shop", 1, 20)))],
        |_| {},
    )
    .await?;
    let mut proxy = h.proxy("p").await?;
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    let held = versions(&proxy.recv_ack(type_url::WORKLOAD).await?);
    assert_eq!(held.len(), 21);
    drop(proxy);

    // While disconnected, in one atomic write: one pod changes, one goes.
    let version = h.cp.version();
    h.write(
        "pods.yaml",
        &many_pods("shop", 1, 20).replace("198.18.1.7\n", "198.18.1.77\n"),
    )?;
    h.wait_version(version + 1).await?;

    let mut proxy = h.proxy("p").await?;
    proxy.subscribe(type_url::WORKLOAD, &[], held).await?;
    let r = proxy.recv_ack(type_url::WORKLOAD).await?;
    assert_eq!(
        names(&r),
        vec!["shop/pod-6"],
        "only the changed workload is resent"
    );
    assert_eq!(r.removed_resources, vec!["shop/x"]);
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn burst_of_edits_within_the_debounce_window_is_one_push() -> anyhow::Result<()> {
    let h = Harness::start(&[("pods.yaml", many_pods("shop", 1, 5))], |c| {
        c.debounce = Duration::from_millis(400);
        c.max_debounce = Duration::from_secs(20);
    })
    .await?;
    let mut proxy = h.proxy("p").await?;
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    proxy.recv_ack(type_url::WORKLOAD).await?;
    let version = h.cp.version();

    for i in 0..100 {
        h.write(
            &format!("burst/pod-{i}.yaml"),
            &pod(
                "burst",
                &format!("b-{i}"),
                &format!("198.18.7.{}", i + 1),
                "b",
            ),
        )?;
    }
    let r = proxy.recv_ack(type_url::WORKLOAD).await?;
    assert_eq!(
        r.resources.len(),
        100,
        "all 100 edits arrive in one response"
    );
    assert_eq!(
        h.cp.version(),
        version + 1,
        "one publish for the whole burst"
    );
    proxy.expect_nothing(Duration::from_millis(800)).await?;
    assert_eq!(h.cp.version(), version + 1);
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn named_subscriptions_get_only_what_they_name() -> anyhow::Result<()> {
    let h = Harness::start(&[("pods.yaml", many_pods("shop", 1, 10))], |_| {}).await?;
    let mut proxy = h.proxy("p").await?;
    proxy
        .subscribe(
            type_url::WORKLOAD,
            &["shop/pod-1", "shop/missing"],
            HashMap::new(),
        )
        .await?;
    let r = proxy.recv_ack(type_url::WORKLOAD).await?;
    assert_eq!(names(&r), vec!["shop/pod-1"]);
    assert_eq!(
        r.removed_resources,
        vec!["shop/missing"],
        "a named resource that does not exist is reported removed"
    );

    // A change to an unsubscribed workload is not sent; one to pod-1 is.
    h.write(
        "pods.yaml",
        &many_pods("shop", 1, 10)
            .replace("198.18.1.3\n", "198.18.1.33\n")
            .replace("198.18.1.2\n", "198.18.1.22\n"),
    )?;
    let r = proxy.recv_ack(type_url::WORKLOAD).await?;
    assert_eq!(names(&r), vec!["shop/pod-1"]);
    h.cp.shutdown().await;
    Ok(())
}
