//! Running pods the agent has no record of (no CNI ADD): adopted when the
//! control plane places them on this node in ambient mode, then taken over
//! by a later ADD or released by a DEL that names the pod.

use super::*;

const EARLY: &str = "shop/early-0";

impl Switching {
    /// Places ambient pod `shop/early-0` on this node without any ADD,
    /// running (its namespace is found) or not yet.
    fn place_early_pod(&self, running: bool) {
        if let Ok(mut netns) = self.redirect.netns_of_unrecorded.lock() {
            *netns = running.then(|| "/proc/self/ns/net".into());
        }
        if let Ok(mut modes) = self.modes.modes.lock() {
            modes.insert(EARLY.into(), web_mode(DataPlaneMode::Ambient));
        }
        if let Ok(mut on_node) = self.modes.on_node.lock() {
            on_node.push(EARLY.into());
        }
        self.modes.changes.send_replace(());
    }
}

fn early(cmd: Command, uid: &str) -> AgentRequest {
    request(cmd, "early-0", uid)
}

#[tokio::test]
async fn a_running_pod_without_a_record_is_adopted_and_its_add_takes_over() {
    let mut s = switching_from(DataPlaneMode::None).await;
    s.place_early_pod(true);
    let adopted = "adopted_shop_early-0";
    assert_eq!(
        next(&mut s.events).await,
        ("add".into(), adopted.into(), own_inode())
    );
    s.wait_for_record(adopted, Some(true)).await;
    s.wait_for_calls(&["install"]).await;
    assert_eq!(s.redirect.timeline(), ["ztunnel add", "install"]);
    s.agent
        .handle(&early(Command::Check, "u9"))
        .await
        .expect("CHECK of the adopted pod, by the runtime's uid");

    // The runtime's ADD (same namespace) takes it over under its uid; the
    // ztunnel keeps the listeners (it renames the capture).
    s.agent
        .handle(&early(Command::Add, "u9"))
        .await
        .expect("ADD");
    assert_eq!(
        next(&mut s.events).await,
        ("add".into(), "u9".into(), own_inode())
    );
    s.wait_for_record("u9", Some(true)).await;
    s.wait_for_record(adopted, None).await;
    // Recorded now: later passes adopt nothing again.
    s.modes.changes.send_replace(());
    let event = tokio::time::timeout(Duration::from_millis(300), next(&mut s.events)).await;
    assert!(event.is_err(), "nothing more sent: {event:?}");
    s.running.abort();
}

#[tokio::test]
async fn a_del_naming_an_adopted_pod_releases_it() {
    let mut s = switching_from(DataPlaneMode::None).await;
    s.place_early_pod(true);
    let adopted = "adopted_shop_early-0";
    assert_eq!(next(&mut s.events).await.1, adopted);
    s.wait_for_calls(&["install"]).await;

    // A uid the agent never saw, for the pod it adopted, in its namespace.
    s.agent
        .handle(&early(Command::Del, "u-unseen"))
        .await
        .expect("DEL");
    assert_eq!(
        next(&mut s.events).await,
        ("remove".into(), adopted.into(), 0)
    );
    s.wait_for_record(adopted, None).await;
    assert_eq!(s.redirect.calls(), ["install", "remove"]);

    // Going away: later passes do not adopt it again, though the control
    // plane still lists it and its namespace is still found.
    s.modes.changes.send_replace(());
    let event = tokio::time::timeout(Duration::from_millis(300), next(&mut s.events)).await;
    assert!(event.is_err(), "not adopted again: {event:?}");
    // A new pod of that name comes with an ADD.
    s.agent
        .handle(&early(Command::Add, "u10"))
        .await
        .expect("ADD of a new pod of that name");
    assert_eq!(next(&mut s.events).await.1, "u10");
    s.running.abort();
}

#[tokio::test]
async fn pods_not_running_here_or_not_ambient_are_not_adopted() {
    let mut s = switching_from(DataPlaneMode::None).await;
    // Its namespace is not found on this node (not started yet).
    s.place_early_pod(false);
    // web-0 is recorded (ADD in mode none) and turns ambient: captured in
    // place under its own uid, not adopted.
    s.set_mode(DataPlaneMode::Ambient);
    assert_eq!(next(&mut s.events).await.1, "u1");
    let event = tokio::time::timeout(Duration::from_millis(300), next(&mut s.events)).await;
    assert!(event.is_err(), "nothing adopted: {event:?}");
    // The search (every process's namespace) is not repeated on each
    // pass: the next one waits a second, then longer.
    for _ in 0..3 {
        s.modes.changes.send_replace(());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let searches = || {
        s.redirect
            .searches
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    assert_eq!(searches(), 1, "one search within the first second");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    s.modes.changes.send_replace(());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(searches(), 2, "searched again once the pause is over");
    s.running.abort();
}
