//! The pure parts of status writing: desired status and lease decisions.

use std::time::Duration;

use braid_crd::condition;
use k8s_openapi::{
    api::coordination::v1::LeaseSpec,
    apimachinery::pkg::apis::meta::v1::{MicroTime, Time},
    jiff::{SignedDuration, Timestamp},
};

use super::{
    CrdKind, CrdStatus, Verdict, desired_status, is_up_to_date,
    lease::{Decision, decide},
};

const ERROR: &str = "spec.rules[0].from.principals[0]: \"web\" is not a SPIFFE ID";

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("valid time")
}

fn verdict(generation: i64, error: Option<&str>) -> Verdict {
    Verdict {
        kind: CrdKind::AuthorizationPolicy,
        namespace: "shop".into(),
        name: "web".into(),
        generation: Some(generation),
        error: error.map(str::to_string),
        unresolved: None,
        waypoint: None,
        waypoint_parents: Vec::new(),
    }
}

#[test]
fn accepted_verdict() {
    let status = desired_status(&verdict(2, None), None, at(0));
    assert_eq!(status.observed_generation, Some(2));
    let [accepted] = status.conditions.as_slice() else {
        panic!("one condition: {status:?}");
    };
    assert_eq!(accepted.type_, condition::TYPE_ACCEPTED);
    assert_eq!(accepted.status, "True");
    assert_eq!(accepted.reason, condition::ACCEPTED);
    assert_eq!(accepted.observed_generation, Some(2));
    assert_eq!(accepted.last_transition_time, Time(at(0)));
}

#[test]
fn invalid_verdict_names_the_field() {
    let status = desired_status(&verdict(3, Some(ERROR)), None, at(0));
    let accepted = &status.conditions[0];
    assert_eq!(accepted.status, "False");
    assert_eq!(accepted.reason, condition::INVALID);
    assert_eq!(accepted.message, ERROR);
    assert_eq!(status.observed_generation, Some(3));
}

#[test]
fn transition_time_kept_while_the_status_stays() {
    let first = desired_status(&verdict(1, Some(ERROR)), None, at(0));
    // A new generation, still invalid, with another message: no transition.
    let other = "spec.rules[1].to.ports[0]: port 0 is out of range; use 1-65535";
    let second = desired_status(&verdict(2, Some(other)), Some(&first), at(60));
    assert_eq!(second.conditions[0].last_transition_time, Time(at(0)));
    assert_eq!(second.conditions[0].message, other);
    assert_eq!(second.observed_generation, Some(2));
    // Fixed: False -> True is a transition.
    let third = desired_status(&verdict(3, None), Some(&second), at(120));
    assert_eq!(third.conditions[0].last_transition_time, Time(at(120)));
}

#[test]
fn unchanged_verdict_needs_no_write() {
    let written = desired_status(&verdict(1, None), None, at(0));
    let again = desired_status(&verdict(1, None), Some(&written), at(30));
    assert!(is_up_to_date(Some(&written), &again));
    assert!(!is_up_to_date(None, &again));
    let newer = desired_status(&verdict(2, None), Some(&written), at(30));
    assert!(!is_up_to_date(Some(&written), &newer), "generation moved");
    let broken = desired_status(&verdict(1, Some(ERROR)), Some(&written), at(30));
    assert!(!is_up_to_date(Some(&written), &broken));
}

#[test]
fn conditions_of_others_do_not_matter() {
    let ours = desired_status(&verdict(1, None), None, at(0));
    let mut current = ours.clone();
    let mut theirs = ours.conditions[0].clone();
    theirs.type_ = "example.com/Audited".into();
    current.conditions.insert(0, theirs);
    assert!(is_up_to_date(Some(&current), &ours));
}

#[test]
fn status_round_trips_through_json() {
    let status = desired_status(&verdict(4, Some(ERROR)), None, at(0));
    let json = serde_json::to_value(&status).expect("serializes");
    assert_eq!(json["observedGeneration"], 4);
    assert_eq!(
        json["conditions"][0]["lastTransitionTime"],
        "2027-01-15T08:00:00Z"
    );
    let back: CrdStatus = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, status);
}

#[test]
fn long_messages_are_cut() {
    let long = format!("spec.rules[0]: {}", "é".repeat(40_000));
    let status = desired_status(&verdict(1, Some(&long)), None, at(0));
    let message = &status.conditions[0].message;
    assert!(message.len() <= 32 * 1024, "{}", message.len());
    assert!(message.starts_with("spec.rules[0]: ") && message.ends_with("..."));
}

fn lease(holder: Option<&str>, renewed: i64, duration: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: holder.map(str::to_string),
        renew_time: Some(MicroTime(at(renewed))),
        lease_duration_seconds: Some(duration),
        ..Default::default()
    }
}

#[test]
fn lease_decisions() {
    let default = Duration::from_secs(15);
    let now = at(100);
    let decide = |spec: Option<&LeaseSpec>| decide(spec, "b", now, default);
    assert_eq!(decide(None), Decision::TakeOver, "no spec");
    assert_eq!(
        decide(Some(&lease(None, 99, 15))),
        Decision::TakeOver,
        "released"
    );
    assert_eq!(decide(Some(&lease(Some(""), 99, 15))), Decision::TakeOver);
    assert_eq!(
        decide(Some(&lease(Some("b"), 0, 15))),
        Decision::Renew,
        "ours"
    );
    let follow = Decision::Follow { holder: "a".into() };
    assert_eq!(decide(Some(&lease(Some("a"), 90, 15))), follow, "fresh");
    assert_eq!(
        decide(Some(&lease(Some("a"), 84, 15))),
        Decision::TakeOver,
        "expired"
    );
    assert_eq!(
        decide(Some(&lease(Some("a"), 85, 15))),
        Decision::TakeOver,
        "just expired"
    );
    assert_eq!(
        decide(Some(&lease(Some("a"), 84, 30))),
        follow,
        "its own duration"
    );
    let mut no_duration = lease(Some("a"), 90, 15);
    no_duration.lease_duration_seconds = None;
    assert_eq!(decide(Some(&no_duration)), follow, "default duration");
    let mut never_renewed = lease(Some("a"), 0, 15);
    never_renewed.renew_time = None;
    assert_eq!(decide(Some(&never_renewed)), Decision::TakeOver);
    never_renewed.acquire_time = Some(MicroTime(now - SignedDuration::from_secs(1)));
    assert_eq!(decide(Some(&never_renewed)), follow, "acquired just now");
}

#[test]
fn source_verdicts_convert() {
    use crate::source::{Kind, ObjectKey, kubernetes::VerdictMap, kubernetes::state::CrdVerdict};
    let key = |kind, name: &str| ObjectKey {
        kind,
        namespace: "shop".into(),
        name: name.into(),
    };
    let map = VerdictMap::from([
        (
            key(Kind::AuthorizationPolicy, "web"),
            CrdVerdict {
                generation: Some(2),
                error: Some(ERROR.into()),
            },
        ),
        (
            key(Kind::PeerAuthentication, "strict"),
            CrdVerdict {
                generation: Some(1),
                error: None,
            },
        ),
        (
            key(Kind::Pod, "web-0"),
            CrdVerdict {
                generation: None,
                error: None,
            },
        ),
    ]);
    let verdicts = super::from_source(&map, &super::Findings::default());
    assert_eq!(verdicts.len(), 2, "pods have no status to write");
    let web = &verdicts[&(CrdKind::AuthorizationPolicy, "shop".into(), "web".into())];
    assert_eq!(web, &verdict(2, Some(ERROR)));
    let strict = &verdicts[&(CrdKind::PeerAuthentication, "shop".into(), "strict".into())];
    assert_eq!(strict.error, None);
}
