//! Sidecar injection through the API server: braid-control registers its
//! CA in a `MutatingWebhookConfiguration`, and a pod applied with `kubectl`
//! in a sidecar namespace is stored with the native sidecar.

use std::time::{Duration, Instant};

use braid_control::{Config, ControlPlane};

use crate::support::{self, Cluster};

/// Deletes the (cluster-scoped) webhook configuration on drop, so a failed
/// test does not leave the shared API server calling a dead webhook.
struct Registration<'a> {
    cluster: &'a Cluster,
    name: String,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.kubectl(&[
            "delete",
            "mutatingwebhookconfiguration",
            &self.name,
            "--ignore-not-found",
        ]);
    }
}

/// A registration for `url`, for pods of `namespace` only, without a
/// `caBundle` (the control plane writes it). It fails closed, so a broken
/// webhook fails the test instead of admitting the pod unchanged.
fn registration(name: &str, url: &str, namespace: &str) -> String {
    format!(
        "apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: {name}
webhooks:
- name: inject.braid.dev
  clientConfig:
    url: {url}
  rules:
  - operations: [CREATE]
    apiGroups: ['']
    apiVersions: [v1]
    resources: [pods]
  namespaceSelector:
    matchExpressions:
    - {{key: kubernetes.io/metadata.name, operator: In, values: [{namespace}]}}
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: 10
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_applied_in_a_sidecar_namespace_is_stored_injected() -> anyhow::Result<()> {
    let Some(cluster) = support::cluster() else {
        return Ok(());
    };
    cluster.install_crds()?;
    let ns = cluster.namespace("inject", &[("braid.dev/mode", "sidecar")])?;
    let ns = ns.name().to_string();
    let ca = tempfile::tempdir()?;
    let mut config = Config::for_kube_tests(&cluster.kubeconfig);
    config.ca_dir = Some(ca.path().to_path_buf());
    config.webhook_configuration = format!("braid-test-{ns}");
    // Its own Lease: the leader publishes the root ConfigMaps.
    config.pod_namespace = ns.clone();
    let control = ControlPlane::start(config.clone()).await?;
    let addr = control
        .webhook_addr()
        .ok_or_else(|| anyhow::anyhow!("no webhook although there is a CA"))?;

    let guard = Registration {
        cluster,
        name: config.webhook_configuration.clone(),
    };
    cluster.apply(&registration(
        &guard.name,
        &format!("https://{addr}/inject"),
        &ns,
    ))?;
    // The control plane, watching for the registration, fills in the caBundle.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bundle = cluster.kubectl(&[
            "get",
            "mutatingwebhookconfiguration",
            &guard.name,
            "-o",
            "jsonpath={.webhooks[0].clientConfig.caBundle}",
        ])?;
        if !bundle.trim().is_empty() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the control plane never wrote the caBundle of {}",
            guard.name
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    cluster.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: {ns}}}
spec:
  containers:
  - {{name: app, image: registry.invalid/app:1}}
"
    ))?;
    let stored: serde_json::Value = serde_json::from_str(&cluster.kubectl(&[
        "get",
        "pod",
        "web",
        "--namespace",
        &ns,
        "-o",
        "json",
    ])?)?;
    let init = stored["spec"]["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let proxy = init
        .iter()
        .find(|c| c["name"] == "braid-proxy")
        .ok_or_else(|| anyhow::anyhow!("no braid-proxy init container in {stored:#}"))?;
    assert_eq!(proxy["restartPolicy"], "Always", "a native sidecar");
    assert_eq!(
        stored["metadata"]["annotations"]["braid.dev/injected"], "true",
        "{stored:#}"
    );
    assert_eq!(stored["spec"]["containers"][0]["name"], "app");

    // The pod mounts ConfigMap braid-ca-root: the control plane publishes
    // the mesh root in every namespace.
    let root = std::fs::read_to_string(ca.path().join("root-cert.pem"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let published = cluster.kubectl(&[
            "get",
            "configmap",
            "braid-ca-root",
            "--namespace",
            &ns,
            "-o",
            "jsonpath={.data.root-cert\\.pem}",
        ]);
        if published.as_deref().is_ok_and(|p| p.trim() == root.trim()) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "ConfigMap braid-ca-root in {ns} does not hold the root: {published:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    drop(guard);
    control.shutdown().await;
    Ok(())
}
