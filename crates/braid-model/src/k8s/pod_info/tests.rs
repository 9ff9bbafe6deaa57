use std::{collections::BTreeMap, net::IpAddr};

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::super::{MeshSettings, fixtures::*, workload_from_info, workload_from_pod};
use super::PodInfo;
use crate::{DataPlaneMode, PortProtocol, WaypointRef, Workload, WorkloadStatus, WorkloadUid};

fn info(pod: &Pod) -> PodInfo {
    PodInfo::from_pod(pod)
        .expect("pod must be valid")
        .expect("pod must be a workload")
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|ip| ip.parse().expect("test IP")).collect()
}

fn labels(value: Value) -> BTreeMap<String, String> {
    serde_json::from_value(value).expect("test labels")
}

/// The workload of a ready pod from [`ready_pod`] in namespace `shop`, with
/// no Namespace object and default settings.
fn ready_workload(name: &str, labels_value: Value, addresses: &[&str]) -> Workload {
    Workload {
        uid: WorkloadUid::new("shop", name),
        name: name.to_string(),
        namespace: "shop".to_string(),
        service_account: "app".to_string(),
        node: "node-1".to_string(),
        addresses: ips(addresses),
        labels: labels(labels_value),
        mode: DataPlaneMode::None,
        has_sidecar: false,
        waypoint: None,
        trust_domain: crate::DEFAULT_TRUST_DOMAIN.to_string(),
        status: WorkloadStatus::Healthy,
    }
}

/// A pod whose named ports sit in two containers and a native sidecar, with
/// some that can never match (zero, out of range, unknown protocol, plain
/// init container).
fn native_sidecar_pod() -> Pod {
    pod(json!({
        "metadata": { "name": "native", "namespace": "shop", "labels": { "app": "web" } },
        "spec": {
            "serviceAccount": "legacy",
            "nodeName": "node-2",
            "containers": [{
                "name": "app",
                "ports": [
                    { "name": "http", "containerPort": 8080, "protocol": "UDP" },
                    { "name": "metrics", "containerPort": 9090 },
                    { "name": "zero", "containerPort": 0 },
                    { "name": "big", "containerPort": 70000 },
                    { "name": "odd", "containerPort": 7001, "protocol": "tcp" },
                    { "containerPort": 7002 },
                ],
            }, {
                "name": "second",
                "ports": [
                    { "name": "metrics", "containerPort": 9999 },
                    { "name": "zero", "containerPort": 7003 },
                ],
            }],
            "initContainers": [
                { "name": "setup", "ports": [{ "name": "init", "containerPort": 7000 }] },
                {
                    "name": "braid-proxy",
                    "restartPolicy": "Always",
                    "ports": [
                        { "name": "http", "containerPort": 8081 },
                        { "name": "admin", "containerPort": 15000 },
                        { "name": "odd", "containerPort": 7004 },
                    ],
                },
            ],
        },
        "status": { "podIP": "10.0.0.9", "conditions": [{ "type": "Ready", "status": "True" }] },
    }))
}

#[test]
fn several_ips_translate_as_before() {
    let labels_value = json!({ "app": "web", "braid.dev/mode": "sidecar" });
    let pod = ready_pod(
        "shop",
        "multi",
        labels_value.clone(),
        &["fd00::5", "10.0.0.5", "fd00::5"],
    );
    let info = info(&pod);
    assert_eq!(info.addresses(), ips(&["fd00::5", "10.0.0.5"]));
    assert_eq!(info.mode(), Some(DataPlaneMode::Sidecar));
    let expected = Workload {
        mode: DataPlaneMode::Sidecar,
        ..ready_workload("multi", labels_value, &["fd00::5", "10.0.0.5"])
    };
    let settings = MeshSettings::default();
    assert_eq!(workload_from_info(&info, None, &settings), expected);
    assert_eq!(workload_from_pod(&pod, None, &settings), Ok(Some(expected)));
}

#[test]
fn native_sidecar_and_named_ports() {
    let pod = native_sidecar_pod();
    let info = info(&pod);
    let expected = Workload {
        uid: WorkloadUid::new("shop", "native"),
        name: "native".to_string(),
        namespace: "shop".to_string(),
        service_account: "legacy".to_string(),
        node: "node-2".to_string(),
        addresses: ips(&["10.0.0.9"]),
        labels: labels(json!({ "app": "web" })),
        mode: DataPlaneMode::None,
        has_sidecar: true,
        waypoint: None,
        trust_domain: crate::DEFAULT_TRUST_DOMAIN.to_string(),
        status: WorkloadStatus::Healthy,
    };
    let settings = MeshSettings::default();
    assert_eq!(workload_from_info(&info, None, &settings), expected);
    assert_eq!(workload_from_pod(&pod, None, &settings), Ok(Some(expected)));

    let port = |name, protocol| info.container_port(name, protocol);
    // Regular containers first, and the protocol must match.
    assert_eq!(port("http", PortProtocol::Udp), Some(8080));
    assert_eq!(port("http", PortProtocol::Tcp), Some(8081));
    assert_eq!(port("http", PortProtocol::Sctp), None);
    assert_eq!(port("metrics", PortProtocol::Tcp), Some(9090));
    assert_eq!(port("admin", PortProtocol::Tcp), Some(15000));
    // Unusable entries are skipped, later ones of the same name still count.
    assert_eq!(port("zero", PortProtocol::Tcp), Some(7003));
    assert_eq!(port("big", PortProtocol::Tcp), None);
    assert_eq!(port("odd", PortProtocol::Tcp), Some(7004));
    // A plain init container has finished before the app runs.
    assert_eq!(port("init", PortProtocol::Tcp), None);
    // Only one entry per (name, protocol) is kept.
    assert_eq!(info.named_ports.len(), 6);
}

#[test]
fn terminating_and_not_ready() {
    let mut terminating = ready_pod("shop", "term", json!({}), &["10.0.0.6"]);
    terminating.metadata.deletion_timestamp =
        serde_json::from_value(json!("2025-01-01T00:00:00Z")).expect("test timestamp");
    let term = info(&terminating);
    assert!(term.is_terminating() && term.is_ready());
    let expected = Workload {
        status: WorkloadStatus::Terminating,
        ..ready_workload("term", json!({}), &["10.0.0.6"])
    };
    let settings = MeshSettings::default();
    assert_eq!(workload_from_info(&term, None, &settings), expected);
    assert_eq!(
        workload_from_pod(&terminating, None, &settings),
        Ok(Some(expected))
    );

    let mut not_ready = ready_pod("shop", "slow", json!({}), &["10.0.0.7"]);
    if let Some(status) = not_ready.status.as_mut() {
        status.conditions = serde_json::from_value(json!([
            { "type": "Ready", "status": "False" },
            { "type": "PodScheduled", "status": "True" },
        ]))
        .expect("test conditions");
    }
    let slow = info(&not_ready);
    assert!(!slow.is_terminating() && !slow.is_ready());
    let expected = Workload {
        status: WorkloadStatus::Unhealthy,
        ..ready_workload("slow", json!({}), &["10.0.0.7"])
    };
    assert_eq!(workload_from_info(&slow, None, &settings), expected);
    assert_eq!(
        workload_from_pod(&not_ready, None, &settings),
        Ok(Some(expected))
    );
}

#[test]
fn one_info_serves_every_namespace_state() {
    let info = info(&ready_pod("shop", "p", json!({}), &["10.0.0.5"]));
    let settings = MeshSettings::default();
    let translate = |labels| {
        let ns = namespace("shop", labels);
        let w = workload_from_info(&info, Some(&ns), &settings);
        (w.mode, w.waypoint)
    };
    assert_eq!(
        translate(json!({ "braid.dev/mode": "ambient", "braid.dev/waypoint": "wp" })),
        (
            DataPlaneMode::Ambient,
            Some(WaypointRef {
                name: "wp".into(),
                namespace: "shop".into()
            })
        )
    );
    // Bad Namespace labels count as absent.
    assert_eq!(
        translate(json!({ "braid.dev/mode": "Ambient", "braid.dev/waypoint": "Bad_" })),
        (DataPlaneMode::None, None)
    );
}

#[test]
fn finished_and_invalid_pods_match_workload_from_pod() {
    let settings = MeshSettings::default();
    let pods = [
        // Finished: skipped even with a bad IP or ServiceAccount...
        json!({ "metadata": { "name": "p" }, "status": { "phase": "Succeeded", "podIP": "x" } }),
        json!({
            "metadata": { "name": "p" },
            "spec": { "containers": [], "serviceAccountName": "a/b" },
            "status": { "phase": "Failed" },
        }),
        // ...but not with a bad name.
        json!({ "metadata": { "name": "P" }, "status": { "phase": "Succeeded" } }),
        // The mode label is checked before the ServiceAccount and the IPs.
        json!({
            "metadata": { "name": "p", "labels": { "braid.dev/mode": "nope" } },
            "spec": { "containers": [], "serviceAccountName": "a/b" },
            "status": { "podIP": "x" },
        }),
        json!({
            "metadata": { "name": "p" },
            "spec": { "containers": [], "serviceAccountName": "a/b" },
            "status": { "podIP": "x" },
        }),
        json!({ "metadata": { "name": "p" }, "status": { "podIPs": [{ "ip": "10.0.0.1" }, { "ip": "" }] } }),
    ];
    let expected_fields = [
        None,
        None,
        Some("metadata.name"),
        Some(r#"metadata.labels["braid.dev/mode"]"#),
        Some("spec.serviceAccountName"),
        Some("status.podIPs[1].ip"),
    ];
    for (value, field) in pods.into_iter().zip(expected_fields) {
        let p = pod(value.clone());
        let from_info =
            PodInfo::from_pod(&p).map(|i| i.map(|i| workload_from_info(&i, None, &settings)));
        assert_eq!(from_info, workload_from_pod(&p, None, &settings), "{value}");
        match field {
            None => assert_eq!(PodInfo::from_pod(&p), Ok(None), "{value}"),
            Some(field) => {
                let err = PodInfo::from_pod(&p).expect_err("pod must be rejected");
                assert_eq!(err.field, field, "{value}");
            }
        }
    }
}

#[test]
fn pod_info_stays_small() {
    // Keeping every pod of a large cluster in memory is the point: the
    // inline part stays a few hundred bytes (a Pod is over 2 KB before its
    // containers).
    let size = std::mem::size_of::<PodInfo>();
    assert!(size < 300, "PodInfo is {size} bytes");
    // Vectors carry no spare capacity.
    let info = info(&native_sidecar_pod());
    assert_eq!(info.addresses.capacity(), info.addresses.len());
    assert_eq!(info.named_ports.capacity(), info.named_ports.len());
}
