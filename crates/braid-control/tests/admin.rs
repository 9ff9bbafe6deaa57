//! The admin endpoint: health, metrics, and the JSON debug views.

mod support;

use std::collections::HashMap;

use braid_api::type_url;
use support::*;

#[tokio::test]
async fn admin_endpoint_serves_health_metrics_and_debug_views() -> anyhow::Result<()> {
    let files = vec![
        ("pods.yaml", many_pods("shop", 1, 12)),
        ("svc.yaml", service("shop", "web", "app-1", "198.19.0.1")),
        (
            "bad.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\n".to_string(),
        ),
    ];
    let h = Harness::start(&files, |_| {}).await?;
    let admin = h.cp.admin_addr();
    let mut proxy = h.proxy("ztunnel~node-a").await?;
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    proxy.recv_ack(type_url::WORKLOAD).await?;

    assert!(
        http_get(admin, "/healthz")
            .await?
            .starts_with("HTTP/1.1 200")
    );

    let metrics = http_get(admin, "/metrics").await?;
    assert!(
        metrics.contains("braid_control_resources{type=\"workload\"} 12"),
        "{metrics}"
    );
    assert!(
        metrics.contains("braid_control_resources{type=\"service\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("braid_control_config_errors 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("braid_control_snapshot_version 1"),
        "{metrics}"
    );

    let config = http_get(admin, "/debug/config").await?;
    assert!(
        config.contains(&h.dir.path().display().to_string()),
        "{config}"
    );
    assert!(
        config.contains("\"trust_domain\": \"cluster.local\""),
        "{config}"
    );

    let errors = http_get(admin, "/debug/config-errors").await?;
    assert!(
        errors.contains("bad.yaml") && errors.contains("unsupported object v1 ConfigMap"),
        "{errors}"
    );

    eventually(|| async {
        http_get(admin, "/debug/proxy-status")
            .await
            .is_ok_and(|s| s.contains("ztunnel~node-a") && s.contains("\"in_sync\": true"))
    })
    .await?;

    let modes = http_get(admin, "/debug/mode-status?namespace=shop").await?;
    assert!(
        modes.contains("\"namespace\": \"shop\"")
            && modes.contains("\"effective\": \"none\"")
            && modes.contains("\"pending\": \"none\""),
        "{modes}"
    );
    let other = http_get(admin, "/debug/mode-status?namespace=other").await?;
    assert!(other.contains("\"workloads\": []"), "{other}");

    let missing = http_get(admin, "/nope").await?;
    assert!(
        missing.starts_with("HTTP/1.1 404") && missing.contains("/debug/proxy-status"),
        "{missing}"
    );
    h.cp.shutdown().await;
    Ok(())
}
