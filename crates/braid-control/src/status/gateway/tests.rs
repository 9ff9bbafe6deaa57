use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::{index::waypoints::State, status::CrdKind};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("valid time")
}

fn verdict(error: Option<&str>, ready: usize) -> Verdict {
    Verdict {
        kind: CrdKind::Gateway,
        namespace: "shop".into(),
        name: "wp".into(),
        generation: Some(2),
        error: error.map(str::to_string),
        unresolved: None,
        waypoint: Some(State {
            ready,
            addresses: vec!["198.19.0.9".parse().unwrap()],
            attached_routes: 2,
        }),
        waypoint_parents: Vec::new(),
    }
}

/// `spec.listeners`: the usual single HBONE listener.
fn mesh() -> Vec<serde_json::Value> {
    vec![serde_json::json!({"name": "mesh", "port": 15008, "protocol": "HBONE"})]
}

/// (type, status, reason) of a condition.
type Triple<'a> = (&'a str, &'a str, &'a str);

/// (type, status, reason) of each of `conditions`.
fn triples(conditions: &[Condition]) -> Vec<Triple<'_>> {
    conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
        .collect()
}

/// (type, status, reason) of each condition of `listener`.
fn listener_conditions(listener: &ListenerStatus) -> Vec<Triple<'_>> {
    triples(&listener.conditions)
}

/// (type, status, reason) of each condition.
fn conditions(status: &GatewayStatus) -> Vec<Triple<'_>> {
    triples(&status.conditions)
}

#[test]
fn programmed_once_a_waypoint_pod_is_ready() {
    let pending = desired_gateway_status(&verdict(None, 0), &mesh(), None, at(0));
    assert_eq!(
        conditions(&pending),
        [
            ("Accepted", "True", "Accepted"),
            ("Programmed", "False", "Pending")
        ]
    );
    assert_eq!(pending.addresses[0].value, "198.19.0.9");
    assert_eq!(pending.addresses[0].type_.as_deref(), Some("IPAddress"));
    assert!(
        pending
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(2))
    );

    let ready = desired_gateway_status(&verdict(None, 2), &mesh(), Some(&pending), at(5));
    assert_eq!(
        conditions(&ready),
        [
            ("Accepted", "True", "Accepted"),
            ("Programmed", "True", "Programmed")
        ]
    );
    // Accepted did not change: its transition time stays.
    assert_eq!(
        ready.conditions[0].last_transition_time,
        pending.conditions[0].last_transition_time
    );
    assert_eq!(ready.conditions[1].last_transition_time.0, at(5));
    assert!(!gateway_is_up_to_date(Some(&pending), &ready));
    assert!(gateway_is_up_to_date(Some(&ready), &ready));
}

#[test]
fn not_accepted_with_the_reason_of_the_field() {
    let error = "spec.listeners[0].protocol: ListenersNotValid: \"HTTP\" is not supported";
    let status = desired_gateway_status(&verdict(Some(error), 1), &mesh(), None, at(0));
    assert_eq!(
        conditions(&status),
        [
            ("Accepted", "False", "ListenersNotValid"),
            ("Programmed", "False", "Invalid")
        ]
    );
    assert!(status.conditions[0].message.contains("keeps running"));
    let error = "spec.addresses: UnsupportedAddress: remove spec.addresses";
    let status = desired_gateway_status(&verdict(Some(error), 1), &mesh(), None, at(0));
    assert_eq!(status.conditions[0].reason, "UnsupportedAddress");
}

#[test]
fn other_conditions_do_not_make_it_stale() {
    let mut current = desired_gateway_status(&verdict(None, 1), &mesh(), None, at(0));
    let desired = current.clone();
    current.conditions.push(Condition {
        type_: "example.com/Audited".into(),
        status: "True".into(),
        reason: "Audited".into(),
        message: String::new(),
        observed_generation: None,
        last_transition_time: Time(at(0)),
    });
    assert!(gateway_is_up_to_date(Some(&current), &desired));
}

#[test]
fn each_listener_says_what_it_takes_and_how_many_routes_attach() {
    let pending = desired_gateway_status(&verdict(None, 0), &mesh(), None, at(0));
    assert_eq!(pending.listeners.len(), 1);
    let listener = &pending.listeners[0];
    assert_eq!(listener.name, "mesh");
    assert_eq!(listener.attached_routes, 2);
    assert_eq!(
        listener.supported_kinds,
        [RouteGroupKind {
            group: Some("gateway.networking.k8s.io".into()),
            kind: "HTTPRoute".into()
        }]
    );
    assert_eq!(
        listener_conditions(listener),
        [
            ("Accepted", "True", "Accepted"),
            ("Programmed", "False", "Pending"),
            ("ResolvedRefs", "True", "ResolvedRefs")
        ]
    );
    let ready = desired_gateway_status(&verdict(None, 1), &mesh(), Some(&pending), at(9));
    assert_eq!(ready.listeners[0].conditions[1].status, "True");
    // Accepted stayed: its transition time too; Programmed moved.
    assert_eq!(
        ready.listeners[0].conditions[0].last_transition_time.0,
        at(0)
    );
    assert_eq!(
        ready.listeners[0].conditions[1].last_transition_time.0,
        at(9)
    );
    assert!(!gateway_is_up_to_date(Some(&pending), &ready));
    let mut fewer = verdict(None, 1);
    if let Some(state) = fewer.waypoint.as_mut() {
        state.attached_routes = 1;
    }
    let detached = desired_gateway_status(&fewer, &mesh(), Some(&ready), at(10));
    assert_eq!(detached.listeners[0].attached_routes, 1);
    assert!(!gateway_is_up_to_date(Some(&ready), &detached));
    assert!(gateway_is_up_to_date(Some(&detached), &detached));
}

#[test]
fn the_listener_at_fault_gets_the_reason_of_its_field() {
    let listeners = vec![
        serde_json::json!({"name": "mesh", "port": 15008, "protocol": "HBONE"}),
        serde_json::json!({"name": "web", "port": 80, "protocol": "HTTP"}),
    ];
    let error = "spec.listeners[1].protocol: ListenersNotValid: \"HTTP\" is not supported";
    let status = desired_gateway_status(&verdict(Some(error), 1), &listeners, None, at(0));
    let by_name: Vec<(&str, Vec<Triple<'_>>, i32)> = status
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), listener_conditions(l), l.attached_routes))
        .collect();
    assert_eq!(
        by_name,
        [
            (
                "mesh",
                vec![
                    ("Accepted", "True", "Accepted"),
                    ("Programmed", "False", "Invalid"),
                    ("ResolvedRefs", "True", "ResolvedRefs")
                ],
                0
            ),
            (
                "web",
                vec![
                    ("Accepted", "False", "UnsupportedProtocol"),
                    ("Programmed", "False", "Invalid"),
                    ("ResolvedRefs", "True", "ResolvedRefs")
                ],
                0
            ),
        ]
    );
    let port = "spec.listeners[0].port: ListenersNotValid: 80 is not supported";
    let status = desired_gateway_status(&verdict(Some(port), 1), &mesh(), None, at(0));
    assert_eq!(status.listeners[0].conditions[0].reason, "PortUnavailable");
}

#[test]
fn listener_status_round_trips_through_the_api_shape() {
    let status = desired_gateway_status(&verdict(None, 1), &mesh(), None, at(0));
    let json = serde_json::to_value(&status).expect("serializes");
    assert_eq!(json["listeners"][0]["attachedRoutes"], 2);
    assert_eq!(
        json["listeners"][0]["supportedKinds"][0]["kind"],
        "HTTPRoute"
    );
    let back: GatewayStatus = serde_json::from_value(json).expect("deserializes");
    assert!(gateway_is_up_to_date(Some(&back), &status));
}
