//! Waypoints declared as Gateway API Gateways on the real API server: the
//! control plane gives a `braid-waypoint` Gateway a ServiceAccount, a
//! Service and a Deployment owned by it, says `Accepted` and, once a
//! waypoint pod is ready, `Programmed` with the Service's address; a
//! Gateway it cannot accept says why and keeps its last good objects;
//! a route attached to the Gateway gets Braid's status entry there;
//! deleting the Gateway lets the garbage collector remove them; a Gateway
//! of another class is left alone. `braidctl waypoint apply|list|delete`
//! drive the same.

use std::time::Duration;

use braid_control::{Config, ControlPlane};

use crate::{
    crds::install_gateway_api,
    install::{braidctl_ok, run},
    support::{self, Cluster, within},
};

/// How long a status write or an object may take: the leader's first
/// Lease check, then the writes.
const WITHIN: Duration = Duration::from_secs(30);

/// Gateway `name` of class `class` with one listener of `protocol`.
fn gateway(ns: &str, name: &str, class: &str, protocol: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {ns}}}
spec:
  gatewayClassName: {class}
  infrastructure: {{labels: {{team: shop}}}}
  listeners: [{{name: mesh, port: 15008, protocol: {protocol}}}]
"
    )
}

/// `kubectl get <what> -o jsonpath=<expr>`; empty when absent.
fn get(cluster: &Cluster, ns: &str, what: &str, expr: &str) -> String {
    cluster
        .kubectl(&[
            "get",
            what,
            "--namespace",
            ns,
            "--ignore-not-found",
            "-o",
            &format!("jsonpath={expr}"),
        ])
        .unwrap_or_default()
}

/// `field` of the Gateway's condition `type_`.
fn condition(cluster: &Cluster, ns: &str, type_: &str, field: &str) -> String {
    get(
        cluster,
        ns,
        "gateway/wp",
        &format!("{{.status.conditions[?(@.type==\"{type_}\")].{field}}}"),
    )
}

/// Acts as the scheduler and the kubelet for the waypoint's pod the
/// ReplicaSet controller made: binds it to a node, marks it Running and
/// Ready with `ip`. Returns its name.
fn run_waypoint_pod(cluster: &Cluster, ns: &str, ip: &str) -> anyhow::Result<String> {
    let name = get(cluster, ns, "pods", "{.items[0].metadata.name}");
    anyhow::ensure!(!name.is_empty(), "no waypoint pod");
    // What the scheduler posts: `pods/binding` sets the node.
    cluster.kubectl_stdin(
        &["create", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Binding\nmetadata: {{name: {name}, namespace: {ns}}}\ntarget: {{apiVersion: v1, kind: Node, name: node-a}}\n"
        ),
    )?;
    support::mark_running(cluster, ns, &name, ip)?;
    Ok(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waypoint_gateways_become_deployments_and_services() -> anyhow::Result<()> {
    let Some(cluster) = support::cluster() else {
        return Ok(());
    };
    cluster.install_crds()?;
    install_gateway_api(cluster)?;
    let ns = cluster.namespace("waypoints", &[("braid.dev/mode", "ambient")])?;
    let ns = ns.name().to_string();

    // Its own Lease: the tests run side by side on one API server. Every
    // test's control plane then leads and writes each waypoint's objects,
    // so this one must be configured like theirs (the default image); the
    // unit tests in braid-control's waypoints module check other images.
    let mut config = Config::for_kube_tests(&cluster.kubeconfig);
    config.pod_namespace = ns.clone();
    let expected_image = config.proxy_image.clone();
    let control = ControlPlane::start(config).await?;

    // The leader puts the class in place, naming Braid, Accepted.
    within(WITHIN, "GatewayClass braid-waypoint Accepted", || {
        cluster
            .kubectl(&[
                "get",
                "gatewayclass",
                "braid-waypoint",
                "-o",
                "jsonpath={.spec.controllerName} {.status.conditions[?(@.type==\"Accepted\")].status}",
            ])
            .is_ok_and(|out| out.trim() == "braid.dev/control-plane True")
    })
    .await?;

    // Applied: its objects, owned by it; Accepted; not Programmed while no
    // pod is ready.
    cluster.apply(&gateway(&ns, "wp", "braid-waypoint", "HBONE"))?;
    let uid = get(cluster, &ns, "gateway/wp", "{.metadata.uid}");
    within(WITHIN, "ServiceAccount, Service and Deployment wp", || {
        ["serviceaccount/wp", "service/wp", "deployment/wp"]
            .iter()
            .all(|what| get(cluster, &ns, what, "{.metadata.ownerReferences[0].uid}") == uid)
    })
    .await?;
    let image = get(
        cluster,
        &ns,
        "deployment/wp",
        "{.spec.template.spec.containers[0].image}",
    );
    assert_eq!(image, expected_image);
    let args = get(
        cluster,
        &ns,
        "deployment/wp",
        "{.spec.template.spec.containers[0].args}",
    );
    assert!(args.contains(&format!("{ns}/wp")), "{args}");
    assert_eq!(
        get(
            cluster,
            &ns,
            "deployment/wp",
            "{.spec.template.metadata.labels.team}"
        ),
        "shop",
        "infrastructure labels reach the pods"
    );
    assert_eq!(
        get(cluster, &ns, "service/wp", "{.spec.ports[0].port}"),
        "15008"
    );
    within(WITHIN, "Accepted=True, Programmed=False (Pending)", || {
        condition(cluster, &ns, "Accepted", "status") == "True"
            && condition(cluster, &ns, "Programmed", "reason") == "Pending"
    })
    .await?;

    // The controller manager made the pod; once it is ready, Programmed,
    // with the Service's cluster IP as the Gateway's address.
    within(WITHIN, "the ReplicaSet's pod", || {
        !get(cluster, &ns, "pods", "{.items[0].metadata.name}").is_empty()
    })
    .await?;
    run_waypoint_pod(cluster, &ns, "198.18.9.20")?;
    within(WITHIN, "Programmed=True", || {
        condition(cluster, &ns, "Programmed", "status") == "True"
    })
    .await?;
    let cluster_ip = get(cluster, &ns, "service/wp", "{.spec.clusterIP}");
    assert_eq!(
        get(cluster, &ns, "gateway/wp", "{.status.addresses[0].value}"),
        cluster_ip
    );

    // A route attached to the waypoint's Gateway gets Braid's entry there.
    cluster.apply(&format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: at-wp, namespace: {ns}}}
spec:
  parentRefs: [{{name: wp}}]
  rules: [{{backendRefs: [{{name: wp, port: 15008}}]}}]
"
    ))?;
    within(WITHIN, "the route's entry at the waypoint", || {
        get(
            cluster,
            &ns,
            "httproute/at-wp",
            "{.status.parents[?(@.controllerName==\"braid.dev/control-plane\")].conditions[?(@.type==\"Accepted\")].status}",
        ) == "True"
    })
    .await?;
    assert_eq!(
        get(
            cluster,
            &ns,
            "httproute/at-wp",
            "{.status.parents[0].parentRef.kind}/{.status.parents[0].parentRef.name}"
        ),
        "Gateway/wp"
    );
    // The Gateway's listener counts it.
    within(WITHIN, "listener mesh: attachedRoutes 1", || {
        get(
            cluster,
            &ns,
            "gateway/wp",
            "{.status.listeners[0].name}={.status.listeners[0].attachedRoutes}",
        ) == "mesh=1"
    })
    .await?;
    assert_eq!(
        get(
            cluster,
            &ns,
            "gateway/wp",
            "{.status.listeners[0].conditions[?(@.type==\"Programmed\")].status}/{.status.listeners[0].supportedKinds[0].kind}",
        ),
        "True/HTTPRoute"
    );

    // Not acceptable: the reason for the field, the objects stay.
    cluster.apply(&gateway(&ns, "wp", "braid-waypoint", "HTTP"))?;
    within(WITHIN, "Accepted=False (ListenersNotValid)", || {
        condition(cluster, &ns, "Accepted", "reason") == "ListenersNotValid"
    })
    .await?;
    let message = condition(cluster, &ns, "Accepted", "message");
    assert!(message.contains("spec.listeners[0].protocol"), "{message}");
    assert_eq!(condition(cluster, &ns, "Programmed", "reason"), "Invalid");
    within(WITHIN, "listener mesh: UnsupportedProtocol, no routes", || {
        get(
            cluster,
            &ns,
            "gateway/wp",
            "{.status.listeners[0].conditions[?(@.type==\"Accepted\")].reason}/{.status.listeners[0].attachedRoutes}",
        ) == "UnsupportedProtocol/0"
    })
    .await?;
    assert!(
        !get(cluster, &ns, "deployment/wp", "{.metadata.name}").is_empty(),
        "the last accepted waypoint keeps running"
    );

    // Another controller's Gateway: no objects, no status from Braid.
    cluster.apply(&gateway(&ns, "ingress", "example", "HTTP"))?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        get(cluster, &ns, "deployment/ingress", "{.metadata.name}"),
        ""
    );
    let reason = get(
        cluster,
        &ns,
        "gateway/ingress",
        "{.status.conditions[?(@.type==\"Accepted\")].reason}",
    );
    assert_ne!(reason, "Accepted", "Braid does not accept it");

    // Deleted: the garbage collector removes what it owned.
    cluster.kubectl(&["delete", "gateway", "wp", "--namespace", &ns])?;
    within(
        Duration::from_secs(60),
        "the waypoint's objects are collected",
        || {
            ["serviceaccount/wp", "service/wp", "deployment/wp"]
                .iter()
                .all(|what| get(cluster, &ns, what, "{.metadata.name}").is_empty())
        },
    )
    .await?;

    control.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn braidctl_manages_waypoints() -> anyhow::Result<()> {
    let Some(cluster) = support::cluster() else {
        return Ok(());
    };
    cluster.install_crds()?;
    install_gateway_api(cluster)?;
    let ns = cluster.namespace("braidctl-wp", &[("braid.dev/mode", "ambient")])?;
    let ns = ns.name().to_string();
    let mut config = Config::for_kube_tests(&cluster.kubeconfig);
    config.pod_namespace = ns.clone();
    let control = ControlPlane::start(config).await?;

    // Printed for a YAML directory: nothing applied.
    let printed = braidctl_ok(
        cluster,
        &["waypoint", "apply", "-n", &ns, "--name", "wp", "--print"],
    )?;
    assert!(
        printed.contains("gatewayClassName: braid-waypoint"),
        "{printed}"
    );
    assert_eq!(get(cluster, &ns, "gateway/wp", "{.metadata.name}"), "");

    let applied = braidctl_ok(
        cluster,
        &[
            "waypoint",
            "apply",
            "-n",
            &ns,
            "--name",
            "wp",
            "--enroll-namespace",
        ],
    )?;
    assert!(
        applied.contains(&format!("namespace {ns} labelled braid.dev/waypoint=wp")),
        "{applied}"
    );
    let label = get(
        cluster,
        "default",
        &format!("namespace/{ns}"),
        "{.metadata.labels.braid\\.dev/waypoint}",
    );
    assert_eq!(label, "wp");
    // Not ready yet: --wait gives up, saying why.
    within(WITHIN, "the Deployment's pod", || {
        !get(cluster, &ns, "pods", "{.items[0].metadata.name}").is_empty()
    })
    .await?;
    let (ok, _, stderr) = run(
        cluster,
        &[
            "waypoint",
            "apply",
            "-n",
            &ns,
            "--name",
            "wp",
            "--wait",
            "--timeout",
            "3",
        ],
    )?;
    assert!(!ok && stderr.contains("is not programmed"), "{stderr}");

    run_waypoint_pod(cluster, &ns, "198.18.9.30")?;
    let waited = braidctl_ok(
        cluster,
        &[
            "waypoint",
            "apply",
            "-n",
            &ns,
            "--name",
            "wp",
            "--wait",
            "--timeout",
            "30",
        ],
    )?;
    assert!(waited.contains("is programmed"), "{waited}");
    let listed = braidctl_ok(cluster, &["waypoint", "list", "-n", &ns])?;
    let row = listed
        .lines()
        .find(|l| l.starts_with(&ns))
        .unwrap_or_else(|| panic!("a row for the waypoint:\n{listed}"));
    assert!(
        row.contains(" True ") && row.ends_with(&format!("namespace {ns}")),
        "{listed}"
    );

    // Deleted while the namespace still names it: a warning, and the
    // garbage collector takes its objects.
    let (ok, _, stderr) = run(cluster, &["waypoint", "delete", "wp", "-n", &ns])?;
    assert!(ok && stderr.contains("still name waypoint"), "{stderr}");
    within(
        Duration::from_secs(60),
        "the waypoint's Deployment is collected",
        || get(cluster, &ns, "deployment/wp", "{.metadata.name}").is_empty(),
    )
    .await?;
    let listed = braidctl_ok(cluster, &["waypoint", "list", "-n", &ns])?;
    assert!(listed.contains("which does not exist"), "{listed}");

    control.shutdown().await;
    Ok(())
}
