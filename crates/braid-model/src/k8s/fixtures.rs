//! Kubernetes objects for tests, written as the JSON a manifest would hold.

use k8s_openapi::api::{
    core::v1::{Namespace, Pod, Service as KubeService},
    discovery::v1::EndpointSlice,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn from_json<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("fixture must deserialize")
}

/// A Namespace with `labels`.
pub(super) fn namespace(name: &str, labels: Value) -> Namespace {
    from_json(json!({ "metadata": { "name": name, "labels": labels } }))
}

/// A pod from JSON.
pub(super) fn pod(value: Value) -> Pod {
    from_json(value)
}

/// A running, ready pod in `ns` with `labels` and `ips`, whose one container
/// declares the named port `http` = 8080.
pub(super) fn ready_pod(ns: &str, name: &str, labels: Value, ips: &[&str]) -> Pod {
    let pod_ips: Vec<Value> = ips.iter().map(|ip| json!({ "ip": ip })).collect();
    pod(json!({
        "metadata": { "name": name, "namespace": ns, "labels": labels },
        "spec": {
            "serviceAccountName": "app",
            "nodeName": "node-1",
            "containers": [{
                "name": "app",
                "ports": [{ "name": "http", "containerPort": 8080 }],
            }],
        },
        "status": {
            "phase": "Running",
            "podIPs": pod_ips,
            "conditions": [{ "type": "Ready", "status": "True" }],
        },
    }))
}

/// A Service from JSON.
pub(super) fn service(value: Value) -> KubeService {
    from_json(value)
}

/// An EndpointSlice from JSON.
pub(super) fn slice(value: Value) -> EndpointSlice {
    from_json(value)
}
