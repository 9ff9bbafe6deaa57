use std::sync::{Arc, Mutex};

use braid_api::{braid::workload::v1alpha1 as wl, type_url};
use braid_model as model;
use prost::Message;

use super::*;
use crate::{Delta, ResourceError, Store, watch::Watch};

/// What the handler saw: per delta, the (name, version) updated and the
/// names removed.
type Seen = Arc<Mutex<Vec<(Vec<(String, String)>, Vec<String>)>>>;

fn state(subscription: Subscription) -> (TypeState, Store<model::Workload>, Seen) {
    let store = Store::new();
    let seen = Seen::default();
    let record = seen.clone();
    let handler = move |d: Delta<model::Workload>| {
        let updated = d
            .updated
            .iter()
            .map(|u| (u.name.clone(), u.version.clone()));
        record.lock().unwrap().push((updated.collect(), d.removed));
    };
    let watch = Box::new(Watch::new(store.clone(), handler));
    let state = TypeState::new(type_url::WORKLOAD, subscription, watch);
    (state, store, seen)
}

fn resource(uid: &str, version: &str, address: Vec<u8>) -> xds::Resource {
    let workload = wl::Workload {
        uid: uid.into(),
        addresses: vec![address],
        ..Default::default()
    };
    xds::Resource {
        name: uid.into(),
        version: version.into(),
        resource: Some(prost_types::Any {
            type_url: type_url::WORKLOAD.into(),
            value: workload.encode_to_vec(),
        }),
        ..Default::default()
    }
}

fn good(uid: &str, version: &str) -> xds::Resource {
    resource(uid, version, vec![198, 18, 0, 1])
}

fn response(
    nonce: &str,
    resources: Vec<xds::Resource>,
    removed: &[&str],
) -> xds::DeltaDiscoveryResponse {
    xds::DeltaDiscoveryResponse {
        system_version_info: format!("sys-{nonce}"),
        type_url: type_url::WORKLOAD.into(),
        nonce: nonce.into(),
        resources,
        removed_resources: removed.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn names(store: &Store<model::Workload>) -> Vec<(String, String)> {
    store
        .snapshot()
        .into_iter()
        .map(|(name, c)| (name, c.version))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn wildcard_initial_request_asks_for_star_without_nonce() {
    let (mut s, _, _) = state(Subscription::Wildcard);
    let req = s.on_connect().unwrap();
    assert_eq!(req.type_url, type_url::WORKLOAD);
    assert_eq!(req.resource_names_subscribe, vec!["*"]);
    assert!(req.initial_resource_versions.is_empty());
    assert!(req.response_nonce.is_empty() && req.error_detail.is_none());
}

#[test]
fn good_response_is_applied_and_acked() {
    let (mut s, store, seen) = state(Subscription::Wildcard);
    s.on_connect();
    let ack = s.on_response(response("n1", vec![good("a", "1"), good("b", "1")], &[]));
    assert_eq!(ack.response_nonce, "n1");
    assert!(ack.error_detail.is_none());
    assert_eq!(names(&store), pairs(&[("a", "1"), ("b", "1")]));
    assert_eq!(seen.lock().unwrap().len(), 1);
    let status = s.status();
    assert_eq!((status.resources, status.acks, status.synced), (2, 1, true));
    assert_eq!(status.acked_nonce.as_deref(), Some("n1"));
    assert_eq!(status.acked_version.as_deref(), Some("sys-n1"));
}

#[test]
fn bad_resource_is_nacked_by_name_and_good_ones_applied() {
    let (mut s, store, _) = state(Subscription::Wildcard);
    s.on_connect();
    s.on_response(response("n1", vec![good("a", "1"), good("b", "1")], &[]));
    let bad = resource("b", "2", vec![1, 2, 3]);
    let nack = s.on_response(response("n2", vec![good("a", "2"), bad], &[]));

    assert_eq!(nack.response_nonce, "n2");
    let detail = nack.error_detail.unwrap();
    assert_eq!(detail.code, 3);
    assert!(detail.message.contains("\"b\""), "{}", detail.message);
    assert!(
        detail.message.contains("addresses[0]"),
        "{}",
        detail.message
    );
    assert!(!detail.message.contains("\"a\""), "{}", detail.message);
    // The good one moved on; the bad one kept its previous version.
    assert_eq!(names(&store), pairs(&[("a", "2"), ("b", "1")]));
    let status = s.status();
    assert_eq!(status.acked_nonce.as_deref(), Some("n1"));
    assert_eq!(status.last_nack.as_ref().unwrap().nonce, "n2");
    assert_eq!(status.nacks, 1);
}

#[test]
fn removals_apply_and_reach_the_handler() {
    let (mut s, store, seen) = state(Subscription::Wildcard);
    s.on_connect();
    s.on_response(response("n1", vec![good("a", "1"), good("b", "1")], &[]));
    s.on_response(response("n2", vec![], &["a", "never-held"]));
    assert_eq!(names(&store), pairs(&[("b", "1")]));
    let seen = seen.lock().unwrap();
    assert_eq!(seen[1], (vec![], vec!["a".to_string()]));
}

#[test]
fn unchanged_versions_and_empty_responses_do_not_call_the_handler() {
    let (mut s, _, seen) = state(Subscription::Wildcard);
    s.on_connect();
    s.on_response(response("n1", vec![good("a", "1")], &[]));
    let ack = s.on_response(response("n2", vec![good("a", "1")], &[]));
    assert!(ack.error_detail.is_none());
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn duplicate_names_are_rejected() {
    let (mut s, store, _) = state(Subscription::Wildcard);
    s.on_connect();
    let nack = s.on_response(response("n1", vec![good("a", "1"), good("a", "2")], &[]));
    let message = nack.error_detail.unwrap().message;
    assert!(
        message.contains(&ResourceError::Duplicate.to_string()),
        "{message}"
    );
    assert!(store.is_empty());
}

#[test]
fn reconnect_announces_held_versions() {
    let (mut s, _, _) = state(Subscription::Wildcard);
    s.on_connect();
    s.on_response(response("n1", vec![good("a", "1"), good("b", "7")], &[]));
    s.on_disconnect();
    let req = s.on_connect().unwrap();
    assert_eq!(req.resource_names_subscribe, vec!["*"]);
    let versions: Vec<(String, String)> = req.initial_resource_versions.into_iter().collect();
    assert_eq!(versions, pairs(&[("a", "1"), ("b", "7")]));
}

#[test]
fn empty_explicit_subscription_waits_for_a_name() {
    let (mut s, _, _) = state(Subscription::Names(Default::default()));
    assert!(s.on_connect().is_none());
    // The first name is the stream's initial request for this type.
    let req = s.subscribe(vec!["a".into()]).unwrap();
    assert_eq!(req.resource_names_subscribe, vec!["a"]);
    let req = s.subscribe(vec!["a".into(), "b".into()]).unwrap();
    assert_eq!(req.resource_names_subscribe, vec!["b"]);
    assert!(req.response_nonce.is_empty());
}

#[test]
fn unsubscribe_drops_resources_and_sends_the_names() {
    let (mut s, store, seen) = state(Subscription::names(["a", "b"]));
    s.on_connect();
    s.on_response(response("n1", vec![good("a", "1"), good("b", "1")], &[]));
    let req = s.unsubscribe(vec!["a".into(), "zzz".into()]).unwrap();
    assert_eq!(req.resource_names_unsubscribe, vec!["a"]);
    assert_eq!(names(&store), pairs(&[("b", "1")]));
    assert_eq!(seen.lock().unwrap()[1].1, vec!["a".to_string()]);
    // A late update for the name just dropped is ignored, not re-added.
    let ack = s.on_response(response("n2", vec![good("a", "2")], &[]));
    assert!(ack.error_detail.is_none());
    assert_eq!(names(&store), pairs(&[("b", "1")]));
}

#[test]
fn changes_while_disconnected_shape_the_next_initial_request() {
    let (mut s, _, _) = state(Subscription::names(["a"]));
    s.on_connect();
    s.on_disconnect();
    assert!(s.subscribe(vec!["b".into()]).is_none());
    assert!(s.unsubscribe(vec!["a".into()]).is_none());
    let req = s.on_connect().unwrap();
    assert_eq!(req.resource_names_subscribe, vec!["b"]);
}

#[test]
fn wildcard_keeps_resources_of_an_unsubscribed_name() {
    let (mut s, store, _) = state(Subscription::Wildcard);
    s.on_connect();
    s.subscribe(vec!["a".into()]);
    s.on_response(response("n1", vec![good("a", "1")], &[]));
    s.unsubscribe(vec!["a".into()]);
    assert_eq!(store.len(), 1);
}

#[test]
fn turning_the_wildcard_off_keeps_only_named_resources() {
    let (mut s, store, _) = state(Subscription::Wildcard);
    s.on_connect();
    s.subscribe(vec!["a".into()]);
    s.on_response(response("n1", vec![good("a", "1"), good("b", "1")], &[]));
    let req = s.unsubscribe(vec!["*".into()]).unwrap();
    assert_eq!(req.resource_names_unsubscribe, vec!["*"]);
    assert_eq!(names(&store), pairs(&[("a", "1")]));
    assert!(!s.status().wildcard);
}

#[test]
fn unwatched_type_is_nacked() {
    let mut r = response("n1", vec![], &[]);
    r.type_url = "type.googleapis.com/unknown.Thing".into();
    let nack = reject_unwatched(&r);
    assert_eq!(nack.response_nonce, "n1");
    assert_eq!(nack.error_detail.unwrap().code, 3);
}
