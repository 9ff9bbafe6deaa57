//! Publishes the mesh's root certificates as ConfigMap `braid-ca-root`
//! (key `root-cert.pem`) in every namespace (`--source kube` with a CA):
//! injected sidecars mount it to verify the control plane and their peers.
//!
//! Two watches feed two caches (namespaces, by metadata only, and the
//! ConfigMaps of that one name); after every change the leading replica
//! writes the ConfigMaps that are missing or hold other roots. Deciding
//! which is pure ([`stale_namespaces`]).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    core::PartialObjectMeta,
    runtime::{WatchStreamExt as _, reflector, watcher},
};
use tokio::sync::watch;

use crate::inject::{CA_ROOT_CONFIGMAP, CA_ROOT_KEY};

/// How often the caches are compared even without events (a replica that
/// just became leader catches up within this). Comparing is in memory;
/// only differences cost a request.
const RECHECK: Duration = Duration::from_secs(5);

/// Keeps `braid-ca-root` current in every namespace while `leader` holds,
/// until `shutdown`.
pub async fn run(
    client: Client,
    roots_pem: String,
    leader: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (namespaces, ns_writer) = reflector::store();
    let (configmaps, cm_writer) = reflector::store::<ConfigMap>();
    let ns_events = reflector(
        ns_writer,
        watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .map(|e| e.map(drop));
    let selector = format!("metadata.name={CA_ROOT_CONFIGMAP}");
    let cm_events = reflector(
        cm_writer,
        watcher(
            Api::<ConfigMap>::all(client.clone()),
            watcher::Config::default().fields(&selector),
        ),
    )
    .default_backoff()
    .map(|e| e.map(drop));
    let mut events = futures::stream::select(ns_events.boxed(), cm_events.boxed());
    let mut recheck = tokio::time::interval(RECHECK);
    loop {
        tokio::select! {
            event = events.next() => match event {
                None => return,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "root ConfigMap watch failed; retrying");
                    continue;
                }
                Some(Ok(())) => {}
            },
            _ = recheck.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if !leader.load(Ordering::Relaxed) {
            continue;
        }
        let live: Vec<String> = namespaces
            .state()
            .iter()
            .filter(|ns| ns.metadata.deletion_timestamp.is_none())
            .filter_map(|ns| ns.metadata.name.clone())
            .collect();
        let held: BTreeMap<String, Option<String>> = configmaps
            .state()
            .iter()
            .filter_map(|cm| {
                let ns = cm.metadata.namespace.clone()?;
                let pem = cm.data.as_ref().and_then(|d| d.get(CA_ROOT_KEY)).cloned();
                Some((ns, pem))
            })
            .collect();
        for ns in stale_namespaces(&live, &held, &roots_pem) {
            if let Err(e) = publish(&client, &ns, &roots_pem).await {
                tracing::warn!(namespace = %ns, error = %e, "cannot publish ConfigMap {CA_ROOT_CONFIGMAP}; injected sidecars there cannot start until it exists");
            }
        }
    }
}

/// The namespaces whose `braid-ca-root` is missing or holds other roots.
pub fn stale_namespaces(
    namespaces: &[String],
    held: &BTreeMap<String, Option<String>>,
    roots_pem: &str,
) -> Vec<String> {
    namespaces
        .iter()
        .filter(|ns| held.get(*ns).and_then(Option::as_deref) != Some(roots_pem))
        .cloned()
        .collect()
}

async fn publish(client: &Client, namespace: &str, roots_pem: &str) -> Result<(), kube::Error> {
    let configmap = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CA_ROOT_CONFIGMAP,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "braid-control"},
        },
        "data": {CA_ROOT_KEY: roots_pem},
    });
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .patch(
            CA_ROOT_CONFIGMAP,
            &PatchParams::apply(crate::status::FIELD_MANAGER).force(),
            &Patch::Apply(&configmap),
        )
        .await?;
    tracing::info!(%namespace, "published ConfigMap {CA_ROOT_CONFIGMAP}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_outdated_roots_are_stale() {
        let namespaces = ["a", "b", "c"].map(String::from);
        let held = BTreeMap::from([
            ("a".to_string(), Some("ROOT".to_string())),
            ("b".to_string(), Some("OLD ROOT".to_string())),
            ("gone".to_string(), Some("ROOT".to_string())),
        ]);
        assert_eq!(stale_namespaces(&namespaces, &held, "ROOT"), ["b", "c"]);
        let emptied = BTreeMap::from([("a".to_string(), None)]);
        assert_eq!(stale_namespaces(&namespaces[..1], &emptied, "ROOT"), ["a"]);
    }
}
