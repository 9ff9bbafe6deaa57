//! Route status: which entries and conditions a verdict asks for.

use braid_crd::httproute::{BackendProblem, Unresolved};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use serde_json::{Value, json};

use super::{
    CONTROLLER_NAME, ParentStatus, RouteStatus, desired_route_status, route_is_up_to_date,
};
use crate::status::{CrdKind, Problem, RouteProblems, Verdict};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("valid time")
}

fn verdict(generation: i64, error: Option<&str>, unresolved: Option<Problem>) -> Verdict {
    Verdict {
        kind: CrdKind::HttpRoute,
        namespace: "shop".into(),
        name: "canary".into(),
        generation: Some(generation),
        error: error.map(str::to_string),
        unresolved,
        waypoint: None,
        waypoint_parents: Vec::new(),
    }
}

fn service(name: &str) -> Value {
    json!({"group": "", "kind": "Service", "name": name})
}

/// (type, status, reason) of each condition of Braid's entry for `parent`.
fn conditions(status: &RouteStatus, parent: &Value) -> Vec<(String, String, String)> {
    let entry = status
        .parents
        .iter()
        .find(|p| p.controller_name == CONTROLLER_NAME && p.parent_ref == *parent)
        .expect("an entry for the parent");
    entry
        .conditions
        .iter()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

fn triple(t: &str, s: &str, r: &str) -> (String, String, String) {
    (t.into(), s.into(), r.into())
}

#[test]
fn an_accepted_route_is_accepted_and_resolved_at_each_service_parent() {
    let gateway =
        json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "ingress"});
    let refs = [service("web"), gateway, service("web"), service("api")];
    let status = desired_route_status(&verdict(3, None, None), &refs, None, at(0));
    assert_eq!(
        status.parents.len(),
        2,
        "Service parents once each; the Gateway is not ours"
    );
    for parent in [service("web"), service("api")] {
        assert_eq!(
            conditions(&status, &parent),
            [
                triple("Accepted", "True", "Accepted"),
                triple("ResolvedRefs", "True", "ResolvedRefs")
            ]
        );
    }
    let condition = &status.parents[0].conditions[0];
    assert_eq!(condition.observed_generation, Some(3));
    assert_eq!(condition.last_transition_time, Time(at(0)));
}

#[test]
fn problems_become_conditions_with_the_specifications_reasons() {
    let unresolved = Problem {
        reason: "BackendNotFound".into(),
        message: "spec.rules[0].backendRefs[1]: there is no Service shop/gone".into(),
    };
    let status = desired_route_status(
        &verdict(1, None, Some(unresolved)),
        &[service("web")],
        None,
        at(0),
    );
    assert_eq!(
        conditions(&status, &service("web")),
        [
            triple("Accepted", "True", "Accepted"),
            triple("ResolvedRefs", "False", "BackendNotFound")
        ]
    );
    assert!(
        status.parents[0].conditions[1]
            .message
            .contains("backendRefs[1]")
    );

    let error = "spec.rules[0].filters[0].type: \"Teleport\" is not a filter Braid implements";
    let status = desired_route_status(
        &verdict(2, Some(error), None),
        &[service("web")],
        None,
        at(0),
    );
    assert_eq!(
        conditions(&status, &service("web")),
        [triple("Accepted", "False", "UnsupportedValue")],
        "which references resolve is unknown for a version that is not accepted"
    );
    let message = &status.parents[0].conditions[0].message;
    assert!(
        message.contains("filters[0].type") && message.contains("last accepted version"),
        "{message}"
    );
}

#[test]
fn transitions_keep_their_time_until_the_status_flips() {
    let refs = [service("web")];
    let first = desired_route_status(&verdict(1, None, None), &refs, None, at(0));
    let same = desired_route_status(&verdict(2, None, None), &refs, Some(&first), at(60));
    assert_eq!(
        same.parents[0].conditions[0].last_transition_time,
        Time(at(0))
    );
    assert_eq!(same.parents[0].conditions[0].observed_generation, Some(2));
    assert!(
        !route_is_up_to_date(Some(&first), &same),
        "a new generation is written"
    );
    assert!(route_is_up_to_date(Some(&same), &same));

    let broken = Problem {
        reason: "BackendNotFound".into(),
        message: "gone".into(),
    };
    let flipped = desired_route_status(&verdict(3, None, Some(broken)), &refs, Some(&same), at(90));
    let [accepted, resolved] = &flipped.parents[0].conditions[..] else {
        panic!("two conditions: {flipped:?}");
    };
    assert_eq!(accepted.last_transition_time, Time(at(0)), "still accepted");
    assert_eq!(
        resolved.last_transition_time,
        Time(at(90)),
        "resolved flipped"
    );
}

#[test]
fn other_controllers_entries_are_kept_and_removed_parents_cleared() {
    let theirs = ParentStatus {
        parent_ref: json!({"name": "ingress"}),
        controller_name: "example.com/gateway".into(),
        conditions: Vec::new(),
    };
    let ours = desired_route_status(
        &verdict(1, None, None),
        &[service("web"), service("api")],
        None,
        at(0),
    );
    let mut current = ours.clone();
    current.parents.insert(0, theirs.clone());
    assert!(
        route_is_up_to_date(Some(&current), &ours),
        "their entry is not ours to judge"
    );

    let fewer = desired_route_status(
        &verdict(2, None, None),
        &[service("web")],
        Some(&current),
        at(5),
    );
    assert_eq!(fewer.parents[0], theirs, "kept first, as it was");
    assert_eq!(
        fewer.parents.len(),
        2,
        "api's entry is gone with its parentRef"
    );
    assert!(!route_is_up_to_date(Some(&current), &fewer));
}

#[test]
fn route_problems_join_the_source_verdicts() {
    use crate::source::{Kind, ObjectKey, kubernetes::VerdictMap, kubernetes::state::CrdVerdict};
    let key = ObjectKey {
        kind: Kind::HttpRoute,
        namespace: "shop".into(),
        name: "canary".into(),
    };
    let map = VerdictMap::from([(
        key,
        CrdVerdict {
            generation: Some(4),
            error: None,
        },
    )]);
    let problem = |field: &str, reason| BackendProblem {
        field: field.into(),
        reason,
        message: "no such Service".into(),
    };
    let routes = RouteProblems::from([(
        ("shop".to_string(), "canary".to_string()),
        vec![
            problem("spec.rules[0].backendRefs[0]", Unresolved::InvalidKind),
            problem("spec.rules[1].backendRefs[0]", Unresolved::BackendNotFound),
        ],
    )]);
    let findings = crate::status::Findings {
        routes,
        ..Default::default()
    };
    let verdicts = crate::status::from_source(&map, &findings);
    let route = &verdicts[&(CrdKind::HttpRoute, "shop".into(), "canary".into())];
    let unresolved = route.unresolved.as_ref().expect("problems joined");
    assert_eq!(
        unresolved.reason, "InvalidKind",
        "the first problem's reason"
    );
    assert!(
        unresolved.message.contains("rules[0]") && unresolved.message.contains("rules[1]"),
        "every problem: {}",
        unresolved.message
    );
    assert_eq!(route.generation, Some(4));
}

#[test]
fn waypoint_gateway_parents_get_entries_other_gateways_do_not() {
    let waypoint = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "wp"});
    // Kind and group defaulted, as before the API server fills them in.
    let defaulted = json!({"name": "wp2"});
    let ingress =
        json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "ingress"});
    let elsewhere = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "wp", "namespace": "other"});
    let refs = [waypoint.clone(), defaulted.clone(), ingress, elsewhere];
    let mut verdict = verdict(1, None, None);
    verdict.waypoint_parents = vec!["wp".into(), "wp2".into()];
    let status = desired_route_status(&verdict, &refs, None, at(0));
    assert_eq!(status.parents.len(), 2, "{status:?}");
    for parent in [waypoint, defaulted] {
        assert_eq!(
            conditions(&status, &parent),
            [
                triple("Accepted", "True", "Accepted"),
                triple("ResolvedRefs", "True", "ResolvedRefs")
            ]
        );
    }
    assert!(
        status.parents[0].conditions[0]
            .message
            .contains("at this waypoint")
    );
}
