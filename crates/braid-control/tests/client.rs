//! braid-xds (the client every proxy uses) against the real control plane:
//! versions are content hashes, so after a control-plane restart a
//! reconnecting proxy receives only what really changed.

mod support;

use std::{sync::Arc, time::Duration};

use braid_xds::{Backoff, Client, Delta, NodeInfo, Subscription};
use support::*;
use tokio::sync::mpsc;

#[tokio::test]
async fn reconnect_after_a_control_plane_restart_resends_only_changes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    write(dir.path(), "pods.yaml", &many_pods("shop", 1, 30))?;
    let mut config = braid_control::Config::for_tests(dir.path());
    let cp = braid_control::ControlPlane::start(config.clone()).await?;
    config.xds_listen = cp.xds_addr();

    let (tx, mut deltas) = mpsc::unbounded_channel::<(Vec<String>, Vec<String>)>();
    let client = Client::builder(
        format!("http://{}", cp.xds_addr()),
        NodeInfo::new("ztunnel~node-a"),
    )
    .backoff(Backoff::new(
        Duration::from_millis(20),
        Duration::from_millis(200),
    ))
    .watch::<braid_model::Workload>(
        Subscription::Wildcard,
        move |d: Delta<braid_model::Workload>| {
            let _ = tx.send((
                d.updated.iter().map(|u| u.name.clone()).collect(),
                d.removed.clone(),
            ));
        },
    )
    .build()?;
    let (handle, task) = client.spawn();
    let first = tokio::time::timeout(DEADLINE, deltas.recv())
        .await?
        .expect("initial delta");
    assert_eq!(first.0.len(), 30);
    let store = handle.store::<braid_model::Workload>().expect("watched");
    let before = store.get("shop/pod-3").expect("held").value;

    // Restart the control plane on the same port with one pod changed and one gone.
    cp.shutdown().await;
    write(
        dir.path(),
        "pods.yaml",
        &many_pods("shop", 1, 29).replace("198.18.1.4\n", "198.18.1.104\n"),
    )?;
    let cp = braid_control::ControlPlane::start(config).await?;
    let (updated, removed) = tokio::time::timeout(DEADLINE, deltas.recv())
        .await?
        .expect("delta after reconnect");
    assert_eq!(
        updated,
        vec!["shop/pod-3"],
        "only the changed workload is resent"
    );
    assert_eq!(removed, vec!["shop/pod-29"]);
    let after = store.get("shop/pod-3").expect("held").value;
    assert!(!Arc::ptr_eq(&before, &after));
    assert_eq!(
        after.addresses,
        vec!["198.18.1.104".parse::<std::net::IpAddr>()?]
    );
    assert_eq!(store.len(), 29);
    eventually(|| async { handle.status().is_synced() }).await?;

    handle.shutdown();
    let _ = task.await;
    cp.shutdown().await;
    Ok(())
}
