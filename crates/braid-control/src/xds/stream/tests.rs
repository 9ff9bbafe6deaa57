use braid_api::{
    braid::workload::v1alpha1 as wl, envoy::service::discovery::v3::DeltaDiscoveryRequest,
    google::rpc::Status,
};

use super::*;

fn workload(name: &str, node: &str) -> Option<Arc<Resource>> {
    let msg = wl::Workload {
        uid: name.into(),
        node: node.into(),
        ..Default::default()
    };
    Some(Arc::new(Resource::encode(
        ResourceType::Workload,
        name.into(),
        &msg,
    )))
}

fn snapshot(base: &Snapshot, items: Vec<(&str, Option<Arc<Resource>>)>) -> Snapshot {
    let mut updates: crate::index::Updates = Default::default();
    for (name, r) in items {
        updates[0].insert(name.into(), r);
    }
    base.next(updates).expect("snapshot changed")
}

fn request(subscribe: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: ResourceType::Workload.type_url().into(),
        resource_names_subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn answer(r: &DeltaDiscoveryResponse, nack: Option<&str>) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: r.type_url.clone(),
        response_nonce: r.nonce.clone(),
        error_detail: nack.map(|m| Status {
            code: 3,
            message: m.into(),
            details: vec![],
        }),
        ..Default::default()
    }
}

fn names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
    r.resources.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn legacy_wildcard_and_empty_initial_response() {
    let mut s = StreamState::new("peer".into());
    let empty = Snapshot::default();
    let r = s
        .on_request(request(&[]), &empty)
        .responses
        .pop()
        .expect("initial request is always answered");
    assert!(r.resources.is_empty() && r.removed_resources.is_empty());
    let snap = snapshot(&empty, vec![("a/1", workload("a/1", "n"))]);
    let pushed = s.on_snapshot(&snap);
    assert_eq!(pushed.len(), 1);
    assert_eq!(names(&pushed[0]), vec!["a/1"]);
}

#[test]
fn ack_nack_and_stale_nonces() {
    let mut s = StreamState::new("peer".into());
    let snap1 = snapshot(&Snapshot::default(), vec![("a/1", workload("a/1", "n"))]);
    let r1 = s
        .on_request(request(&["*"]), &snap1)
        .responses
        .pop()
        .expect("response");
    let snap2 = snapshot(&snap1, vec![("a/1", workload("a/1", "m"))]);
    let r2 = s.on_snapshot(&snap2).pop().expect("push");
    // The ACK for r1 arrives after r2 was sent: not in sync yet.
    assert!(s.on_request(answer(&r1, None), &snap2).acked);
    assert!(!s.status(snap2.version)[0].in_sync);
    let out = s.on_request(answer(&r2, Some("bad node")), &snap2);
    assert!(out.nacked);
    let status = &s.status(snap2.version)[0];
    assert!(!status.in_sync);
    assert_eq!(status.acked_version, Some(1));
    assert_eq!(
        status
            .last_nack
            .as_ref()
            .map(|n| (n.version, n.reason.as_str())),
        Some((2, "bad node"))
    );
    // Answering an already answered nonce changes nothing.
    let stale = s.on_request(answer(&r1, None), &snap2);
    assert!(!stale.acked && !stale.nacked);
}

#[test]
fn resubscribing_a_held_name_resends_it_and_unsubscribe_stops_updates() {
    let mut s = StreamState::new("peer".into());
    let snap = snapshot(
        &Snapshot::default(),
        vec![("a/1", workload("a/1", "n")), ("a/2", workload("a/2", "n"))],
    );
    let r = s
        .on_request(request(&["a/1"]), &snap)
        .responses
        .pop()
        .expect("response");
    assert_eq!(names(&r), vec!["a/1"]);
    let again = s
        .on_request(request(&["a/1"]), &snap)
        .responses
        .pop()
        .expect("resubscribe is answered");
    assert_eq!(names(&again), vec!["a/1"]);
    let mut unsub = request(&[]);
    unsub.resource_names_unsubscribe = vec!["a/1".into()];
    assert!(s.on_request(unsub, &snap).responses.is_empty());
    let snap2 = snapshot(&snap, vec![("a/1", workload("a/1", "x"))]);
    assert!(s.on_snapshot(&snap2).is_empty());
    assert_eq!(s.status(snap2.version)[0].resources, 0);
}

#[test]
fn a_stream_far_behind_the_history_diffs_everything() {
    let mut s = StreamState::new("peer".into());
    let mut snap = snapshot(
        &Snapshot::default(),
        vec![
            ("a/0", workload("a/0", "n")),
            ("a/gone", workload("a/gone", "n")),
        ],
    );
    s.on_request(request(&["*"]), &snap);
    snap = snapshot(&snap, vec![("a/gone", None)]);
    for i in 0..100 {
        snap = snapshot(&snap, vec![("a/0", workload("a/0", &i.to_string()))]);
    }
    let r = s.on_snapshot(&snap).pop().expect("push");
    assert_eq!(names(&r), vec!["a/0"]);
    assert_eq!(r.removed_resources, vec!["a/gone"]);
}

#[test]
fn unknown_type_urls_are_ignored() {
    let mut s = StreamState::new("peer".into());
    let mut req = request(&["*"]);
    req.type_url = "type.googleapis.com/envoy.config.cluster.v3.Cluster".into();
    assert_eq!(
        s.on_request(req, &Snapshot::default()),
        RequestOutcome::default()
    );
    assert!(s.status(0).is_empty());
}

#[test]
fn large_answers_are_split_and_each_part_is_acked() {
    // ~2.5 MiB of workloads: three parts under MAX_RESPONSE_BYTES.
    let big = "x".repeat(8 * 1024);
    let items: Vec<(String, Option<Arc<Resource>>)> = (0..320)
        .map(|i| {
            let name = format!("a/{i:03}");
            let r = workload(&name, &big);
            (name, r)
        })
        .collect();
    let mut snap = snapshot(
        &Snapshot::default(),
        items.iter().map(|(n, r)| (n.as_str(), r.clone())).collect(),
    );
    snap = snapshot(&snap, vec![("a/000", None)]);
    let mut s = StreamState::new("peer".into());
    let parts = s.on_request(request(&["*"]), &snap).responses;
    assert_eq!(parts.len(), 3);
    assert_eq!(parts.iter().map(|p| p.resources.len()).sum::<usize>(), 319);
    assert!(parts.iter().all(|p| {
        p.resources
            .iter()
            .map(|r| r.resource.as_ref().map_or(0, |a| a.value.len()))
            .sum::<usize>()
            <= MAX_RESPONSE_BYTES
    }));
    assert!(
        parts
            .iter()
            .map(|p| &p.nonce)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == 3,
        "one nonce each"
    );
    // In sync only once every part is ACKed (the last ACK covers earlier ones).
    assert!(s.on_request(answer(&parts[0], None), &snap).acked);
    assert!(!s.status(snap.version)[0].in_sync);
    assert!(s.on_request(answer(&parts[2], None), &snap).acked);
    assert!(s.status(snap.version)[0].in_sync);
    assert_eq!(
        parts[2].removed_resources,
        Vec::<String>::new(),
        "a fresh client had nothing to remove"
    );
}
