//! Pods whose mode changes while they run: captured in place when they turn
//! ambient, released (and still recorded) when they leave, forgotten on DEL
//! or when they are gone; the ztunnel only ever hears of captured ones.

use super::*;

#[tokio::test]
async fn a_running_pod_that_turns_ambient_is_captured_without_an_add() {
    let mut s = switching_from(DataPlaneMode::None).await;
    // ADD of a pod in mode none installs nothing but records the pod.
    s.wait_for_record("u1", Some(false)).await;
    assert!(s.redirect.calls().is_empty(), "{:?}", s.redirect.calls());

    // Its namespace's label turns ambient: no CNI call, yet the pod is
    // captured at once (no grace) and handed to the ztunnel.
    let changed = tokio::time::Instant::now();
    s.set_mode(DataPlaneMode::Ambient);
    assert_eq!(
        next(&mut s.events).await,
        ("add".into(), "u1".into(), own_inode())
    );
    assert!(
        changed.elapsed() < Duration::from_millis(300),
        "captured after {:?}, not at once",
        changed.elapsed()
    );
    s.wait_for_record("u1", Some(true)).await;
    s.wait_for_calls(&["install"]).await;
    // The running pod's connections are redirected only once the ztunnel
    // listens in its namespace: the other order refuses them meanwhile.
    assert_eq!(s.redirect.timeline(), ["ztunnel add", "install"]);
    s.agent
        .handle(&request(Command::Check, "web-0", "u1"))
        .await
        .expect("CHECK of the pod captured in place");
    s.running.abort();
}

#[tokio::test]
async fn ambient_then_none_then_ambient_releases_then_captures_again() {
    let mut s = switching().await;
    s.set_mode(DataPlaneMode::None);
    assert_eq!(next(&mut s.events).await, ("remove".into(), "u1".into(), 0));
    s.wait_for_record("u1", Some(false)).await;
    // CHECK of a pod in mode none passes whether or not it was captured.
    s.agent
        .handle(&request(Command::Check, "web-0", "u1"))
        .await
        .expect("CHECK while in mode none");

    s.set_mode(DataPlaneMode::Ambient);
    assert_eq!(
        next(&mut s.events).await,
        ("add".into(), "u1".into(), own_inode())
    );
    s.wait_for_record("u1", Some(true)).await;
    s.wait_for_calls(&["install", "remove", "install"]).await;
    s.running.abort();
}

#[tokio::test]
async fn del_of_an_uncaptured_pod_removes_its_record_and_nothing_else() {
    let mut s = switching_from(DataPlaneMode::None).await;
    s.wait_for_record("u1", Some(false)).await;
    s.agent
        .handle(&request(Command::Del, "web-0", "u1"))
        .await
        .expect("del");
    s.wait_for_record("u1", None).await;
    // A later switch to ambient has no pod to capture.
    s.set_mode(DataPlaneMode::Ambient);
    let event = tokio::time::timeout(Duration::from_millis(500), next(&mut s.events)).await;
    assert!(event.is_err(), "nothing sent to the ztunnel: {event:?}");
    assert!(s.redirect.calls().is_empty(), "{:?}", s.redirect.calls());
    s.running.abort();
}

#[tokio::test]
async fn the_record_of_a_pod_gone_without_del_is_dropped() {
    let mut s = switching_from(DataPlaneMode::None).await;
    let gone = PodRecord {
        uid: "gone".into(),
        // Deleted: the control plane no longer knows its workload.
        workload: "shop/gone-0".into(),
        netns: "/nonexistent/netns".into(),
        captured: false,
    };
    s.agent.inner.state.save(&gone).expect("save");
    // The next pass notices; turning ambient captures the live pod only.
    s.set_mode(DataPlaneMode::Ambient);
    assert_eq!(next(&mut s.events).await.1, "u1");
    s.wait_for_record("gone", None).await;
    s.wait_for_record("u1", Some(true)).await;
    s.running.abort();
}

#[tokio::test]
async fn the_replay_sends_captured_pods_only() {
    let f = fixture();
    // Recorded by ADD: web-0 captured, plain-0 (mode none) uncaptured.
    for (pod, uid) in [("web-0", "u1"), ("plain-0", "u2")] {
        f.agent
            .handle(&request(Command::Add, pod, uid))
            .await
            .expect(pod);
    }
    assert_eq!(f.redirect.calls(), ["install"], "plain-0 gets no rules");
    let plain = f.agent.inner.state.load("u2").expect("load");
    assert!(plain.is_some_and(|pod| !pod.captured), "plain-0 recorded");
    // A record from before the `captured` field was of a captured pod.
    let old = r#"{"uid": "u3", "workload": "shop/web-1", "netns": "/proc/self/ns/net"}"#;
    let state_dir = f._dir.path().join("state");
    std::fs::write(state_dir.join("u3.json"), old).expect("write");

    let mut events = ztunnel(&f.ztunnel_socket);
    assert_eq!(
        next(&mut events).await,
        ("add".into(), "u1".into(), own_inode())
    );
    assert_eq!(
        next(&mut events).await,
        ("add".into(), "u3".into(), own_inode())
    );
    assert_eq!(next(&mut events).await.0, "snapshot");
}
