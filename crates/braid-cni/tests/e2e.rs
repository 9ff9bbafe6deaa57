//! The whole hand-off on a real network namespace: the plugin binary, the
//! agent binary (fixed modes) and a ztunnel-side listener in this process.
//! Needs root (namespaces, iptables); skipped otherwise unless `CI=true`.

mod support;

use std::{os::fd::AsFd, path::Path, time::Duration};

use braid_capture::testing::{TestNet, TestPod, require_root};
use braid_cni::handoff::{HandoffListener, PodEvent};
use serde_json::json;
use support::{AgentProcess, Cni, Outcome, config, k8s_args, prev_result};
use tokio::{sync::mpsc, task::JoinHandle};

type Events = mpsc::UnboundedReceiver<(String, String, u64)>;

/// A ztunnel that acks everything and reports (kind, uid, netns inode).
fn ztunnel(path: &Path) -> (JoinHandle<()>, Events) {
    let listener = HandoffListener::bind(path).expect("bind the ztunnel socket");
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok(mut conn) = listener.accept().await {
            while let Ok(Some(event)) = conn.next().await {
                let seen = match &event {
                    PodEvent::Add { uid, netns, .. } => ("add".into(), uid.clone(), inode(netns)),
                    PodEvent::Remove { uid } => ("remove".into(), uid.clone(), 0),
                    PodEvent::SnapshotSent => ("snapshot".into(), String::new(), 0),
                };
                let _ = tx.send(seen);
                if conn.ack(Ok(())).await.is_err() {
                    break;
                }
            }
        }
    });
    (task, rx)
}

fn inode(fd: impl AsFd) -> u64 {
    rustix::fs::fstat(fd).map(|s| s.st_ino).unwrap_or(0)
}

async fn next(events: &mut Events) -> (String, String, u64) {
    tokio::time::timeout(Duration::from_secs(15), events.recv())
        .await
        .expect("a ztunnel event within 15s")
        .expect("ztunnel task alive")
}

async fn cni(command: &'static str, agent: &Path, pod: &TestPod, name: &str) -> Outcome {
    let mut cni = Cni::new(command, config(agent));
    cni.netns = pod.netns_path.display().to_string();
    cni.args = k8s_args("shop", name, &format!("uid-{name}"));
    tokio::task::spawn_blocking(move || cni.run())
        .await
        .expect("plugin thread")
}

fn braid_rules(pod: &TestPod) -> bool {
    let out = pod
        .exec("iptables-save", ["-t", "nat"])
        .expect("iptables-save");
    String::from_utf8_lossy(&out.stdout).contains("BRAID_")
}

#[tokio::test(flavor = "multi_thread")]
async fn ambient_pod_is_handed_to_the_ztunnel_and_replayed() {
    if !require_root() {
        return;
    }
    let net = TestNet::new("cni").expect("test network");
    let web = net
        .add_pod("web", "198.18.0.10".parse().expect("ip"))
        .expect("pod");
    let other = net
        .add_pod("other", "198.18.0.11".parse().expect("ip"))
        .expect("pod");
    let dir = tempfile::tempdir().expect("tempdir");
    let ztunnel_socket = dir.path().join("ztunnel.sock");
    let (task, mut events) = ztunnel(&ztunnel_socket);
    let agent = AgentProcess::start(
        dir.path(),
        &json!({"shop/web": "ambient", "shop/other": "none"}),
    );
    // The agent connects and sends an empty snapshot.
    assert_eq!(next(&mut events).await.0, "snapshot");

    // A pod that is not ambient: prevResult passes through, nothing else.
    let out = cni("ADD", &agent.socket, &other, "other").await;
    assert_eq!(
        (out.code, out.stdout),
        (0, Some(prev_result())),
        "{}",
        out.stderr
    );
    assert!(!braid_rules(&other));

    // ADD: rules in the pod, its namespace handed over.
    let out = cni("ADD", &agent.socket, &web, "web").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, Some(prev_result()));
    let netns_inode = rustix::fs::stat(&web.netns_path)
        .expect("stat netns")
        .st_ino;
    assert_eq!(
        next(&mut events).await,
        ("add".into(), "uid-web".into(), netns_inode)
    );
    assert!(braid_rules(&web), "BRAID_ rules installed");

    let out = cni("CHECK", &agent.socket, &web, "web").await;
    assert_eq!((out.code, out.raw_stdout.as_str()), (0, ""), "{out:?}");

    // DEL: removed from the ztunnel and the rules are gone; again is fine.
    for _ in 0..2 {
        let out = cni("DEL", &agent.socket, &web, "web").await;
        assert_eq!(out.code, 0, "{out:?}");
    }
    assert_eq!(
        next(&mut events).await,
        ("remove".into(), "uid-web".into(), 0)
    );
    assert!(!braid_rules(&web), "BRAID_ rules removed");
    let out = cni("CHECK", &agent.socket, &web, "web").await;
    assert_eq!(out.stdout.expect("error JSON")["code"], 100);

    // Capture again, then restart the ztunnel: the agent replays the pod.
    let out = cni("ADD", &agent.socket, &web, "web").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(next(&mut events).await.0, "add");
    task.abort();
    let _ = task.await;
    let (_task, mut events) = ztunnel(&ztunnel_socket);
    assert_eq!(
        next(&mut events).await,
        ("add".into(), "uid-web".into(), netns_inode)
    );
    assert_eq!(next(&mut events).await.0, "snapshot");
    drop(agent);
}
