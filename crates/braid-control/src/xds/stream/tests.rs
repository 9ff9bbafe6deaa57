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

/// [`StreamState::on_request`] for a request the stream must accept.
trait Accept {
    fn accept(&mut self, req: DeltaDiscoveryRequest, snapshot: &Snapshot) -> RequestOutcome;
}

impl Accept for StreamState {
    fn accept(&mut self, req: DeltaDiscoveryRequest, snapshot: &Snapshot) -> RequestOutcome {
        self.on_request(req, snapshot).expect("request accepted")
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
        .accept(request(&[]), &empty)
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
        .accept(request(&["*"]), &snap1)
        .responses
        .pop()
        .expect("response");
    let snap2 = snapshot(&snap1, vec![("a/1", workload("a/1", "m"))]);
    let r2 = s.on_snapshot(&snap2).pop().expect("push");
    // The ACK for r1 arrives after r2 was sent: not in sync yet.
    assert!(s.accept(answer(&r1, None), &snap2).acked);
    assert!(!s.status(snap2.version)[0].in_sync);
    let out = s.accept(answer(&r2, Some("bad node")), &snap2);
    assert!(out.nack.is_some());
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
    let stale = s.accept(answer(&r1, None), &snap2);
    assert!(!stale.acked && stale.nack.is_none());
}

#[test]
fn resubscribing_a_held_name_resends_it_and_unsubscribe_stops_updates() {
    let mut s = StreamState::new("peer".into());
    let snap = snapshot(
        &Snapshot::default(),
        vec![("a/1", workload("a/1", "n")), ("a/2", workload("a/2", "n"))],
    );
    let r = s
        .accept(request(&["a/1"]), &snap)
        .responses
        .pop()
        .expect("response");
    assert_eq!(names(&r), vec!["a/1"]);
    let again = s
        .accept(request(&["a/1"]), &snap)
        .responses
        .pop()
        .expect("resubscribe is answered");
    assert_eq!(names(&again), vec!["a/1"]);
    let mut unsub = request(&[]);
    unsub.resource_names_unsubscribe = vec!["a/1".into()];
    assert!(s.accept(unsub, &snap).responses.is_empty());
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
    s.accept(request(&["*"]), &snap);
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
        s.accept(req, &Snapshot::default()),
        RequestOutcome {
            unknown_type: Some("type.googleapis.com/envoy.config.cluster.v3.Cluster".into()),
            ..Default::default()
        }
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
    let parts = s.accept(request(&["*"]), &snap).responses;
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
    assert!(s.accept(answer(&parts[0], None), &snap).acked);
    assert!(!s.status(snap.version)[0].in_sync);
    assert!(s.accept(answer(&parts[2], None), &snap).acked);
    assert!(s.status(snap.version)[0].in_sync);
    assert_eq!(
        parts[2].removed_resources,
        Vec::<String>::new(),
        "a fresh client had nothing to remove"
    );
}

#[test]
fn oversized_nack_reason_is_truncated() {
    let mut s = StreamState::new("peer".into());
    let snap = snapshot(&Snapshot::default(), vec![("a/1", workload("a/1", "n"))]);
    let r = s
        .accept(request(&["*"]), &snap)
        .responses
        .pop()
        .expect("response");
    // 3 MiB of multi-byte characters: the cut must land on a boundary.
    let reason = "é".repeat(3 * 1024 * 1024 / 2);
    let out = s.accept(answer(&r, Some(&reason)), &snap);
    let logged = out.nack.expect("a NACK");
    assert!(logged.len() <= MAX_NACK_REASON_BYTES, "{}", logged.len());
    assert!(logged.ends_with(braid_model::text::TRUNCATED_MARKER));
    let stored = s.status(snap.version)[0]
        .last_nack
        .clone()
        .expect("nack stored");
    assert!(stored.reason.len() <= MAX_NACK_REASON_BYTES);
    assert!(stored.reason.capacity() <= MAX_NACK_REASON_BYTES);
    assert!(stored.reason.starts_with("éé"));
}

#[test]
fn named_subscriptions_are_bounded() {
    let mut s = StreamState::new("peer".into());
    let snap = Snapshot::default();
    let names: Vec<String> = (0..MAX_NAMED_SUBSCRIPTIONS)
        .map(|i| format!("ns/w-{i}"))
        .collect();
    let mut req = request(&[]);
    req.resource_names_subscribe = names.clone();
    s.accept(req, &snap);
    // Resubscribing to held names costs nothing and is allowed.
    s.accept(request(&["ns/w-0"]), &snap);
    // One more name, even on another type, is over the stream's budget.
    let mut more = request(&["ns/one-more"]);
    more.type_url = ResourceType::Service.type_url().into();
    assert_eq!(
        s.on_request(more, &snap),
        Err(Refusal::TooManyNames {
            type_url: ResourceType::Service.type_url(),
            max: MAX_NAMED_SUBSCRIPTIONS,
        })
    );
    // Unsubscribing makes room again.
    let mut unsub = request(&[]);
    unsub.resource_names_unsubscribe = vec!["ns/w-1".into()];
    s.accept(unsub, &snap);
    s.accept(request(&["ns/one-more"]), &snap);
}

#[test]
fn overlong_names_and_node_ids_are_refused() {
    let mut s = StreamState::new("peer".into());
    let long = "x".repeat(MAX_NAME_BYTES + 1);
    assert!(matches!(
        s.on_request(request(&[&long]), &Snapshot::default()),
        Err(Refusal::NameTooLong { .. })
    ));
    let mut s = StreamState::new("peer".into());
    let mut req = request(&["*"]);
    req.node = Some(braid_api::envoy::config::core::v3::Node {
        id: "n".repeat(MAX_NODE_ID_BYTES + 1),
        user_agent_name: "u".repeat(10_000),
        ..Default::default()
    });
    assert!(matches!(
        s.on_request(req.clone(), &Snapshot::default()),
        Err(Refusal::NodeIdTooLong { .. })
    ));
    req.node.as_mut().expect("node").id = "sidecar~a".into();
    s.accept(req, &Snapshot::default());
    assert_eq!(s.node_id, "sidecar~a");
    assert!(s.user_agent.len() <= MAX_USER_AGENT_BYTES);
}
