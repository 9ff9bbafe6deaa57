use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::*;

fn object(ns: &str, name: &str, data: Value) -> DynamicObject {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "Gateway");
    let mut object =
        DynamicObject::new(name, &ApiResource::from_gvk_with_plural(&gvk, "gateways")).within(ns);
    object.data = data;
    object
}

fn labelled_namespace(name: &str, waypoint: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                WAYPOINT_LABEL.to_string(),
                waypoint.to_string(),
            )])),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn labelled_service(ns: &str, name: &str, waypoint: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            labels: Some(BTreeMap::from([(
                WAYPOINT_LABEL.to_string(),
                waypoint.to_string(),
            )])),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn the_gateway_is_a_waypoint_with_one_hbone_listener() {
    let gateway = gateway("shop", "wp");
    assert_eq!(gateway["spec"]["gatewayClassName"], "braid-waypoint");
    assert_eq!(
        gateway["spec"]["listeners"],
        json!([{"name": "mesh", "port": 15008, "protocol": "HBONE"}])
    );
    assert_eq!(
        gateway["metadata"],
        json!({"name": "wp", "namespace": "shop"})
    );
    assert!(check_name("wp").is_ok());
    let e = check_name("Way_point").unwrap_err().to_string();
    assert!(e.contains("DNS label"), "{e}");
}

#[test]
fn state_reads_the_conditions_the_control_plane_writes() {
    let programmed = object(
        "shop",
        "wp",
        json!({"spec": {"gatewayClassName": "braid-waypoint"}, "status": {
        "addresses": [{"type": "IPAddress", "value": "198.19.0.9"}],
        "conditions": [
            {"type": "Accepted", "status": "True", "message": "ok"},
            {"type": "Programmed", "status": "True", "message": "1 waypoint pod(s) ready"},
        ]}}),
    );
    let state = State::of(&programmed);
    assert_eq!((state.accepted, state.programmed), (Some(true), Some(true)));
    assert_eq!(state.addresses, "198.19.0.9");
    assert_eq!(state.message, "1 waypoint pod(s) ready");

    let refused = object(
        "shop",
        "wp",
        json!({"status": {"conditions": [
            {"type": "Accepted", "status": "False", "message": "spec.listeners[0].protocol: bad"},
            {"type": "Programmed", "status": "False", "message": "not accepted"},
        ]}}),
    );
    let state = State::of(&refused);
    assert_eq!(
        state.describe(),
        "not accepted: spec.listeners[0].protocol: bad"
    );
    // Fresh from the API server: the CRD's default Unknown conditions.
    let fresh = object(
        "shop",
        "wp",
        json!({"status": {"conditions": [
        {"type": "Accepted", "status": "Unknown"}]}}),
    );
    assert!(State::of(&fresh).describe().contains("not judged it yet"));
}

#[test]
fn the_table_shows_programmed_and_users_and_warns_about_missing_waypoints() {
    let gateways = [
        object(
            "shop",
            "wp",
            json!({"spec": {"gatewayClassName": "braid-waypoint"}, "status": {"conditions": [
                {"type": "Accepted", "status": "True"}, {"type": "Programmed", "status": "False"}]}}),
        ),
        object(
            "shop",
            "ingress",
            json!({"spec": {"gatewayClassName": "other"}}),
        ),
    ];
    let users = users(
        &[
            labelled_namespace("shop", "wp"),
            labelled_namespace("legacy", "none"),
        ],
        &[
            labelled_service("shop", "web", "wp"),
            labelled_service("shop", "admin", "gone"),
        ],
    );
    let text = table(&gateways, &users);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("NAMESPACE  NAME  PROGRAMMED"),
        "{text}"
    );
    assert!(
        lines[1].contains("shop") && lines[1].contains("False"),
        "{text}"
    );
    assert!(
        lines[1].ends_with("namespace shop, service shop/web"),
        "{text}"
    );
    assert!(
        !text.contains("ingress"),
        "other classes are not waypoints: {text}"
    );
    assert!(!text.contains("legacy"), "`none` names nothing: {text}");
    assert!(
        lines[2].starts_with("warning: service shop/admin name waypoint shop/gone"),
        "{text}"
    );
    assert_eq!(table(&[], &Users::new()), "no waypoints\n");
}

#[test]
fn deleting_a_waypoint_still_named_warns() {
    let users = users(&[labelled_namespace("shop", "wp")], &[]);
    let warning = still_named(&users, "shop", "wp").expect("a warning");
    assert!(
        warning.contains("namespace shop still name waypoint shop/wp"),
        "{warning}"
    );
    assert!(still_named(&users, "shop", "other").is_none());
}
