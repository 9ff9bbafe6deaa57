//! `braid-control --source kube` against the real API server: what
//! `kubectl` changes reaches a proxy's xDS stream, a namespace's mode label
//! within a second, and a restarted control plane picks up everything that
//! changed while it was down.

use std::{sync::Arc, time::Duration};

use braid_control::{Config, ControlPlane};
use braid_model::{DataPlaneMode, Workload};
use braid_xds::{Client, ClientHandle, NodeInfo, Subscription};

use crate::support::{self, Cluster, within};

/// A pod as the API server stores it after scheduling on node-a;
/// [`run_pod`] then plays the kubelet.
fn pod_yaml(namespace: &str, name: &str) -> String {
    scheduled_pod(namespace, name, "default", "node-a")
}

fn scheduled_pod(namespace: &str, name: &str, account: &str, node: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{app: {name}}}
spec:
  nodeName: {node}
  serviceAccountName: {account}
  containers:
  - name: app
    image: registry.invalid/app:1
    ports: [{{containerPort: 8080, name: http}}]
"
    )
}

/// Creates a pod and, as its kubelet would, marks it Running and Ready with
/// `ip`.
fn run_pod(cluster: &Cluster, namespace: &str, name: &str, ip: &str) -> anyhow::Result<()> {
    run_pod_as(cluster, namespace, name, "default", "node-a", ip)
}

/// [`run_pod`] with a service account and a node.
pub fn run_pod_as(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    account: &str,
    node: &str,
    ip: &str,
) -> anyhow::Result<()> {
    cluster.apply(&scheduled_pod(namespace, name, account, node))?;
    support::mark_running(cluster, namespace, name, ip)
}

/// An xDS client watching every workload, like a ztunnel would.
fn proxy(
    addr: std::net::SocketAddr,
) -> anyhow::Result<(ClientHandle, tokio::task::JoinHandle<()>)> {
    let client = Client::builder(
        format!("http://{addr}"),
        NodeInfo::new("ztunnel~198.18.0.1~node-a"),
    )
    .watch::<Workload>(Subscription::Wildcard, |_| {})
    .build()?;
    let handle = client.handle();
    let task = tokio::spawn(async move {
        let _ = client.run().await;
    });
    Ok((handle, task))
}

/// The workload `uid` as the proxy holds it now.
fn held(proxy: &ClientHandle, uid: &str) -> Option<Arc<Workload>> {
    proxy.store::<Workload>()?.get(uid).map(|c| c.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_follows_the_api_server() -> anyhow::Result<()> {
    let Some(cluster) = support::cluster() else {
        return Ok(());
    };
    cluster.install_crds()?;
    let ns = cluster.namespace("source", &[("braid.dev/mode", "sidecar")])?;
    let ns = ns.name().to_string();
    run_pod(cluster, &ns, "web", "198.18.40.10")?;

    // Its own Lease: the tests run side by side on one API server.
    let config = || {
        let mut config = Config::for_kube_tests(&cluster.kubeconfig);
        config.pod_namespace = ns.clone();
        config
    };
    let control = ControlPlane::start(config()).await?;
    let xds_addr = control.xds_addr();
    let (proxy, task) = proxy(xds_addr)?;
    let web = format!("{ns}/web");
    within(Duration::from_secs(10), "the pod reaches the proxy", || {
        held(&proxy, &web).is_some_and(|w| w.mode == DataPlaneMode::Sidecar)
    })
    .await?;

    // The namespace's mode label, changed with kubectl, is streamed within 1 s.
    cluster.kubectl(&[
        "label",
        "namespace",
        &ns,
        "braid.dev/mode=ambient",
        "--overwrite",
    ])?;
    let took = within(
        Duration::from_secs(1),
        "the mode change reaches the proxy",
        || held(&proxy, &web).is_some_and(|w| w.mode == DataPlaneMode::Ambient),
    )
    .await?;
    eprintln!("namespace label → proxy: {took:?}");

    // A pod the API server cannot reject but the mesh can: an unknown mode.
    cluster.apply(&pod_yaml(&ns, "odd").replace(
        "labels: {app: odd}",
        "labels: {app: odd, braid.dev/mode: sidecars}",
    ))?;
    within(Duration::from_secs(5), "the bad label is reported", || {
        control.config_errors().iter().any(|e| {
            e.file.to_string_lossy() == format!("Pod {ns}/odd")
                && e.field.contains("braid.dev/mode")
        })
    })
    .await?;

    // A policy the API server's schema admits but the mesh cannot enforce
    // gets an Invalid condition naming the field; fixed, it is Accepted.
    let policy = |selector: &str| {
        format!(
            "apiVersion: braid.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: only-web, namespace: {ns}}}
spec:
  selector: {selector}
  rules:
  - from: {{namespaces: [{ns}]}}
"
        )
    };
    cluster.apply(&policy(
        "{matchExpressions: [{key: app, operator: In, values: [web]}]}",
    ))?;
    let condition = |field: &str| {
        cluster.kubectl(&[
            "get",
            "authorizationpolicy",
            "only-web",
            "--namespace",
            &ns,
            "-o",
            &format!("jsonpath={{.status.conditions[?(@.type==\"Accepted\")].{field}}}"),
        ])
    };
    let generation = |field: &str| {
        cluster.kubectl(&[
            "get",
            "authorizationpolicy",
            "only-web",
            "--namespace",
            &ns,
            "-o",
            &format!("jsonpath={{{field}}}"),
        ])
    };
    within(Duration::from_secs(15), "the Invalid condition", || {
        condition("reason").is_ok_and(|r| r == "Invalid")
    })
    .await?;
    let message = condition("message")?;
    assert!(
        message.contains("spec.selector.matchExpressions"),
        "{message}"
    );
    cluster.apply(&policy("{matchLabels: {app: web}}"))?;
    within(Duration::from_secs(15), "the Accepted condition", || {
        condition("reason").is_ok_and(|r| r == "Accepted")
            && generation(".status.observedGeneration").ok()
                == generation(".metadata.generation").ok()
    })
    .await?;

    // Down: while nobody watches, a pod goes, a pod comes, the mode flips back.
    control.shutdown().await;
    // As the kubelet would once the containers stopped: no grace left.
    cluster.kubectl(&[
        "delete",
        "pod",
        "web",
        "--namespace",
        &ns,
        "--grace-period=0",
        "--force",
    ])?;
    run_pod(cluster, &ns, "api", "198.18.40.11")?;
    cluster.kubectl(&[
        "label",
        "namespace",
        &ns,
        "braid.dev/mode=sidecar",
        "--overwrite",
    ])?;
    let mut config = config();
    config.xds_listen = xds_addr;
    let control = ControlPlane::start(config).await?;
    let api = format!("{ns}/api");
    within(
        Duration::from_secs(15),
        "the reconnected proxy sees every change made while the control plane was down",
        || {
            held(&proxy, &web).is_none()
                && held(&proxy, &api).is_some_and(|w| w.mode == DataPlaneMode::Sidecar)
        },
    )
    .await?;

    proxy.shutdown();
    let _ = task.await;
    control.shutdown().await;
    Ok(())
}
