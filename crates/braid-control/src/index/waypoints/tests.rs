//! A waypoint Gateway read from a YAML directory: the index implies its
//! Service, whose endpoints are the Gateway's labelled pods, and reports
//! its state for `Programmed`.

use braid_api::braid::workload::v1alpha1 as wl;
use braid_model::k8s::MeshSettings;
use prost::Message as _;

use crate::{
    index::{
        Index,
        testing::{load, publish},
        waypoints::State,
    },
    snapshot::{ResourceType, Snapshot},
    source::{Change, Kind, ObjectKey},
};

const GATEWAY: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wp, namespace: shop}
spec:
  gatewayClassName: braid-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
";

fn pod(name: &str, ip: &str, ready: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop, labels: {{gateway.networking.k8s.io/gateway-name: wp}}}}\nspec: {{containers: [{{name: braid-proxy, image: braid/proxy}}]}}\nstatus: {{podIP: {ip}, conditions: [{{type: Ready, status: '{ready}'}}]}}\n"
    )
}

fn service(s: &Snapshot, name: &str) -> Option<wl::Service> {
    let r = s.resources(ResourceType::Service).get(name)?;
    Some(wl::Service::decode(r.body.value.as_slice()).expect("decodes"))
}

fn state(index: &mut Index) -> Option<State> {
    let findings = index.take_findings()?;
    Some(
        findings
            .waypoints
            .get(&("shop".to_string(), "wp".to_string()))
            .cloned()
            .unwrap_or_default(),
    )
}

#[test]
fn a_waypoint_gateway_implies_its_service_from_its_pods() {
    let mut index = Index::new(MeshSettings::default());
    load(
        &mut index,
        &format!("{GATEWAY}---\n{}", pod("wp-0", "198.18.0.20", "False")),
    );
    let s1 = publish(&mut index, &Snapshot::default());
    let svc = service(&s1, "shop/wp").expect("the waypoint's Service");
    assert_eq!(svc.ports[0].port, 15008);
    assert_eq!(svc.endpoints.len(), 1);
    assert_eq!(
        state(&mut index),
        Some(State {
            ready: 0,
            addresses: vec![],
            attached_routes: 0,
        })
    );

    // The pod turns ready: the state says so (Programmed follows).
    load(&mut index, &pod("wp-0", "198.18.0.20", "True"));
    let s2 = publish(&mut index, &s1);
    assert_eq!(state(&mut index).map(|s| s.ready), Some(1));
    // Nothing changed: nothing to tell the writer.
    load(&mut index, &pod("wp-0", "198.18.0.20", "True"));
    let s3 = publish(&mut index, &s2);
    assert_eq!(state(&mut index), None);

    // The Gateway goes: so does its implied Service.
    index.apply(Change::Delete(ObjectKey {
        kind: Kind::Gateway,
        namespace: "shop".into(),
        name: "wp".into(),
    }));
    let s4 = publish(&mut index, &s3);
    assert!(service(&s4, "shop/wp").is_none());
    assert_eq!(
        state(&mut index),
        Some(State::default()),
        "findings changed"
    );
}

#[test]
fn a_service_of_the_waypoints_name_is_used_as_it_is() {
    // On Kubernetes the control plane made it; the API server gave it an IP.
    let mut index = Index::new(MeshSettings::default());
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: wp, namespace: shop}\nspec: {clusterIP: 198.19.0.9, selector: {gateway.networking.k8s.io/gateway-name: wp}, ports: [{name: mesh, port: 15008}]}\n";
    load(
        &mut index,
        &format!(
            "{GATEWAY}---\n{svc}---\n{}",
            pod("wp-0", "198.18.0.20", "True")
        ),
    );
    let s1 = publish(&mut index, &Snapshot::default());
    assert_eq!(
        service(&s1, "shop/wp").expect("served").vips,
        [vec![198, 19, 0, 9]]
    );
    let state = state(&mut index).expect("a state");
    assert_eq!(state.ready, 1);
    assert_eq!(
        state.addresses,
        ["198.19.0.9".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn gateways_of_other_classes_are_not_read() {
    let mut index = Index::new(MeshSettings::default());
    let other = GATEWAY.replace("braid-waypoint", "istio");
    load(
        &mut index,
        &format!("{other}---\n{}", pod("wp-0", "198.18.0.20", "True")),
    );
    let s1 = publish(&mut index, &Snapshot::default());
    assert!(service(&s1, "shop/wp").is_none());
}

#[test]
fn routes_attached_to_a_waypoint_are_found_for_their_status() {
    let mut index = Index::new(MeshSettings::default());
    let route = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: all, namespace: shop}
spec:
  parentRefs: [{name: wp}, {name: ingress}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
";
    load(&mut index, &format!("{GATEWAY}---\n{route}"));
    let _ = publish(&mut index, &Snapshot::default());
    let findings = index.take_findings().expect("findings");
    assert_eq!(
        findings
            .route_waypoints
            .get(&("shop".to_string(), "all".to_string())),
        Some(&vec!["wp".to_string()]),
        "wp is a waypoint, ingress is unknown"
    );
    let wp = &findings.waypoints[&("shop".to_string(), "wp".to_string())];
    assert_eq!(wp.attached_routes, 1, "the Gateway's listeners count it");
}
