use std::{collections::BTreeMap, net::IpAddr};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::super::{MeshSettings, fixtures::*, service_from_kube, validate_endpoint_slice};
use crate::{Endpoint, Service, WorkloadStatus, WorkloadUid};

const SERVICE_NAME: &str = "kubernetes.io/service-name";

fn external_service() -> Value {
    json!({
        "metadata": { "name": "db", "namespace": "shop" },
        "spec": { "ports": [
            { "name": "sql", "port": 5432 },
            { "name": "admin", "port": 8080 },
        ] },
    })
}

fn translate(slices: &[&EndpointSlice]) -> Service {
    service_from_kube(
        &service(external_service()),
        None,
        &[],
        slices,
        &MeshSettings::default(),
    )
    .expect("service must translate")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP")
}

fn ports(pairs: &[(u16, u16)]) -> BTreeMap<u16, u16> {
    pairs.iter().copied().collect()
}

fn db_slice(name: &str, endpoints: Value) -> EndpointSlice {
    slice(json!({
        "metadata": { "name": name, "namespace": "shop", "labels": { SERVICE_NAME: "db" } },
        "addressType": "IPv4",
        "ports": [{ "name": "sql", "port": 15432 }, { "name": "other", "port": 1 }],
        "endpoints": endpoints,
    }))
}

#[test]
fn slice_endpoints_carry_status_workload_and_ports() {
    let s = db_slice(
        "db-1",
        json!([
            { "addresses": ["10.0.0.3"], "conditions": { "ready": false } },
            {
                "addresses": ["10.0.0.1", "10.0.0.2"],
                "targetRef": { "kind": "Pod", "name": "db-0" },
            },
            { "addresses": ["10.0.0.4"], "conditions": { "ready": false, "terminating": true } },
            { "addresses": ["10.0.0.5"], "targetRef": { "kind": "Node", "name": "n" } },
        ]),
    );
    let svc = translate(&[&s]);
    let sql = ports(&[(5432, 15432)]);
    let db0 = Some(WorkloadUid::new("shop", "db-0"));
    let ep = |address: &str, workload: Option<WorkloadUid>, status| Endpoint {
        workload,
        address: ip(address),
        ports: sql.clone(),
        status,
    };
    assert_eq!(
        svc.endpoints,
        vec![
            ep("10.0.0.1", db0.clone(), WorkloadStatus::Healthy),
            ep("10.0.0.2", db0, WorkloadStatus::Healthy),
            ep("10.0.0.3", None, WorkloadStatus::Unhealthy),
            ep("10.0.0.4", None, WorkloadStatus::Terminating),
            ep("10.0.0.5", None, WorkloadStatus::Healthy),
        ]
    );
}

#[test]
fn duplicates_merge_across_slices() {
    let a = db_slice(
        "db-a",
        json!([{ "addresses": ["10.0.0.1"], "conditions": { "ready": false } }]),
    );
    let b = slice(json!({
        "metadata": { "name": "db-b", "namespace": "shop", "labels": { SERVICE_NAME: "db" } },
        "addressType": "IPv4",
        "ports": [{ "name": "admin", "port": 18080 }],
        "endpoints": [{
            "addresses": ["10.0.0.1"],
            "targetRef": { "kind": "Pod", "name": "db-0" },
        }],
    }));
    for order in [[&a, &b], [&b, &a]] {
        let svc = translate(&order);
        assert_eq!(
            svc.endpoints,
            vec![Endpoint {
                workload: Some(WorkloadUid::new("shop", "db-0")),
                address: ip("10.0.0.1"),
                ports: ports(&[(5432, 15432), (8080, 18080)]),
                status: WorkloadStatus::Healthy,
            }]
        );
    }
}

#[test]
fn only_valid_slices_of_this_service_count() {
    let endpoints = json!([{ "addresses": ["10.0.0.1"] }]);
    let mut other_service = db_slice("x", endpoints.clone());
    other_service.metadata.labels = Some([(SERVICE_NAME.into(), "web".into())].into());
    let mut other_ns = db_slice("y", endpoints.clone());
    other_ns.metadata.namespace = Some("elsewhere".into());
    let invalid = db_slice("z", json!([{ "addresses": ["10.0.0.2", "fd00::2"] }]));
    let mut fqdn = db_slice("w", json!([{ "addresses": ["db.example.com"] }]));
    fqdn.address_type = "FQDN".into();
    assert!(
        translate(&[&other_service, &other_ns, &invalid, &fqdn])
            .endpoints
            .is_empty()
    );
}

#[test]
fn unnamed_ports_match_each_other() {
    let svc = service(json!({
        "metadata": { "name": "db", "namespace": "shop" },
        "spec": { "ports": [{ "port": 80 }] },
    }));
    let s = slice(json!({
        "metadata": { "name": "db-1", "namespace": "shop", "labels": { SERVICE_NAME: "db" } },
        "addressType": "IPv6",
        "ports": [{ "port": 8080 }],
        "endpoints": [{ "addresses": ["fd00::1"] }],
    }));
    let svc = service_from_kube(&svc, None, &[], &[&s], &MeshSettings::default()).unwrap();
    assert_eq!(svc.endpoints[0].address, ip("fd00::1"));
    assert_eq!(svc.endpoints[0].ports, ports(&[(80, 8080)]));
}

#[test]
fn validate_accepts_good_slices() {
    let good = db_slice("db-1", json!([{ "addresses": ["10.0.0.1"] }]));
    assert_eq!(validate_endpoint_slice(&good), Ok(()));
    let fqdn = slice(json!({
        "metadata": { "labels": { SERVICE_NAME: "db" } },
        "addressType": "FQDN",
        "endpoints": [{ "addresses": ["db.example.com"] }],
        "ports": [{ "name": "all" }],
    }));
    assert_eq!(validate_endpoint_slice(&fqdn), Ok(()));
}

#[test]
fn validate_names_the_bad_field() {
    let check = |value: Value| {
        let err = validate_endpoint_slice(&slice(value)).expect_err("slice must be rejected");
        (err.field, err.message)
    };
    let base = |address_type: &str, addresses: Value, ports: Value| {
        json!({
            "metadata": { "labels": { SERVICE_NAME: "db" } },
            "addressType": address_type,
            "endpoints": [{ "addresses": ["10.0.0.1"] }, { "addresses": addresses }],
            "ports": ports,
        })
    };

    let (field, message) = check(base("IPv4", json!(["10.0.0.2", "fd00::1"]), json!([])));
    assert_eq!(field, "endpoints[1].addresses[1]");
    assert!(message.contains("own EndpointSlice"), "{message}");
    let (field, _) = check(base("IPv4", json!(["nope"]), json!([])));
    assert_eq!(field, "endpoints[1].addresses[0]");
    let (field, _) = check(base("IPv4", json!([]), json!([])));
    assert_eq!(field, "endpoints[1].addresses");
    let (field, _) = check(base("IP", json!(["10.0.0.2"]), json!([])));
    assert_eq!(field, "addressType");
    let (field, _) = check(base(
        "IPv4",
        json!(["10.0.0.2"]),
        json!([{ "port": 80 }, { "port": 0 }]),
    ));
    assert_eq!(field, "ports[1].port");
    let (field, _) = check(base(
        "IPv4",
        json!(["10.0.0.2"]),
        json!([{ "port": 80, "protocol": "HTTP" }]),
    ));
    assert_eq!(field, "ports[0].protocol");

    let (field, message) = check(json!({ "addressType": "IPv4", "endpoints": [] }));
    assert_eq!(field, r#"metadata.labels["kubernetes.io/service-name"]"#);
    assert!(message.contains("label the slice"), "{message}");
    let (field, _) = check(json!({
        "metadata": { "labels": { SERVICE_NAME: "" } },
        "addressType": "IPv4",
        "endpoints": [],
    }));
    assert_eq!(field, r#"metadata.labels["kubernetes.io/service-name"]"#);
}
