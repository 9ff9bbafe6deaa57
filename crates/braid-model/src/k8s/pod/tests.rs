use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::super::{FieldError, MeshSettings, fixtures::*, workload_from_pod as translate};
use crate::{DataPlaneMode, WaypointRef, Workload, WorkloadStatus, WorkloadUid};

fn workload(pod: &Pod) -> Workload {
    translate(pod, None, &MeshSettings::default())
        .expect("pod must translate")
        .expect("pod must be a workload")
}

fn error(pod: &Pod) -> FieldError {
    translate(pod, None, &MeshSettings::default()).expect_err("pod must be rejected")
}

fn pod_with_spec(spec: Value) -> Pod {
    pod(json!({ "metadata": { "name": "p" }, "spec": spec }))
}

fn pod_with_status(status: Value) -> Pod {
    pod(json!({ "metadata": { "name": "p" }, "status": status }))
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|ip| ip.parse().expect("test IP")).collect()
}

#[test]
fn ready_pod_translates() {
    let pod = ready_pod("shop", "web-1", json!({ "app": "web" }), &["10.0.0.5"]);
    let settings = MeshSettings {
        trust_domain: "example.org".to_string(),
        ..MeshSettings::default()
    };
    let w = translate(&pod, None, &settings).unwrap().unwrap();
    assert_eq!(w.uid, WorkloadUid::new("shop", "web-1"));
    assert_eq!((w.name.as_str(), w.namespace.as_str()), ("web-1", "shop"));
    assert_eq!(w.service_account, "app");
    assert_eq!(w.node, "node-1");
    assert_eq!(w.addresses, ips(&["10.0.0.5"]));
    assert_eq!(w.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(w.mode, DataPlaneMode::None);
    assert!(!w.has_sidecar);
    assert_eq!(w.waypoint, None);
    assert_eq!(w.status, WorkloadStatus::Healthy);
    assert_eq!(w.spiffe_id(), "spiffe://example.org/ns/shop/sa/app");
}

#[test]
fn defaults_namespace_service_account_and_node() {
    let w = workload(&pod(json!({ "metadata": { "name": "p" } })));
    assert_eq!(w.uid, WorkloadUid::new("default", "p"));
    assert_eq!(w.service_account, "default");
    assert_eq!(w.node, "");
    assert!(w.addresses.is_empty());
    assert_eq!(w.status, WorkloadStatus::Unhealthy);
}

#[test]
fn deprecated_service_account_field_is_read() {
    let p = pod_with_spec(json!({ "containers": [], "serviceAccount": "legacy" }));
    assert_eq!(workload(&p).service_account, "legacy");
}

#[test]
fn names_that_would_forge_an_identity_are_rejected() {
    let p = pod_with_spec(json!({ "containers": [], "serviceAccountName": "a/sa/b" }));
    assert_eq!(error(&p).field, "spec.serviceAccountName");
    let p = pod(json!({ "metadata": { "name": "p", "namespace": "a/b" } }));
    assert_eq!(error(&p).field, "metadata.namespace");
    let p = pod(json!({ "metadata": { "name": "P_1" } }));
    assert_eq!(error(&p).field, "metadata.name");
}

#[test]
fn missing_name_is_an_error() {
    let err = error(&pod(json!({ "metadata": { "generateName": "web-" } })));
    assert_eq!(err.field, "metadata.name");
    assert!(err.message.contains("set metadata.name"), "{err}");
}

#[test]
fn several_ips_keep_order_and_drop_duplicates() {
    let pod = ready_pod("ns", "p", json!({}), &["fd00::5", "10.0.0.5", "fd00::5"]);
    assert_eq!(workload(&pod).addresses, ips(&["fd00::5", "10.0.0.5"]));
}

#[test]
fn single_pod_ip_is_the_fallback() {
    let p = pod(json!({ "metadata": { "name": "p" }, "status": { "podIP": "10.0.0.7" } }));
    assert_eq!(workload(&p).addresses, ips(&["10.0.0.7"]));
    let p = pod(json!({ "metadata": { "name": "p" }, "status": { "podIP": "" } }));
    assert!(workload(&p).addresses.is_empty());
}

#[test]
fn bad_ip_names_its_field() {
    let pod = ready_pod("ns", "p", json!({}), &["10.0.0.5", "10.0.0.300"]);
    let err = error(&pod);
    assert_eq!(err.field, "status.podIPs[1].ip");
    assert!(
        err.message.contains("\"10.0.0.300\" is not an IP address"),
        "{err}"
    );
    let p = pod_with_status(json!({ "podIP": "garbage" }));
    assert_eq!(error(&p).field, "status.podIP");
}

#[test]
fn readiness_and_termination() {
    let not_ready = pod_with_status(json!({
        "phase": "Running",
        "conditions": [
            { "type": "Ready", "status": "False" },
            { "type": "PodScheduled", "status": "True" },
        ],
    }));
    assert_eq!(workload(&not_ready).status, WorkloadStatus::Unhealthy);

    let mut terminating = ready_pod("ns", "p", json!({}), &["10.0.0.5"]);
    terminating.metadata.deletion_timestamp =
        serde_json::from_value(json!("2025-01-01T00:00:00Z")).unwrap();
    assert_eq!(workload(&terminating).status, WorkloadStatus::Terminating);
}

#[test]
fn finished_pods_are_not_workloads() {
    for phase in ["Succeeded", "Failed"] {
        let p = pod_with_status(json!({ "phase": phase, "podIP": "10.0.0.5" }));
        assert_eq!(
            translate(&p, None, &MeshSettings::default()),
            Ok(None),
            "{phase}"
        );
    }
}

#[test]
fn mode_precedence() {
    let ambient_ns = namespace("ns", json!({ "braid.dev/mode": "ambient" }));
    let settings = MeshSettings::default();
    let mode = |pod_labels: Value, ns| {
        let p = ready_pod("ns", "p", pod_labels, &[]);
        translate(&p, ns, &settings).map(|w| w.map(|w| w.mode))
    };

    // The pod's label beats the namespace's.
    let pod_label = json!({ "braid.dev/mode": "sidecar" });
    assert_eq!(
        mode(pod_label, Some(&ambient_ns)),
        Ok(Some(DataPlaneMode::Sidecar))
    );
    let opt_out = json!({ "braid.dev/mode": "none" });
    assert_eq!(
        mode(opt_out, Some(&ambient_ns)),
        Ok(Some(DataPlaneMode::None))
    );
    // Else the namespace's, else none.
    assert_eq!(
        mode(json!({}), Some(&ambient_ns)),
        Ok(Some(DataPlaneMode::Ambient))
    );
    assert_eq!(mode(json!({}), None), Ok(Some(DataPlaneMode::None)));
    // A bad namespace label counts as absent.
    let bad_ns = namespace("ns", json!({ "braid.dev/mode": "Ambient" }));
    assert_eq!(
        mode(json!({}), Some(&bad_ns)),
        Ok(Some(DataPlaneMode::None))
    );

    let err = mode(json!({ "braid.dev/mode": "sidecars" }), Some(&ambient_ns)).unwrap_err();
    assert_eq!(err.field, r#"metadata.labels["braid.dev/mode"]"#);
    assert!(
        err.message
            .contains(r#"use one of "sidecar", "ambient", "none""#),
        "{err}"
    );
}

#[test]
fn sidecar_detection() {
    let with = |spec: Value| workload(&pod_with_spec(spec));
    let regular = json!({ "containers": [{ "name": "app" }, { "name": "braid-proxy" }] });
    assert!(with(regular).has_sidecar);
    let native = json!({
        "containers": [{ "name": "app" }],
        "initContainers": [{ "name": "braid-proxy", "restartPolicy": "Always" }],
    });
    assert!(with(native).has_sidecar);
    // A plain init container finishes before the app starts: no sidecar.
    let init_only = json!({
        "containers": [{ "name": "app" }],
        "initContainers": [{ "name": "braid-proxy" }],
    });
    assert!(!with(init_only).has_sidecar);
    assert!(!with(json!({ "containers": [{ "name": "app" }] })).has_sidecar);
}

#[test]
fn waypoint_comes_from_the_namespace() {
    let settings = MeshSettings::default();
    let p = ready_pod("ns", "p", json!({}), &[]);
    let waypoint = |labels| {
        let ns = namespace("ns", labels);
        translate(&p, Some(&ns), &settings)
            .unwrap()
            .unwrap()
            .waypoint
    };
    assert_eq!(
        waypoint(json!({ "braid.dev/waypoint": "wp" })),
        Some(WaypointRef {
            name: "wp".into(),
            namespace: "ns".into()
        })
    );
    assert_eq!(waypoint(json!({ "braid.dev/waypoint": "none" })), None);
    assert_eq!(waypoint(json!({ "braid.dev/waypoint": "Bad_Name" })), None);
    assert_eq!(waypoint(json!({})), None);
}

#[test]
fn garbage_does_not_panic() {
    let garbage = [
        json!({ "metadata": {} }),
        json!({ "metadata": { "name": "" } }),
        json!({ "metadata": { "name": "p" }, "status": { "podIPs": [{ "ip": "" }] } }),
        json!({ "metadata": { "name": "p" }, "status": { "podIPs": [], "podIP": "::1%eth0" } }),
        json!({ "metadata": { "name": "p" }, "spec": { "serviceAccountName": "é" } }),
        json!({ "metadata": { "name": "p", "namespace": "x".repeat(64) } }),
    ];
    for value in garbage {
        let p = pod(value.clone());
        assert!(
            translate(&p, None, &MeshSettings::default()).is_err(),
            "{value}"
        );
    }
}
