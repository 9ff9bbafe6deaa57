use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use braid_model::{
    Action, AuthorizationPolicy, DataPlaneMode, Endpoint, MtlsMode, PeerAuthentication, Rule,
    Service, ServicePort, ServiceRef, Workload, WorkloadStatus, WorkloadUid,
};
use braid_xds::{Delta, Updated};

use super::{Declared, ProxyState, Resolved, Waypoints};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn workload(ns: &str, name: &str, addr: &str, mode: DataPlaneMode) -> Workload {
    Workload {
        uid: WorkloadUid::new(ns, name),
        name: name.into(),
        namespace: ns.into(),
        service_account: name.into(),
        node: "node-a".into(),
        addresses: vec![ip(addr)],
        labels: BTreeMap::from([("app".to_string(), name.to_string())]),
        mode,
        has_sidecar: false,
        waypoint: None,
        trust_domain: "cluster.local".into(),
        status: WorkloadStatus::Healthy,
    }
}

fn delta<T>(updated: Vec<(String, T)>, removed: Vec<&str>) -> Delta<T> {
    Delta {
        system_version_info: String::new(),
        updated: updated
            .into_iter()
            .map(|(name, value)| Updated {
                name,
                version: "1".into(),
                value: Arc::new(value),
            })
            .collect(),
        removed: removed.into_iter().map(String::from).collect(),
    }
}

fn with_workloads(workloads: Vec<Workload>) -> ProxyState {
    let state = ProxyState::new();
    let named = workloads
        .into_iter()
        .map(|w| (format!("{}/{}", w.namespace, w.name), w))
        .collect();
    state.apply_workloads(delta(named, vec![]));
    state
}

fn service(endpoints: &[(&str, WorkloadStatus)]) -> Service {
    Service {
        reference: ServiceRef {
            namespace: "shop".into(),
            name: "web".into(),
        },
        hostname: "web.shop.svc.cluster.local".into(),
        vips: vec![ip("198.19.0.10")],
        ports: vec![ServicePort {
            name: "http".into(),
            port: 80,
            target_port: Some(8080),
            target_port_name: None,
            app_protocol: None,
            protocol: Default::default(),
        }],
        endpoints: endpoints
            .iter()
            .map(|(addr, status)| Endpoint {
                workload: None,
                address: ip(addr),
                ports: BTreeMap::from([(80, 8080)]),
                status: *status,
            })
            .collect(),
        waypoint: None,
        headless: false,
    }
}

#[test]
fn workloads_are_found_by_address_and_follow_readdressing() {
    let state = with_workloads(vec![workload(
        "shop",
        "web",
        "198.18.0.1",
        DataPlaneMode::Ambient,
    )]);
    assert_eq!(
        state
            .workload_by_ip(ip("198.18.0.1"))
            .map(|w| w.name.clone()),
        Some("web".into())
    );

    let moved = workload("shop", "web", "198.18.0.2", DataPlaneMode::Ambient);
    state.apply_workloads(delta(vec![("shop/web".into(), moved)], vec![]));
    assert!(
        state.workload_by_ip(ip("198.18.0.1")).is_none(),
        "old address forgotten"
    );
    assert!(state.workload_by_ip(ip("198.18.0.2")).is_some());

    state.apply_workloads(delta(vec![], vec!["shop/web"]));
    assert!(state.workload_by_ip(ip("198.18.0.2")).is_none());
    assert_eq!(state.workload_count(), 0);
}

#[test]
fn a_vip_resolves_to_a_ready_endpoint_only() {
    let state = with_workloads(vec![
        workload("shop", "web-a", "198.18.0.1", DataPlaneMode::Ambient),
        workload("shop", "web-b", "198.18.0.2", DataPlaneMode::Ambient),
    ]);
    let svc = service(&[
        ("198.18.0.1", WorkloadStatus::Unhealthy),
        ("198.18.0.2", WorkloadStatus::Healthy),
    ]);
    state.apply_services(delta(vec![("shop/web".into(), svc)], vec![]));
    for _ in 0..20 {
        let Ok(Resolved::Mesh(d)) =
            state.resolve("198.19.0.10:80".parse().expect("addr"), Waypoints::Honour)
        else {
            panic!("expected a meshed destination");
        };
        assert_eq!(d.target, "198.18.0.2:8080".parse().expect("addr"));
        assert_eq!(d.proxy, "198.18.0.2:15008".parse().expect("addr"));
        assert_eq!(d.workload.name, "web-b");
    }
    let err = state
        .resolve("198.19.0.10:81".parse().expect("addr"), Waypoints::Honour)
        .unwrap_err();
    assert!(err.contains("has no port 81"), "{err}");

    let none_ready = service(&[("198.18.0.1", WorkloadStatus::Terminating)]);
    state.apply_services(delta(vec![("shop/web".into(), none_ready)], vec![]));
    let err = state
        .resolve("198.19.0.10:80".parse().expect("addr"), Waypoints::Honour)
        .unwrap_err();
    assert!(err.contains("no ready endpoint"), "{err}");
}

#[test]
fn unmeshed_and_unknown_destinations_pass_through() {
    let state = with_workloads(vec![workload(
        "legacy",
        "db",
        "198.18.0.9",
        DataPlaneMode::None,
    )]);
    for addr in ["198.18.0.9:5432", "198.18.7.7:80"] {
        let target = addr.parse().expect("addr");
        assert!(
            matches!(state.resolve(target, Waypoints::Honour), Ok(Resolved::Passthrough { target: t }) if t == target),
            "{addr}"
        );
    }
}

#[test]
fn authorization_follows_policy_deltas() {
    let state = ProxyState::new();
    let web = workload("shop", "web", "198.18.0.1", DataPlaneMode::Ambient);
    let client = "spiffe://cluster.local/ns/legacy/sa/client";
    assert!(state.authorize(&web, 80, Some(client)).is_ok());

    let deny = AuthorizationPolicy {
        name: "deny-legacy".into(),
        namespace: "shop".into(),
        selector: None,
        action: Action::Deny,
        rules: vec![Rule {
            source_namespaces: vec!["legacy".into()],
            ..Rule::default()
        }],
    };
    state.apply_authorizations(delta(vec![("shop/deny-legacy".into(), deny)], vec![]));
    let err = state.authorize(&web, 80, Some(client)).unwrap_err();
    assert!(err.contains("shop/deny-legacy"), "{err}");
    assert!(
        state
            .authorize(&web, 80, Some("spiffe://cluster.local/ns/shop/sa/x"))
            .is_ok()
    );

    state.apply_authorizations(delta(vec![], vec!["shop/deny-legacy"]));
    assert!(state.authorize(&web, 80, Some(client)).is_ok());
}

#[test]
fn peer_authentication_sets_the_mtls_mode() {
    let state = ProxyState::new();
    let web = workload("shop", "web", "198.18.0.1", DataPlaneMode::Ambient);
    assert_eq!(state.mtls_mode(&web), MtlsMode::Permissive);
    let strict = PeerAuthentication {
        name: "strict".into(),
        namespace: "shop".into(),
        selector: None,
        mode: MtlsMode::Strict,
    };
    state.apply_peer_authentications(delta(vec![("shop/strict".into(), strict)], vec![]));
    assert_eq!(state.mtls_mode(&web), MtlsMode::Strict);
    state.apply_peer_authentications(delta(vec![], vec!["shop/strict"]));
    assert_eq!(state.mtls_mode(&web), MtlsMode::Permissive);
}

#[test]
fn declared_protocols_skip_or_steer_detection() {
    let state = with_workloads(vec![]);
    let mut svc = service(&[]);
    let declared = |p: &str| ServicePort {
        app_protocol: (!p.is_empty()).then(|| p.to_string()),
        ..svc.ports[0].clone()
    };
    svc.ports = vec![
        ServicePort {
            port: 80,
            ..declared("http")
        },
        ServicePort {
            port: 81,
            ..declared("kubernetes.io/h2c")
        },
        ServicePort {
            port: 3306,
            ..declared("mysql")
        },
        ServicePort {
            port: 9000,
            ..declared("")
        },
    ];
    state.apply_services(delta(vec![("shop/web".into(), svc)], vec![]));
    let at = |port: u16| state.declared_protocol(SocketAddr::new(ip("198.19.0.10"), port));
    assert_eq!(at(80), Some(Declared::Http));
    assert_eq!(at(81), Some(Declared::Http));
    assert_eq!(at(3306), Some(Declared::Opaque));
    assert_eq!(at(9000), None, "nothing declared");
    assert_eq!(at(1234), None, "not a port of the service");
    assert_eq!(
        state.declared_protocol(SocketAddr::new(ip("198.18.0.1"), 80)),
        None,
        "not a VIP"
    );
}

#[test]
fn a_waypoint_fronted_service_resolves_to_its_waypoint_or_is_refused() {
    let state = with_workloads(vec![
        workload("shop", "web-a", "198.18.0.1", DataPlaneMode::Ambient),
        workload("shop", "wp-0", "198.18.0.9", DataPlaneMode::Sidecar),
    ]);
    let waypoint = braid_model::WaypointRef {
        namespace: "shop".into(),
        name: "wp".into(),
    };
    let mut web = service(&[("198.18.0.1", WorkloadStatus::Healthy)]);
    web.waypoint = Some(waypoint.clone());
    let original: SocketAddr = "198.19.0.10:80".parse().expect("addr");

    // No Service for the waypoint: refused, never sent around it.
    state.apply_services(delta(vec![("shop/web".into(), web)], vec![]));
    let err = state.resolve(original, Waypoints::Honour).unwrap_err();
    assert!(
        err.contains("waypoint shop/wp") && err.contains("refused"),
        "{err}"
    );

    let mut wp = service(&[("198.18.0.9", WorkloadStatus::Healthy)]);
    wp.reference.name = "wp".into();
    wp.vips = vec![ip("198.19.0.99")];
    state.apply_services(delta(vec![("shop/wp".into(), wp)], vec![]));
    let Ok(Resolved::Mesh(d)) = state.resolve(original, Waypoints::Honour) else {
        panic!("expected the waypoint");
    };
    assert_eq!(d.workload.name, "wp-0");
    assert_eq!(d.proxy, "198.18.0.9:15008".parse().expect("addr"));
    assert_eq!(
        d.target, original,
        "the tunnel's target is the Service address"
    );
    assert_eq!(d.waypoint, Some(waypoint));

    // The waypoint itself goes to an endpoint.
    let Ok(Resolved::Mesh(d)) = state.resolve(original, Waypoints::Skip) else {
        panic!("expected the endpoint");
    };
    assert_eq!(d.target, "198.18.0.1:8080".parse().expect("addr"));
    assert_eq!(d.waypoint, None);
}

#[test]
fn a_pod_is_behind_a_waypoint_only_when_no_service_without_one_selects_it() {
    let state = with_workloads(vec![
        workload("shop", "web-a", "198.18.0.1", DataPlaneMode::Ambient),
        workload("shop", "wp-0", "198.18.0.9", DataPlaneMode::Sidecar),
    ]);
    let waypoint = braid_model::WaypointRef {
        namespace: "shop".into(),
        name: "wp".into(),
    };
    let web_a = state.workload("shop/web-a").expect("web-a");
    assert_eq!(state.waypoint_in_front_of(&web_a), None, "no Service yet");

    let mut fronted = service(&[("198.18.0.1", WorkloadStatus::Healthy)]);
    fronted.waypoint = Some(waypoint.clone());
    state.apply_services(delta(vec![("shop/web".into(), fronted)], vec![]));
    assert_eq!(state.waypoint_in_front_of(&web_a), Some(waypoint.clone()));

    // A second Service without a waypoint selects the pod too: its callers
    // dial the pod directly, so the pod stays reachable.
    let mut direct = service(&[("198.18.0.1", WorkloadStatus::Healthy)]);
    direct.reference.name = "web-a".into();
    direct.vips = vec![ip("198.19.0.11")];
    state.apply_services(delta(vec![("shop/web-a".into(), direct)], vec![]));
    assert_eq!(state.waypoint_in_front_of(&web_a), None);
    state.apply_services(delta(vec![], vec!["shop/web-a"]));
    assert_eq!(state.waypoint_in_front_of(&web_a), Some(waypoint.clone()));

    // The waypoint's identity: its Service's ready pods'.
    assert!(!state.is_waypoint_identity(&waypoint, "spiffe://cluster.local/ns/shop/sa/wp-0"));
    let mut wp = service(&[("198.18.0.9", WorkloadStatus::Healthy)]);
    wp.reference.name = "wp".into();
    wp.vips = vec![ip("198.19.0.99")];
    state.apply_services(delta(vec![("shop/wp".into(), wp)], vec![]));
    assert!(state.is_waypoint_identity(&waypoint, "spiffe://cluster.local/ns/shop/sa/wp-0"));
    assert!(!state.is_waypoint_identity(&waypoint, "spiffe://cluster.local/ns/shop/sa/web-a"));
}
