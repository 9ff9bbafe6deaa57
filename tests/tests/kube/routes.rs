//! Gateway API HTTPRoutes on the real API server (the upstream
//! standard-channel CRDs): what `kubectl apply` changes reaches a proxy's
//! xDS stream, the control plane writes each route's `Accepted` and
//! `ResolvedRefs` conditions with the specification's reasons, and a route
//! the mesh cannot accept keeps its last accepted version serving.

use std::{sync::Arc, time::Duration};

use braid_control::{Config, ControlPlane};
use braid_model::HttpRoute;
use braid_xds::{Client, ClientHandle, Delta, NodeInfo, Subscription};

use crate::{
    crds::install_gateway_api,
    support::{self, Cluster, within},
};

/// How long a status write may take: the leader's first Lease check, then
/// the write.
const STATUS_WITHIN: Duration = Duration::from_secs(20);

/// Service `name` with port 80 (its address assigned by the API server).
fn service(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
"
    )
}

/// The canary route on Service `web`: 90/10 to `v1` and `v2`, then `rest`
/// appended to the rule.
fn canary(ns: &str, v1: &str, v2: &str, rest: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: canary, namespace: {ns}}}
spec:
  parentRefs: [{{group: '', kind: Service, name: web, port: 80}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /api}}}}]
    backendRefs:
    - {{name: {v1}, port: 80, weight: 90}}
    - {{name: {v2}, port: 80, weight: 10}}
{rest}"
    )
}

/// A braid-xds client holding every HTTPRoute, as a sidecar would.
fn routes_client(
    addr: std::net::SocketAddr,
) -> anyhow::Result<(ClientHandle, tokio::task::JoinHandle<()>)> {
    let client = Client::builder(format!("http://{addr}"), NodeInfo::new("sidecar~a"))
        .watch::<HttpRoute>(Subscription::Wildcard, |_: Delta<HttpRoute>| {})
        .build()?;
    Ok(client.spawn())
}

/// The route `name` as the client holds it now.
fn held(client: &ClientHandle, name: &str) -> Option<Arc<HttpRoute>> {
    client.store::<HttpRoute>()?.get(name).map(|c| c.value)
}

/// Service names of the held route's first rule, with whether each is
/// marked unresolved.
fn backends(client: &ClientHandle, name: &str) -> Option<Vec<(String, bool)>> {
    let route = held(client, name)?;
    Some(
        route
            .rules
            .first()?
            .backends
            .iter()
            .map(|b| (b.service.name.clone(), b.invalid.is_some()))
            .collect(),
    )
}

/// `expr` (a kubectl jsonpath) of the route `canary`; empty when unset.
fn route_jsonpath(cluster: &Cluster, ns: &str, expr: &str) -> String {
    cluster
        .kubectl(&[
            "get",
            "httproute",
            "canary",
            "--namespace",
            ns,
            "-o",
            &format!("jsonpath={expr}"),
        ])
        .unwrap_or_default()
}

/// `field` of condition `type_` in Braid's entry of the route's status.
fn condition(cluster: &Cluster, ns: &str, type_: &str, field: &str) -> String {
    route_jsonpath(
        cluster,
        ns,
        &format!(
            "{{.status.parents[?(@.controllerName==\"braid.dev/control-plane\")].conditions[?(@.type==\"{type_}\")].{field}}}"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes_follow_the_api_server() -> anyhow::Result<()> {
    let Some(cluster) = support::cluster() else {
        return Ok(());
    };
    cluster.install_crds()?;
    install_gateway_api(cluster)?;
    let ns = cluster.namespace("routes", &[("braid.dev/mode", "sidecar")])?;
    let ns = ns.name().to_string();
    for name in ["web", "web-v1", "web-v2"] {
        cluster.apply(&service(&ns, name))?;
    }

    // Its own Lease: the tests run side by side on one API server.
    let mut config = Config::for_kube_tests(&cluster.kubeconfig);
    config.pod_namespace = ns.clone();
    let control = ControlPlane::start(config).await?;
    let (client, task) = routes_client(control.xds_addr())?;
    let name = format!("{ns}/canary");

    // Applied with kubectl, served to proxies, Accepted and ResolvedRefs.
    cluster.apply(&canary(&ns, "web-v1", "web-v2", ""))?;
    within(
        Duration::from_secs(10),
        "the route reaches the proxy",
        || {
            backends(&client, &name)
                == Some(vec![("web-v1".into(), false), ("web-v2".into(), false)])
        },
    )
    .await?;
    within(STATUS_WITHIN, "Accepted and ResolvedRefs", || {
        condition(cluster, &ns, "Accepted", "status") == "True"
            && condition(cluster, &ns, "ResolvedRefs", "status") == "True"
    })
    .await?;
    let parent = route_jsonpath(
        cluster,
        &ns,
        "{.status.parents[0].parentRef.kind}/{.status.parents[0].parentRef.name}",
    );
    assert_eq!(
        parent, "Service/web",
        "the entry names the parent as the spec does"
    );

    // A backend that does not exist: served (its share gets 500), and
    // ResolvedRefs=False with reason BackendNotFound naming the field.
    cluster.apply(&canary(&ns, "web-v1", "web-v3", ""))?;
    within(
        Duration::from_secs(10),
        "the unresolved backend is marked",
        || {
            backends(&client, &name)
                == Some(vec![("web-v1".into(), false), ("web-v3".into(), true)])
        },
    )
    .await?;
    within(STATUS_WITHIN, "ResolvedRefs=False", || {
        condition(cluster, &ns, "ResolvedRefs", "reason") == "BackendNotFound"
    })
    .await?;
    let message = condition(cluster, &ns, "ResolvedRefs", "message");
    assert!(
        message.contains("spec.rules[0].backendRefs[1]") && message.contains("web-v3"),
        "{message}"
    );
    assert_eq!(condition(cluster, &ns, "Accepted", "status"), "True");

    // Creating the missing Service resolves the route without an edit.
    cluster.apply(&service(&ns, "web-v3"))?;
    within(
        STATUS_WITHIN,
        "ResolvedRefs=True once web-v3 exists",
        || {
            condition(cluster, &ns, "ResolvedRefs", "status") == "True"
                && backends(&client, &name)
                    == Some(vec![("web-v1".into(), false), ("web-v3".into(), false)])
        },
    )
    .await?;

    // A filter the schema admits but Braid does not implement: Accepted=False
    // with UnsupportedValue, and the proxies keep the last accepted version.
    let extension = "    filters:
    - type: ExtensionRef
      extensionRef: {group: example.com, kind: Teleport, name: far}
";
    cluster.apply(&canary(&ns, "web-v2", "web-v1", extension))?;
    within(STATUS_WITHIN, "Accepted=False", || {
        condition(cluster, &ns, "Accepted", "reason") == "UnsupportedValue"
    })
    .await?;
    let message = condition(cluster, &ns, "Accepted", "message");
    assert!(message.contains("spec.rules[0].filters[0]"), "{message}");
    let observed = condition(cluster, &ns, "Accepted", "observedGeneration");
    let generation = route_jsonpath(cluster, &ns, "{.metadata.generation}");
    assert_eq!(
        observed, generation,
        "the verdict is about the current spec"
    );
    assert_eq!(
        backends(&client, &name),
        Some(vec![("web-v1".into(), false), ("web-v3".into(), false)]),
        "the last accepted version keeps serving"
    );
    assert!(
        control
            .config_errors()
            .iter()
            .any(|e| e.file.to_string_lossy() == format!("HTTPRoute {ns}/canary")),
        "braidctl config-errors shows it too: {:?}",
        control.config_errors()
    );

    // Deleted: gone from the proxies.
    cluster.kubectl(&["delete", "httproute", "canary", "--namespace", &ns])?;
    within(
        Duration::from_secs(10),
        "the route leaves the proxy",
        || held(&client, &name).is_none(),
    )
    .await?;

    client.shutdown();
    let _ = task.await;
    control.shutdown().await;
    Ok(())
}
