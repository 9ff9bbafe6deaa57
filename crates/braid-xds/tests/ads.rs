//! The client against the in-process fake ADS server: every exchange is
//! scripted by the test, every wait has a deadline.

use std::time::Duration;

use braid_api::{braid::workload::v1alpha1 as wl, envoy::service::discovery::v3 as xds, type_url};
use braid_model::{Service, Workload};
use braid_xds::{
    Backoff, Client, ClientHandle, ClientStatus, ConnectionState, Delta, Error, NodeInfo,
    Subscription,
    test_util::{FakeAds, FakeStream, TIMEOUT, resource, response, unreachable_uri},
};
use tokio::{sync::mpsc, task::JoinHandle};

const MS: Duration = Duration::from_millis(1);

fn workload(uid: &str, address: Vec<u8>) -> xds::Resource {
    let proto = wl::Workload {
        uid: uid.into(),
        addresses: vec![address],
        ..Default::default()
    };
    resource::<Workload>(uid, "1", &proto)
}

fn versioned(uid: &str, version: &str) -> xds::Resource {
    let mut r = workload(uid, vec![198, 18, 0, 1]);
    r.version = version.into();
    r
}

struct Running {
    handle: ClientHandle,
    task: JoinHandle<()>,
    deltas: mpsc::UnboundedReceiver<Delta<Workload>>,
}

/// Starts a client watching workloads (forwarding deltas to `deltas`) and
/// services (no handler work).
fn start(
    uri: String,
    workloads: Subscription,
    services: Subscription,
    backoff: Backoff,
) -> Running {
    let (tx, deltas) = mpsc::unbounded_channel();
    let client = Client::builder(uri, NodeInfo::new("test~node-a"))
        .watch::<Workload>(workloads, move |d: Delta<Workload>| {
            let _ = tx.send(d);
        })
        .watch::<Service>(services, |_: Delta<Service>| {})
        .backoff(backoff)
        .build()
        .expect("a valid client configuration");
    let (handle, task) = client.spawn();
    Running {
        handle,
        task,
        deltas,
    }
}

fn quick() -> Backoff {
    Backoff::new(10 * MS, 50 * MS)
}

async fn next_delta(r: &mut Running) -> Delta<Workload> {
    tokio::time::timeout(TIMEOUT, r.deltas.recv())
        .await
        .expect("no delta within the deadline")
        .expect("client dropped its handler")
}

async fn wait_status(
    handle: &ClientHandle,
    done: impl FnMut(&ClientStatus) -> bool,
) -> ClientStatus {
    let mut rx = handle.status_changes();
    let status = tokio::time::timeout(TIMEOUT, rx.wait_for(done))
        .await
        .expect("status condition not reached within the deadline")
        .expect("client dropped its status");
    status.clone()
}

/// The initial workload request of a fresh stream (services are wildcard in
/// most tests and announce themselves too; skip them).
async fn workload_request(stream: &mut FakeStream) -> xds::DeltaDiscoveryRequest {
    loop {
        let req = stream.expect_request().await;
        if req.type_url == type_url::WORKLOAD {
            return req;
        }
    }
}

fn held(handle: &ClientHandle) -> Vec<(String, String)> {
    let store = handle.store::<Workload>().expect("workloads are watched");
    store
        .snapshot()
        .into_iter()
        .map(|(n, c)| (n, c.version))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn wildcard_subscribe_receives_resources_and_acks_per_type() {
    let mut ads = FakeAds::start().await.unwrap();
    let mut r = start(
        ads.uri(),
        Subscription::Wildcard,
        Subscription::Wildcard,
        quick(),
    );
    let mut stream = ads.next_stream().await;

    // One initial request per type; the node rides on the first only.
    let first = stream.expect_request().await;
    let second = stream.expect_request().await;
    assert_eq!(first.node.as_ref().unwrap().id, "test~node-a");
    assert!(second.node.is_none());
    for req in [&first, &second] {
        assert_eq!(req.resource_names_subscribe, vec!["*"]);
        assert!(req.initial_resource_versions.is_empty() && req.response_nonce.is_empty());
    }

    stream.send(response::<Workload>(
        "w1",
        vec![versioned("shop/a", "1"), versioned("shop/b", "1")],
        &[],
    ));
    let ack = stream.expect_request().await;
    assert_eq!(
        (ack.type_url.as_str(), ack.response_nonce.as_str()),
        (type_url::WORKLOAD, "w1")
    );
    assert!(ack.error_detail.is_none());
    let delta = next_delta(&mut r).await;
    assert_eq!(delta.updated.len(), 2);
    assert_eq!(delta.updated[0].value.uid.as_str(), "shop/a");

    stream.send(response::<Service>("s1", vec![], &[]));
    let ack = stream.expect_request().await;
    assert_eq!(
        (ack.type_url.as_str(), ack.response_nonce.as_str()),
        (type_url::SERVICE, "s1")
    );

    let status = wait_status(&r.handle, |s| s.is_synced()).await;
    let workloads = &status.types[type_url::WORKLOAD];
    assert_eq!(workloads.resources, 2);
    assert_eq!(workloads.acked_nonce.as_deref(), Some("w1"));
    assert_eq!(workloads.acked_version.as_deref(), Some("v-w1"));
    assert!(status.is_connected());
    assert_eq!(held(&r.handle), pairs(&[("shop/a", "1"), ("shop/b", "1")]));
    r.handle.shutdown();
}

#[tokio::test]
async fn bad_resource_is_nacked_by_name_and_good_ones_applied() {
    let mut ads = FakeAds::start().await.unwrap();
    let mut r = start(
        ads.uri(),
        Subscription::Wildcard,
        Subscription::names(["x"]),
        quick(),
    );
    let mut stream = ads.next_stream().await;
    workload_request(&mut stream).await;

    let bad = workload("shop/bad", vec![10, 0, 0]);
    stream.send(response::<Workload>(
        "w1",
        vec![versioned("shop/good", "1"), bad],
        &[],
    ));
    let nack = workload_request(&mut stream).await;
    assert_eq!(nack.response_nonce, "w1");
    let detail = nack.error_detail.expect("a nack carries error_detail");
    assert_eq!(detail.code, 3, "INVALID_ARGUMENT");
    assert!(detail.message.contains("shop/bad"), "{}", detail.message);
    assert!(
        detail.message.contains("addresses[0]"),
        "{}",
        detail.message
    );
    assert!(!detail.message.contains("shop/good"), "{}", detail.message);

    let delta = next_delta(&mut r).await;
    assert_eq!(delta.updated.len(), 1);
    assert_eq!(held(&r.handle), pairs(&[("shop/good", "1")]));
    let status = wait_status(&r.handle, |s| s.types[type_url::WORKLOAD].nacks == 1).await;
    let workloads = &status.types[type_url::WORKLOAD];
    assert_eq!(workloads.last_nack.as_ref().unwrap().reason, detail.message);
    assert_eq!(workloads.acked_nonce, None);
    r.handle.shutdown();
}

#[tokio::test]
async fn removal_applies() {
    let mut ads = FakeAds::start().await.unwrap();
    let mut r = start(
        ads.uri(),
        Subscription::Wildcard,
        Subscription::names(["x"]),
        quick(),
    );
    let mut stream = ads.next_stream().await;
    workload_request(&mut stream).await;

    stream.send(response::<Workload>(
        "w1",
        vec![versioned("shop/a", "1"), versioned("shop/b", "1")],
        &[],
    ));
    workload_request(&mut stream).await;
    next_delta(&mut r).await;
    stream.send(response::<Workload>("w2", vec![], &["shop/a"]));
    let ack = workload_request(&mut stream).await;
    assert_eq!(ack.response_nonce, "w2");
    assert!(ack.error_detail.is_none());

    let delta = next_delta(&mut r).await;
    assert_eq!(delta.removed, vec!["shop/a"]);
    assert!(delta.updated.is_empty());
    assert_eq!(held(&r.handle), pairs(&[("shop/b", "1")]));
    r.handle.shutdown();
}

#[tokio::test]
async fn reconnect_sends_held_versions_and_applies_removals_made_meanwhile() {
    let mut ads = FakeAds::start().await.unwrap();
    let mut r = start(
        ads.uri(),
        Subscription::Wildcard,
        Subscription::Wildcard,
        quick(),
    );
    let mut stream = ads.next_stream().await;
    workload_request(&mut stream).await;
    stream.send(response::<Workload>(
        "w1",
        vec![versioned("shop/a", "1"), versioned("shop/b", "1")],
        &[],
    ));
    workload_request(&mut stream).await;
    next_delta(&mut r).await;

    drop(stream);
    let mut stream = ads.next_stream().await;
    let initial = workload_request(&mut stream).await;
    assert_eq!(initial.resource_names_subscribe, vec!["*"]);
    assert!(initial.response_nonce.is_empty());
    let versions: Vec<(String, String)> = initial.initial_resource_versions.into_iter().collect();
    assert_eq!(versions, pairs(&[("shop/a", "1"), ("shop/b", "1")]));

    // While the client was away, a changed and b was deleted.
    stream.send(response::<Workload>(
        "w2",
        vec![versioned("shop/a", "2")],
        &["shop/b"],
    ));
    assert!(workload_request(&mut stream).await.error_detail.is_none());
    let delta = next_delta(&mut r).await;
    assert_eq!(
        (delta.updated.len(), delta.removed.clone()),
        (1, vec!["shop/b".to_string()])
    );
    assert_eq!(held(&r.handle), pairs(&[("shop/a", "2")]));
    r.handle.shutdown();
}

#[tokio::test]
async fn stream_error_is_reported_while_backing_off_and_shutdown_is_prompt() {
    let mut ads = FakeAds::start().await.unwrap();
    // A long backoff holds the client in BackingOff so the test can see it.
    let slow = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
    let r = start(
        ads.uri(),
        Subscription::Wildcard,
        Subscription::Wildcard,
        slow,
    );
    let stream = ads.next_stream().await;
    stream.fail(tonic::Status::unavailable("control plane restarting"));

    let status = wait_status(&r.handle, |s| {
        matches!(s.connection, ConnectionState::BackingOff { .. })
    })
    .await;
    let ConnectionState::BackingOff {
        attempt,
        retry_in,
        last_error,
    } = status.connection
    else {
        unreachable!()
    };
    assert_eq!(attempt, 1);
    assert!(retry_in >= Duration::from_secs(30), "{retry_in:?}");
    assert!(
        matches!(&*last_error, Error::Stream(s) if s.code() == tonic::Code::Unavailable),
        "{last_error}"
    );

    r.handle.shutdown();
    tokio::time::timeout(TIMEOUT, r.task)
        .await
        .expect("run did not return")
        .unwrap();
    assert!(matches!(
        r.handle.status().connection,
        ConnectionState::Stopped
    ));
    assert!(matches!(
        r.handle.subscribe(type_url::WORKLOAD, ["a"]),
        Err(Error::Stopped)
    ));
}

#[tokio::test]
async fn backoff_grows_while_the_server_is_unreachable() {
    let uri = unreachable_uri().await.unwrap();
    let initial = 10 * MS;
    let r = start(
        uri,
        Subscription::Wildcard,
        Subscription::Wildcard,
        Backoff::new(initial, Duration::from_secs(1)),
    );
    let mut rx = r.handle.status_changes();
    let mut observed = Vec::new();
    let watch = async {
        while observed.last().is_none_or(|(attempt, _)| *attempt < 4) {
            rx.changed().await.unwrap();
            if let ConnectionState::BackingOff {
                attempt,
                retry_in,
                last_error,
            } = &rx.borrow_and_update().connection
            {
                assert!(
                    matches!(**last_error, Error::Connect { .. }),
                    "{last_error}"
                );
                observed.push((*attempt, *retry_in));
            }
        }
    };
    tokio::time::timeout(TIMEOUT, watch)
        .await
        .expect("too few attempts");
    // The watch channel may skip states, so check every attempt seen against
    // its own bounds: attempt n waits within [base/2, base], base = initial * 2^(n-1).
    for (attempt, delay) in &observed {
        let base = initial * 2u32.pow(attempt - 1);
        assert!(
            *delay >= base / 2 && *delay <= base,
            "attempt {attempt} waited {delay:?}"
        );
    }
    let (_, last) = observed.last().unwrap();
    assert!(
        *last > initial,
        "attempt 4+ waits {last:?}, no more than the first"
    );
    r.handle.shutdown();
}

#[tokio::test]
async fn explicit_names_subscribe_and_unsubscribe_send_requests() {
    let mut ads = FakeAds::start().await.unwrap();
    let empty = Subscription::Names(Default::default());
    let mut r = start(ads.uri(), Subscription::names(["shop/a"]), empty, quick());
    let mut stream = ads.next_stream().await;

    // Services subscribe to nothing yet, so only workloads are announced.
    let initial = stream.expect_request().await;
    assert_eq!(initial.type_url, type_url::WORKLOAD);
    assert_eq!(initial.resource_names_subscribe, vec!["shop/a"]);
    stream.send(response::<Workload>(
        "w1",
        vec![versioned("shop/a", "1")],
        &[],
    ));
    stream.expect_request().await;
    next_delta(&mut r).await;

    r.handle
        .subscribe(type_url::WORKLOAD, ["shop/b", "shop/a"])
        .unwrap();
    let req = stream.expect_request().await;
    assert_eq!(req.resource_names_subscribe, vec!["shop/b"]);
    assert!(req.response_nonce.is_empty() && req.resource_names_unsubscribe.is_empty());

    r.handle
        .unsubscribe(type_url::WORKLOAD, ["shop/a"])
        .unwrap();
    let req = stream.expect_request().await;
    assert_eq!(req.resource_names_unsubscribe, vec!["shop/a"]);
    assert!(req.response_nonce.is_empty());
    // The server sends no removal for an unsubscribed name; the client drops it.
    assert_eq!(next_delta(&mut r).await.removed, vec!["shop/a"]);
    assert!(held(&r.handle).is_empty());

    r.handle.subscribe(type_url::SERVICE, ["shop/web"]).unwrap();
    let req = stream.expect_request().await;
    assert_eq!(req.type_url, type_url::SERVICE);
    assert_eq!(req.resource_names_subscribe, vec!["shop/web"]);

    let err = r
        .handle
        .subscribe(type_url::AUTHORIZATION, ["x"])
        .unwrap_err();
    assert!(matches!(err, Error::NotWatched { .. }), "{err}");
    r.handle.shutdown();
    tokio::time::timeout(TIMEOUT, r.task)
        .await
        .expect("run did not return")
        .unwrap();
    // A clean shutdown half-closes the request stream.
    assert!(stream.recv().await.is_none());
}

#[test]
fn builder_rejects_a_second_watch_of_one_type_and_a_bad_uri() {
    let node = NodeInfo::new("n");
    let twice = Client::builder("http://127.0.0.1:1", node.clone())
        .watch::<Workload>(Subscription::Wildcard, |_: Delta<Workload>| {})
        .watch::<Workload>(Subscription::Wildcard, |_: Delta<Workload>| {})
        .build();
    assert!(matches!(twice, Err(Error::DuplicateWatch { .. })));
    let bad = Client::builder("not a uri", node).build();
    assert!(matches!(bad, Err(Error::InvalidUri { .. })));
}
