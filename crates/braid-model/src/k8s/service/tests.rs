use std::{collections::BTreeMap, net::IpAddr};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use serde_json::{Value, json};

use super::super::{FieldError, MeshSettings, PodInfo, fixtures::*, service_from_kube};
use crate::{
    Endpoint, PortProtocol, Service, ServicePort, WaypointRef, WorkloadStatus, WorkloadUid,
};

/// Translates `svc` with `pods` as endpoint candidates. Like a control
/// plane, passes only the pods that have a [`PodInfo`]: neither invalid nor
/// finished.
fn translate(svc: Value, ns: Option<&Namespace>, pods: &[&Pod]) -> Result<Service, FieldError> {
    let infos: Vec<PodInfo> = pods
        .iter()
        .filter_map(|p| PodInfo::from_pod(p).ok().flatten())
        .collect();
    let infos: Vec<&PodInfo> = infos.iter().collect();
    service_from_kube(&service(svc), ns, &infos, &[], &MeshSettings::default())
}

fn spec(spec: Value) -> Value {
    json!({ "metadata": { "name": "web", "namespace": "shop" }, "spec": spec })
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP")
}

fn error_field(svc: Value) -> String {
    translate(svc, None, &[])
        .expect_err("service must be rejected")
        .field
}

#[test]
fn identity_vips_and_ports() {
    let svc = translate(
        spec(json!({ "clusterIP": "10.96.0.10", "ports": [{ "port": 80 }] })),
        None,
        &[],
    )
    .unwrap();
    assert_eq!(svc.reference.to_string(), "shop/web");
    assert_eq!(svc.hostname, "web.shop.svc.cluster.local");
    assert_eq!(svc.vips, vec![ip("10.96.0.10")]);
    assert!(!svc.headless);
    assert_eq!(
        svc.ports,
        vec![ServicePort {
            name: String::new(),
            port: 80,
            target_port: Some(80),
            target_port_name: None,
            app_protocol: None,
            protocol: PortProtocol::Tcp,
        }]
    );
    assert!(svc.endpoints.is_empty());
}

#[test]
fn cluster_ips_win_over_cluster_ip() {
    let svc = translate(
        spec(json!({ "clusterIP": "10.96.0.10", "clusterIPs": ["fd00::10", "10.96.0.10"] })),
        None,
        &[],
    )
    .unwrap();
    assert_eq!(svc.vips, vec![ip("fd00::10"), ip("10.96.0.10")]);
}

#[test]
fn headless_service() {
    for spec_value in [
        json!({ "clusterIP": "None" }),
        json!({ "clusterIPs": ["None"] }),
    ] {
        let svc = translate(spec(spec_value), None, &[]).unwrap();
        assert!(svc.headless);
        assert!(svc.vips.is_empty());
    }
    // Without any cluster IP (nobody allocated one), it is not headless.
    assert!(!translate(spec(json!({})), None, &[]).unwrap().headless);
}

#[test]
fn bad_cluster_ips() {
    assert_eq!(
        error_field(spec(json!({ "clusterIP": "10.96.0.300" }))),
        "spec.clusterIP"
    );
    assert_eq!(
        error_field(spec(json!({ "clusterIPs": ["10.96.0.1", "x"] }))),
        "spec.clusterIPs[1]"
    );
    assert_eq!(
        error_field(spec(json!({ "clusterIPs": ["10.96.0.1", "None"] }))),
        "spec.clusterIPs[1]"
    );
    assert_eq!(
        error_field(spec(json!({ "clusterIPs": ["10.96.0.1", "10.96.0.2"] }))),
        "spec.clusterIPs[1]"
    );
    assert_eq!(
        error_field(spec(json!({ "ipFamilies": ["IPv4", "ipv6"] }))),
        "spec.ipFamilies[1]"
    );
}

#[test]
fn bad_names() {
    assert_eq!(error_field(json!({ "metadata": {} })), "metadata.name");
    assert_eq!(
        error_field(json!({ "metadata": { "name": "a.b" } })),
        "metadata.name"
    );
    assert_eq!(
        error_field(json!({ "metadata": { "name": "a", "namespace": "A" } })),
        "metadata.namespace"
    );
}

#[test]
fn port_errors_name_the_port() {
    let cases = [
        (
            json!([{ "name": "a", "port": 80 }, { "name": "b", "port": 0 }]),
            "spec.ports[1].port",
        ),
        (json!([{ "port": 70000 }]), "spec.ports[0].port"),
        (
            json!([{ "port": 80, "protocol": "tcp" }]),
            "spec.ports[0].protocol",
        ),
        (
            json!([{ "port": 80, "targetPort": -1 }]),
            "spec.ports[0].targetPort",
        ),
        (
            json!([{ "port": 80, "targetPort": 65536 }]),
            "spec.ports[0].targetPort",
        ),
        (
            json!([{ "port": 80, "targetPort": "Web_Port" }]),
            "spec.ports[0].targetPort",
        ),
        (json!([{ "name": "Web", "port": 80 }]), "spec.ports[0].name"),
        (
            json!([{ "name": "a", "port": 80 }, { "name": "a", "port": 81 }]),
            "spec.ports[1].name",
        ),
        (
            json!([{ "port": 80 }, { "name": "b", "port": 81 }]),
            "spec.ports[0].name",
        ),
        (
            json!([{ "name": "a", "port": 80 }, { "port": 81 }]),
            "spec.ports[1].name",
        ),
    ];
    for (ports, field) in cases {
        assert_eq!(
            error_field(spec(json!({ "ports": ports }))),
            field,
            "{ports}"
        );
    }

    let quoted =
        json!([{ "name": "a", "port": 80 }, { "name": "b", "port": 81, "targetPort": "8080" }]);
    let err = translate(spec(json!({ "ports": quoted })), None, &[]).unwrap_err();
    assert_eq!(err.field, "spec.ports[1].targetPort");
    assert!(
        err.message
            .contains("write targetPort: 8080 without quotes"),
        "{err}"
    );
}

#[test]
fn target_ports_and_protocols() {
    let svc = translate(
        spec(json!({ "ports": [
            { "name": "a", "port": 80, "targetPort": 8080, "protocol": "UDP" },
            { "name": "b", "port": 81, "targetPort": "web" },
            { "name": "c", "port": 82, "targetPort": 0, "protocol": "SCTP" },
        ] })),
        None,
        &[],
    )
    .unwrap();
    let summary: Vec<_> = svc
        .ports
        .iter()
        .map(|p| {
            (
                p.port,
                p.target_port,
                p.target_port_name.as_deref(),
                p.protocol,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (80, Some(8080), None, PortProtocol::Udp),
            (81, None, Some("web"), PortProtocol::Tcp),
            (82, Some(82), None, PortProtocol::Sctp),
        ]
    );
}

#[test]
fn app_protocol_inference() {
    let port = |name: &str, app: Option<&str>| {
        let mut p = json!({ "name": name, "port": 80 });
        if let Some(app) = app {
            p["appProtocol"] = json!(app);
        }
        let svc = translate(spec(json!({ "ports": [p] })), None, &[]).unwrap();
        svc.ports[0].app_protocol.clone()
    };
    assert_eq!(port("http", None).as_deref(), Some("http"));
    assert_eq!(port("http-web", None).as_deref(), Some("http"));
    assert_eq!(port("http2", None).as_deref(), Some("http2"));
    assert_eq!(port("grpc-api", None).as_deref(), Some("grpc"));
    assert_eq!(port("redis", None).as_deref(), Some("redis"));
    assert_eq!(port("web", None), None);
    assert_eq!(port("httpx", None), None);
    assert_eq!(port("web-http", None), None);
    // A declared appProtocol wins over the name.
    assert_eq!(
        port("http", Some("kubernetes.io/h2c")).as_deref(),
        Some("kubernetes.io/h2c")
    );
    assert_eq!(port("tcp", Some("")).as_deref(), Some("tcp"));
}

#[test]
fn waypoint_precedence() {
    let waypoint = |svc_labels: Value, ns_labels: Value| {
        let ns = namespace("shop", ns_labels);
        let svc =
            json!({ "metadata": { "name": "web", "namespace": "shop", "labels": svc_labels } });
        translate(svc, Some(&ns), &[]).map(|s| s.waypoint)
    };
    let named = |name: &str| {
        Some(WaypointRef {
            name: name.into(),
            namespace: "shop".into(),
        })
    };
    let ns_wp = json!({ "braid.dev/waypoint": "ns-wp" });

    assert_eq!(waypoint(json!({}), ns_wp.clone()), Ok(named("ns-wp")));
    assert_eq!(
        waypoint(json!({ "braid.dev/waypoint": "svc-wp" }), ns_wp.clone()),
        Ok(named("svc-wp"))
    );
    assert_eq!(
        waypoint(json!({ "braid.dev/waypoint": "none" }), ns_wp.clone()),
        Ok(None)
    );
    assert_eq!(
        waypoint(json!({ "braid.dev/waypoint": "svc-wp" }), json!({})),
        Ok(named("svc-wp"))
    );
    assert_eq!(waypoint(json!({}), json!({})), Ok(None));
    assert_eq!(
        waypoint(json!({}), json!({ "braid.dev/waypoint": "none" })),
        Ok(None)
    );
    // A bad namespace label counts as absent; a bad service label is an error.
    assert_eq!(
        waypoint(json!({}), json!({ "braid.dev/waypoint": "Bad" })),
        Ok(None)
    );
    let err = waypoint(json!({ "braid.dev/waypoint": "Bad" }), ns_wp).unwrap_err();
    assert_eq!(err.field, r#"metadata.labels["braid.dev/waypoint"]"#);
}

fn selector_service(extra: Value) -> Value {
    let mut spec = json!({
        "selector": { "app": "web" },
        "ports": [
            { "name": "http", "port": 80, "targetPort": "http" },
            { "name": "metrics", "port": 9090, "targetPort": 9091 },
        ],
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    json!({ "metadata": { "name": "web", "namespace": "shop" }, "spec": spec })
}

fn endpoint(pod: &str, address: &str, ports: &[(u16, u16)], status: WorkloadStatus) -> Endpoint {
    Endpoint {
        workload: Some(WorkloadUid::new("shop", pod)),
        address: ip(address),
        ports: ports.iter().copied().collect::<BTreeMap<_, _>>(),
        status,
    }
}

#[test]
fn selector_endpoints_resolve_named_ports_per_pod() {
    let web = json!({ "app": "web" });
    let a = ready_pod("shop", "a", web.clone(), &["10.0.0.2"]);
    // Pod b lacks the named port: its "http" service port is left out.
    let mut b = ready_pod("shop", "b", web.clone(), &["10.0.0.1"]);
    if let Some(spec) = b.spec.as_mut() {
        spec.containers[0].ports = None;
    }
    let mut not_ready = ready_pod("shop", "c", web.clone(), &["10.0.0.3"]);
    if let Some(status) = not_ready.status.as_mut() {
        status.conditions = None;
    }
    let other_app = ready_pod("shop", "d", json!({ "app": "db" }), &["10.0.0.4"]);
    let other_ns = ready_pod("elsewhere", "e", web.clone(), &["10.0.0.5"]);
    let no_ip = ready_pod("shop", "f", web.clone(), &[]);
    let broken = ready_pod("shop", "g", web.clone(), &["not-an-ip"]);
    let mut finished = ready_pod("shop", "h", web, &["10.0.0.6"]);
    if let Some(status) = finished.status.as_mut() {
        status.phase = Some("Succeeded".to_string());
    }

    // Neither has a PodInfo, so a control plane has nothing to pass.
    assert!(PodInfo::from_pod(&broken).is_err());
    assert_eq!(PodInfo::from_pod(&finished), Ok(None));

    let pods = [
        &a, &b, &not_ready, &other_app, &other_ns, &no_ip, &broken, &finished,
    ];
    let svc = translate(selector_service(json!({})), None, &pods).unwrap();
    assert_eq!(
        svc.endpoints,
        vec![
            endpoint("b", "10.0.0.1", &[(9090, 9091)], WorkloadStatus::Healthy),
            endpoint(
                "a",
                "10.0.0.2",
                &[(80, 8080), (9090, 9091)],
                WorkloadStatus::Healthy
            ),
            endpoint(
                "c",
                "10.0.0.3",
                &[(80, 8080), (9090, 9091)],
                WorkloadStatus::Unhealthy
            ),
        ]
    );
}

#[test]
fn named_port_must_match_protocol_and_may_be_on_a_native_sidecar() {
    let p = pod(json!({
        "metadata": { "name": "a", "namespace": "shop", "labels": { "app": "web" } },
        "spec": {
            "containers": [{
                "name": "app",
                "ports": [{ "name": "http", "containerPort": 8080, "protocol": "UDP" }],
            }],
            "initContainers": [{
                "name": "side",
                "restartPolicy": "Always",
                "ports": [{ "name": "http", "containerPort": 8081 }],
            }],
        },
        "status": { "podIP": "10.0.0.1" },
    }));
    let svc = translate(selector_service(json!({})), None, &[&p]).unwrap();
    assert_eq!(svc.endpoints[0].ports.get(&80), Some(&8081));
}

#[test]
fn dual_stack_pods_use_the_service_family() {
    let p = ready_pod(
        "shop",
        "a",
        json!({ "app": "web" }),
        &["10.0.0.1", "fd00::1"],
    );
    let address = |extra: Value| {
        let svc = translate(selector_service(extra), None, &[&p]).unwrap();
        svc.endpoints[0].address
    };
    assert_eq!(address(json!({})), ip("10.0.0.1"));
    assert_eq!(
        address(json!({ "ipFamilies": ["IPv6", "IPv4"] })),
        ip("fd00::1")
    );
    assert_eq!(
        address(json!({ "clusterIPs": ["fd00::10"] })),
        ip("fd00::1")
    );
    // ipFamilies wins over the VIP order.
    let both = json!({ "clusterIPs": ["fd00::10", "10.96.0.1"], "ipFamilies": ["IPv4", "IPv6"] });
    assert_eq!(address(both), ip("10.0.0.1"));
    // No address of the wanted family: the primary one.
    let v4_only = ready_pod("shop", "b", json!({ "app": "web" }), &["10.0.0.2"]);
    let svc = translate(
        selector_service(json!({ "ipFamilies": ["IPv6"] })),
        None,
        &[&v4_only],
    );
    assert_eq!(svc.unwrap().endpoints[0].address, ip("10.0.0.2"));
}

#[test]
fn empty_selector_means_endpoint_slices() {
    let p = ready_pod("shop", "a", json!({ "app": "web" }), &["10.0.0.1"]);
    let svc = translate(selector_service(json!({ "selector": {} })), None, &[&p]).unwrap();
    assert!(svc.endpoints.is_empty());
}
