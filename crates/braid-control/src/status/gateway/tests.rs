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
        }),
        waypoint_parents: Vec::new(),
    }
}

/// (type, status, reason) of each condition.
fn conditions(status: &GatewayStatus) -> Vec<(&str, &str, &str)> {
    status
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
        .collect()
}

#[test]
fn programmed_once_a_waypoint_pod_is_ready() {
    let pending = desired_gateway_status(&verdict(None, 0), None, at(0));
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

    let ready = desired_gateway_status(&verdict(None, 2), Some(&pending), at(5));
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
    let status = desired_gateway_status(&verdict(Some(error), 1), None, at(0));
    assert_eq!(
        conditions(&status),
        [
            ("Accepted", "False", "ListenersNotValid"),
            ("Programmed", "False", "Invalid")
        ]
    );
    assert!(status.conditions[0].message.contains("keeps running"));
    let error = "spec.addresses: UnsupportedAddress: remove spec.addresses";
    let status = desired_gateway_status(&verdict(Some(error), 1), None, at(0));
    assert_eq!(status.conditions[0].reason, "UnsupportedAddress");
}

#[test]
fn other_conditions_do_not_make_it_stale() {
    let mut current = desired_gateway_status(&verdict(None, 1), None, at(0));
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
