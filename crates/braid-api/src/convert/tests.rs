use std::collections::BTreeMap;

use super::*;

fn workload() -> model::Workload {
    model::Workload {
        uid: model::WorkloadUid::new("shop", "web-0"),
        name: "web-0".into(),
        namespace: "shop".into(),
        service_account: "web".into(),
        node: "node-a".into(),
        addresses: vec!["198.18.0.10".parse().unwrap(), "fd00::10".parse().unwrap()],
        labels: BTreeMap::from([("app".into(), "web".into())]),
        mode: model::DataPlaneMode::Ambient,
        has_sidecar: false,
        waypoint: Some(model::WaypointRef {
            name: "wp".into(),
            namespace: "shop".into(),
        }),
        trust_domain: "cluster.local".into(),
        status: model::WorkloadStatus::Terminating,
    }
}

#[test]
fn workload_round_trips() {
    let w = workload();
    let back = model::Workload::try_from(workload_to_proto(&w)).unwrap();
    assert_eq!(back, w);
}

#[test]
fn workload_with_bad_address_names_the_field() {
    let mut p = workload_to_proto(&workload());
    p.addresses[1] = vec![1, 2, 3];
    let err = model::Workload::try_from(p).unwrap_err();
    assert_eq!(err.field, "addresses[1]");
    assert!(err.to_string().contains("shop/web-0"), "{err}");
}

#[test]
fn service_round_trips() {
    let s = model::Service {
        reference: model::ServiceRef::new("shop", "web"),
        hostname: "web.shop.svc.cluster.local".into(),
        vips: vec!["198.19.0.1".parse().unwrap()],
        ports: vec![model::ServicePort {
            name: "http".into(),
            port: 80,
            target_port: None,
            target_port_name: Some("http".into()),
            app_protocol: Some("http".into()),
            protocol: model::PortProtocol::Tcp,
        }],
        endpoints: vec![model::Endpoint {
            workload: Some(model::WorkloadUid::new("shop", "web-0")),
            address: "198.18.0.10".parse().unwrap(),
            ports: BTreeMap::from([(80, 8080)]),
            status: model::WorkloadStatus::Healthy,
        }],
        waypoint: None,
        headless: false,
    };
    assert_eq!(model::Service::try_from(service_to_proto(&s)).unwrap(), s);
}

#[test]
fn service_port_out_of_range_is_rejected() {
    let mut p = service_to_proto(&model::Service {
        reference: model::ServiceRef::new("a", "b"),
        hostname: "b.a.svc.cluster.local".into(),
        vips: vec![],
        ports: vec![],
        endpoints: vec![],
        waypoint: None,
        headless: true,
    });
    p.ports.push(wl::ServicePort {
        port: 70000,
        ..Default::default()
    });
    let err = model::Service::try_from(p).unwrap_err();
    assert_eq!(err.field, "ports[0].port");
}

#[test]
fn authorization_round_trips() {
    let a = model::AuthorizationPolicy {
        name: "deny-legacy".into(),
        namespace: "shop".into(),
        selector: Some(BTreeMap::from([("app".into(), "web".into())])),
        action: model::Action::Deny,
        rules: vec![model::Rule {
            source_principals: vec!["spiffe://cluster.local/ns/legacy/sa/default".into()],
            source_namespaces: vec!["legacy".into()],
            destination_ports: vec![8080],
        }],
    };
    assert_eq!(
        model::AuthorizationPolicy::try_from(authorization_to_proto(&a)).unwrap(),
        a
    );
}

#[test]
fn unset_enums_fail_closed() {
    let w = wl::Workload {
        uid: "a/b".into(),
        ..Default::default()
    };
    assert_eq!(
        model::Workload::try_from(w).unwrap().status,
        model::WorkloadStatus::Unhealthy
    );
    let p = sec::Authorization {
        name: "p".into(),
        namespace: "a".into(),
        ..Default::default()
    };
    let err = model::AuthorizationPolicy::try_from(p).unwrap_err();
    assert_eq!(err.field, "action");
}

#[test]
fn peer_authentication_round_trips() {
    for (selector, mode) in [
        (None, model::MtlsMode::Strict),
        (
            Some(BTreeMap::from([("app".into(), "web".into())])),
            model::MtlsMode::Permissive,
        ),
    ] {
        let p = model::PeerAuthentication {
            name: "strict".into(),
            namespace: "inventory".into(),
            selector,
            mode,
        };
        assert_eq!(
            model::PeerAuthentication::try_from(peer_authentication_to_proto(&p)).unwrap(),
            p
        );
    }
}

#[test]
fn peer_authentication_mode_unset_or_unknown_is_rejected() {
    let unset = sec::PeerAuthentication {
        name: "p".into(),
        namespace: "a".into(),
        ..Default::default()
    };
    let err = model::PeerAuthentication::try_from(unset.clone()).unwrap_err();
    assert_eq!(err.field, "mode");
    assert_eq!(
        err.to_string(),
        "PeerAuthentication \"a/p\": field mode: is unset; must be STRICT or PERMISSIVE"
    );
    let unknown = sec::PeerAuthentication { mode: 7, ..unset };
    let err = model::PeerAuthentication::try_from(unknown).unwrap_err();
    assert_eq!(err.message, "unknown mode 7");
}
