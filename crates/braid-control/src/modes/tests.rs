use braid_model::k8s::{MeshSettings, workload_from_pod};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use serde_json::json;

use super::*;

/// A workload translated from real objects, so label precedence is the
/// model's: `ns_mode` on the Namespace, `pod_mode` on the Pod, and the
/// braid-proxy container when `sidecar`.
fn workload(ns_mode: Option<&str>, pod_mode: Option<&str>, sidecar: bool) -> Workload {
    let ns_labels = ns_mode.map_or_else(|| json!({}), |m| json!({ "braid.dev/mode": m }));
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": { "name": "shop", "labels": ns_labels }
    }))
    .unwrap();
    let mut pod_labels = json!({ "app": "web" });
    if let Some(m) = pod_mode {
        pod_labels["braid.dev/mode"] = json!(m);
    }
    let mut containers = vec![json!({ "name": "app", "image": "app" })];
    if sidecar {
        containers.push(json!({ "name": "braid-proxy", "image": "braid/proxy" }));
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "web-0", "namespace": "shop", "labels": pod_labels },
        "spec": { "nodeName": "node-a", "containers": containers },
        "status": { "podIP": "198.18.0.1" }
    }))
    .unwrap();
    workload_from_pod(&pod, Some(&namespace), &MeshSettings::default())
        .unwrap()
        .unwrap()
}

#[test]
fn every_label_and_sidecar_combination() {
    use DataPlaneMode::{Ambient, None as Off, Sidecar};
    use PendingRestart as P;
    // (namespace label, pod label, has sidecar) -> (effective, actual, pending)
    let table = [
        // Sidecar namespace: injected pods are done, others wait for injection.
        ((Some("sidecar"), None, true), (Sidecar, Sidecar, P::None)),
        (
            (Some("sidecar"), None, false),
            (Sidecar, Off, P::ToGetSidecar),
        ),
        // Ambient namespace: captured at once unless a sidecar is still there.
        ((Some("ambient"), None, false), (Ambient, Ambient, P::None)),
        (
            (Some("ambient"), None, true),
            (Ambient, Sidecar, P::ToJoinAmbient),
        ),
        // None, by label or by no label at all.
        ((Some("none"), None, false), (Off, Off, P::None)),
        (
            (Some("none"), None, true),
            (Off, Sidecar, P::ToLeaveSidecar),
        ),
        ((None, None, false), (Off, Off, P::None)),
        ((None, None, true), (Off, Sidecar, P::ToLeaveSidecar)),
        // The pod label overrides the namespace label, both ways.
        ((Some("sidecar"), Some("none"), false), (Off, Off, P::None)),
        (
            (Some("sidecar"), Some("none"), true),
            (Off, Sidecar, P::ToLeaveSidecar),
        ),
        (
            (Some("sidecar"), Some("ambient"), false),
            (Ambient, Ambient, P::None),
        ),
        (
            (Some("sidecar"), Some("ambient"), true),
            (Ambient, Sidecar, P::ToJoinAmbient),
        ),
        (
            (Some("ambient"), Some("sidecar"), false),
            (Sidecar, Off, P::ToGetSidecar),
        ),
        (
            (Some("ambient"), Some("sidecar"), true),
            (Sidecar, Sidecar, P::None),
        ),
        ((Some("ambient"), Some("none"), false), (Off, Off, P::None)),
        (
            (Some("none"), Some("ambient"), false),
            (Ambient, Ambient, P::None),
        ),
        ((None, Some("sidecar"), true), (Sidecar, Sidecar, P::None)),
    ];
    for ((ns, pod, sidecar), (effective, actual, pending)) in table {
        let w = workload(ns, pod, sidecar);
        let row = &rows([&w], &ConnectedProxies::default(), None)[0];
        let case = format!("namespace {ns:?}, pod {pod:?}, sidecar {sidecar}");
        assert_eq!(row.effective, effective, "effective: {case}");
        assert_eq!(row.actual, actual, "actual: {case}");
        assert_eq!(row.pending, pending, "pending: {case}");
        assert_eq!(row.proxy, None, "nothing connected: {case}");
    }
}

#[test]
fn proxy_is_the_connected_sidecar_or_the_nodes_ztunnel() {
    let sidecar_ids = ["sidecar~shop/web-0", "braidctl~watch"];
    let ztunnel_ids = ["ztunnel~node-a", "ztunnel~node-b"];
    let both: Vec<&str> = sidecar_ids.iter().chain(&ztunnel_ids).copied().collect();
    let sidecar = Some(ServingProxy {
        kind: ProxyKind::Sidecar,
        node_id: "sidecar~shop/web-0".into(),
    });
    let ztunnel = Some(ServingProxy {
        kind: ProxyKind::Ztunnel,
        node_id: "ztunnel~node-a".into(),
    });
    // (namespace label, has sidecar, connected node ids) -> proxy
    let table: [(&str, bool, &[&str], Option<ServingProxy>); 8] = [
        ("sidecar", true, &sidecar_ids, sidecar.clone()),
        ("sidecar", true, &ztunnel_ids, None),
        // A pod with a sidecar is never the ztunnel's, even in ambient.
        ("ambient", true, &both, sidecar.clone()),
        ("ambient", true, &ztunnel_ids, None),
        ("ambient", false, &ztunnel_ids, ztunnel.clone()),
        ("ambient", false, &["ztunnel~node-b"], None),
        ("none", false, &both, sidecar.clone()),
        ("none", false, &ztunnel_ids, None),
    ];
    for (ns, has_sidecar, ids, expected) in table {
        let w = workload(Some(ns), None, has_sidecar);
        let proxies = ConnectedProxies::from_node_ids(ids.iter().copied());
        let row = &rows([&w], &proxies, None)[0];
        assert_eq!(
            row.proxy, expected,
            "namespace {ns}, sidecar {has_sidecar}, connected {ids:?}"
        );
    }
}

#[test]
fn unscheduled_ambient_pods_have_no_ztunnel() {
    let mut w = workload(Some("ambient"), None, false);
    w.node.clear();
    let proxies = ConnectedProxies::from_node_ids(["ztunnel~"]);
    assert_eq!(rows([&w], &proxies, None)[0].proxy, None);
}

#[test]
fn rows_are_sorted_and_filtered_by_namespace() {
    let mut a = workload(Some("ambient"), None, false);
    a.namespace = "zoo".into();
    let mut b = workload(Some("sidecar"), None, true);
    b.name = "web-1".into();
    let c = workload(Some("sidecar"), None, false);
    let proxies = ConnectedProxies::default();
    let names: Vec<String> = rows([&a, &b, &c], &proxies, None)
        .into_iter()
        .map(|r| format!("{}/{}", r.namespace, r.name))
        .collect();
    assert_eq!(names, ["shop/web-0", "shop/web-1", "zoo/web-0"]);
    let shop = rows([&a, &b, &c], &proxies, Some("shop"));
    assert_eq!(shop.len(), 2);
    assert!(rows([&a, &b, &c], &proxies, Some("nope")).is_empty());
}
