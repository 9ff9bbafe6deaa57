use std::{
    collections::BTreeMap,
    os::fd::{AsFd, BorrowedFd},
    sync::Mutex,
};

use braid_model::DataPlaneMode;
use tokio::sync::mpsc;

use super::*;
use crate::{
    agent_api::AgentRequest,
    handoff::{HandoffListener, PodEvent},
};

/// Records rule operations instead of running iptables.
#[derive(Default)]
struct FakeRedirect {
    /// What `find_netns` answers (a real scan is not wanted in unit tests).
    netns_of_unrecorded: Mutex<Option<PathBuf>>,
    /// How many times `find_netns` was called.
    searches: std::sync::atomic::AtomicUsize,
    calls: Mutex<Vec<&'static str>>,
    /// The rule operations and, from a fake ztunnel that shares it, the
    /// pods it was handed, in the order they happened.
    timeline: Mutex<Vec<&'static str>>,
}

impl Redirect for FakeRedirect {
    fn install(&self, _: BorrowedFd<'_>, kind: RuleKind) -> Result<(), RedirectError> {
        self.record(match kind {
            RuleKind::Ambient => "install",
            RuleKind::Sidecar => "install sidecar",
        })
    }
    fn remove(&self, _: BorrowedFd<'_>) -> Result<(), RedirectError> {
        self.record("remove")
    }
    fn check(&self, _: BorrowedFd<'_>, kind: RuleKind) -> Result<(), RedirectError> {
        self.record(match kind {
            RuleKind::Ambient => "check",
            RuleKind::Sidecar => "check sidecar",
        })
    }
    fn find_netns(&self, _: &[std::net::IpAddr]) -> Option<PathBuf> {
        self.searches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.netns_of_unrecorded.lock().ok()?.clone()
    }
}

impl FakeRedirect {
    fn record(&self, call: &'static str) -> Result<(), RedirectError> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
        self.happened(call);
        Ok(())
    }
    fn happened(&self, what: &'static str) {
        if let Ok(mut timeline) = self.timeline.lock() {
            timeline.push(what);
        }
    }
    fn timeline(&self) -> Vec<&'static str> {
        self.timeline.lock().map(|t| t.clone()).unwrap_or_default()
    }
    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    agent: Agent,
    redirect: Arc<FakeRedirect>,
    ztunnel_socket: PathBuf,
}

fn fixture() -> Fixture {
    fixture_with(false)
}

fn fixture_with(sidecar_rules: bool) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mode = |mode, has_sidecar| WorkloadMode { mode, has_sidecar };
    let modes = FixedModes::new(BTreeMap::from([
        (
            "shop/web-0".to_string(),
            mode(DataPlaneMode::Ambient, false),
        ),
        ("shop/old-0".to_string(), mode(DataPlaneMode::Ambient, true)),
        (
            "shop/side-0".to_string(),
            mode(DataPlaneMode::Sidecar, true),
        ),
        ("shop/plain-0".to_string(), mode(DataPlaneMode::None, false)),
    ]));
    let config = AgentConfig {
        socket: dir.path().join("cni.sock"),
        ztunnel_socket: dir.path().join("ztunnel.sock"),
        state_dir: dir.path().join("state"),
        mode_wait: Duration::from_millis(50),
        sidecar_rules,
        release_grace: Duration::from_millis(100),
    };
    let redirect = Arc::new(FakeRedirect::default());
    let ztunnel_socket = config.ztunnel_socket.clone();
    let agent = Agent::new(config, Arc::new(modes), redirect.clone()).expect("agent");
    let link = agent.clone();
    tokio::spawn(async move { link.inner.ztunnel.run().await });
    Fixture {
        _dir: dir,
        agent,
        redirect,
        ztunnel_socket,
    }
}

/// A ztunnel that acks everything and reports (kind, uid, netns inode).
fn ztunnel(path: &Path) -> mpsc::UnboundedReceiver<(String, String, u64)> {
    ztunnel_on_timeline(path, None)
}

/// [`ztunnel`], also noting each pod it is handed (before it acks) on
/// `timeline`'s timeline.
fn ztunnel_on_timeline(
    path: &Path,
    timeline: Option<Arc<FakeRedirect>>,
) -> mpsc::UnboundedReceiver<(String, String, u64)> {
    let listener = HandoffListener::bind(path).expect("bind");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut conn = listener.accept().await.expect("accept");
        while let Ok(Some(event)) = conn.next().await {
            let seen = match &event {
                PodEvent::Add { uid, netns, .. } => {
                    if let Some(timeline) = &timeline {
                        timeline.happened("ztunnel add");
                    }
                    ("add".into(), uid.clone(), inode(netns.as_fd()))
                }
                PodEvent::Remove { uid } => ("remove".into(), uid.clone(), 0),
                PodEvent::SnapshotSent => ("snapshot".into(), String::new(), 0),
            };
            let _ = tx.send(seen);
            if conn.ack(Ok(())).await.is_err() {
                break;
            }
        }
    });
    rx
}

fn inode(fd: BorrowedFd<'_>) -> u64 {
    rustix::fs::fstat(fd).map(|s| s.st_ino).unwrap_or(0)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, String, u64)>) -> (String, String, u64) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("ztunnel event within 10s")
        .expect("ztunnel task alive")
}

fn request(cmd: Command, pod: &str, uid: &str) -> AgentRequest {
    AgentRequest {
        cmd,
        pod_namespace: "shop".into(),
        pod_name: pod.into(),
        pod_uid: uid.into(),
        container_id: format!("c-{uid}"),
        netns: "/proc/self/ns/net".into(),
    }
}

fn own_inode() -> u64 {
    std::fs::File::open("/proc/self/ns/net")
        .map(|f| inode(f.as_fd()))
        .unwrap_or(0)
}

#[tokio::test]
async fn ambient_pod_is_captured_replayed_and_released() {
    let f = fixture();
    // No ztunnel yet: ADD still succeeds and records the pod.
    f.agent
        .handle(&request(Command::Add, "web-0", "u1"))
        .await
        .expect("add");
    assert_eq!(f.redirect.calls(), ["install"]);
    assert!(f.agent.inner.state.load("u1").expect("load").is_some());
    // A record whose namespace is gone is dropped at replay.
    f.agent
        .inner
        .state
        .save(&PodRecord {
            uid: "gone".into(),
            workload: "shop/gone".into(),
            netns: "/nonexistent/netns".into(),
            captured: true,
        })
        .expect("save");

    let mut events = ztunnel(&f.ztunnel_socket);
    assert_eq!(
        next(&mut events).await,
        ("add".into(), "u1".into(), own_inode())
    );
    assert_eq!(next(&mut events).await.0, "snapshot");
    assert!(f.agent.inner.state.load("gone").expect("load").is_none());

    // Connected: CHECK verifies the rules, DEL releases the pod, twice.
    let check = request(Command::Check, "web-0", "u1");
    f.agent.handle(&check).await.expect("check");
    let del = request(Command::Del, "web-0", "u1");
    f.agent.handle(&del).await.expect("del");
    assert_eq!(next(&mut events).await, ("remove".into(), "u1".into(), 0));
    f.agent.handle(&del).await.expect("second del is a no-op");
    assert_eq!(f.redirect.calls(), ["install", "check", "remove"]);
    assert!(f.agent.inner.state.load("u1").expect("load").is_none());
    let error = f
        .agent
        .handle(&check)
        .await
        .expect_err("not captured any more");
    assert!(matches!(error, AgentError::NotCaptured(_)), "{error}");
}

#[tokio::test]
async fn a_pod_the_ztunnel_refuses_gets_no_rules() {
    let f = fixture();
    let listener = HandoffListener::bind(&f.ztunnel_socket).expect("bind");
    let (connected, is_connected) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut conn = listener.accept().await.expect("accept");
        let mut connected = Some(connected);
        while let Ok(Some(event)) = conn.next().await {
            let answer = match event {
                PodEvent::Add { .. } => Err("cannot enter the pod's namespace".to_string()),
                PodEvent::SnapshotSent => {
                    if let Some(tx) = connected.take() {
                        let _ = tx.send(());
                    }
                    Ok(())
                }
                PodEvent::Remove { .. } => Ok(()),
            };
            if conn.ack(answer).await.is_err() {
                break;
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), is_connected)
        .await
        .expect("agent connects within 10s")
        .expect("fake ztunnel alive");

    let error = f
        .agent
        .handle(&request(Command::Add, "web-0", "u1"))
        .await
        .expect_err("the ztunnel refused the pod");
    let text = error.to_string();
    assert!(
        text.contains("shop/web-0") && text.contains("cannot enter the pod's namespace"),
        "{text}"
    );
    // Rules without a listener would refuse the pod's connections: none
    // were installed (the undo's remove is a no-op) and the pod is not
    // recorded as captured, so no replay hands it over half-done.
    assert_eq!(f.redirect.calls(), ["remove"]);
    let record = f.agent.inner.state.load("u1").expect("load");
    assert!(record.is_some_and(|pod| !pod.captured));
}

#[tokio::test]
async fn other_pods_are_left_alone_and_unknown_ones_fail() {
    let f = fixture();
    for pod in ["old-0", "side-0"] {
        for cmd in [Command::Add, Command::Check, Command::Del] {
            f.agent.handle(&request(cmd, pod, "u")).await.expect(pod);
        }
    }
    assert!(f.redirect.calls().is_empty());
    let error = f
        .agent
        .handle(&request(Command::Add, "ghost", "u"))
        .await
        .expect_err("unknown workload");
    let text = error.to_string();
    assert!(
        text.contains("shop/ghost") && text.contains("retry"),
        "{text}"
    );
    let mut bad = request(Command::Add, "web-0", "u");
    bad.pod_namespace.clear();
    let error = f.agent.handle(&bad).await.expect_err("invalid");
    assert!(error.to_string().contains("pod_namespace"), "{error}");
}

#[tokio::test]
async fn missing_netns_names_the_pod_and_path() {
    let f = fixture();
    let mut add = request(Command::Add, "web-0", "u2");
    add.netns = "/nonexistent/ns".into();
    let error = f.agent.handle(&add).await.expect_err("no netns");
    let text = error.to_string();
    assert!(
        text.contains("shop/web-0") && text.contains("/nonexistent/ns"),
        "{text}"
    );
}

/// Modes a test can change, like labels edited in the cluster.
struct ChangingModes {
    modes: Mutex<BTreeMap<String, WorkloadMode>>,
    /// The pods placed on this node (each with one address).
    on_node: Mutex<Vec<String>>,
    changes: tokio::sync::watch::Sender<()>,
}

impl ModeSource for ChangingModes {
    fn lookup(&self, workload: &str) -> Option<WorkloadMode> {
        self.modes.lock().ok()?.get(workload).copied()
    }
    fn on_this_node(&self) -> Vec<NodeWorkload> {
        let on_node = self.on_node.lock().map(|n| n.clone()).unwrap_or_default();
        on_node
            .into_iter()
            .filter_map(|workload| {
                let mode = self.lookup(&workload)?;
                let addresses = vec![[198, 18, 0, 9].into()];
                Some(NodeWorkload {
                    workload,
                    addresses,
                    mode,
                })
            })
            .collect()
    }
    fn changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.changes.subscribe()
    }
}

/// An agent whose modes the test changes, with pod `shop/web-0` (uid `u1`)
/// added (and captured, if it starts in ambient mode).
struct Switching {
    _dir: tempfile::TempDir,
    modes: Arc<ChangingModes>,
    events: mpsc::UnboundedReceiver<(String, String, u64)>,
    redirect: Arc<FakeRedirect>,
    agent: Agent,
    running: tokio::task::JoinHandle<Result<(), AgentError>>,
}

async fn switching() -> Switching {
    switching_from(DataPlaneMode::Ambient).await
}

async fn switching_from(initial: DataPlaneMode) -> Switching {
    let dir = tempfile::tempdir().expect("tempdir");
    let modes = Arc::new(ChangingModes {
        modes: Mutex::new(BTreeMap::from([(
            "shop/web-0".to_string(),
            web_mode(initial),
        )])),
        on_node: Mutex::new(Vec::new()),
        changes: tokio::sync::watch::Sender::new(()),
    });
    let config = AgentConfig {
        socket: dir.path().join("cni.sock"),
        ztunnel_socket: dir.path().join("ztunnel.sock"),
        state_dir: dir.path().join("state"),
        mode_wait: Duration::from_millis(50),
        sidecar_rules: false,
        release_grace: Duration::from_millis(300),
    };
    let redirect = Arc::new(FakeRedirect::default());
    let mut events = ztunnel_on_timeline(&config.ztunnel_socket, Some(redirect.clone()));
    let agent = Agent::new(config, modes.clone(), redirect.clone()).expect("agent");
    let running = tokio::spawn(agent.clone().run());
    assert_eq!(
        next(&mut events).await.0,
        "snapshot",
        "connected, nothing to replay"
    );
    agent
        .handle(&request(Command::Add, "web-0", "u1"))
        .await
        .expect("add");
    if initial == DataPlaneMode::Ambient {
        assert_eq!(next(&mut events).await.0, "add");
    }
    Switching {
        _dir: dir,
        modes,
        events,
        redirect,
        agent,
        running,
    }
}

fn web_mode(mode: DataPlaneMode) -> WorkloadMode {
    WorkloadMode {
        mode,
        has_sidecar: false,
    }
}

impl Switching {
    fn set_mode(&self, mode: DataPlaneMode) {
        if let Ok(mut m) = self.modes.modes.lock() {
            m.insert("shop/web-0".into(), web_mode(mode));
        }
        self.modes.changes.send_replace(());
    }

    /// Waits (10 s at most) until the rule operations so far are `calls`
    /// (a capture records the pod before it installs the rules).
    async fn wait_for_calls(&self, calls: &[&str]) {
        let wait = async {
            while self.redirect.calls() != calls {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "rule operations {:?}, want {calls:?}",
                    self.redirect.calls()
                )
            });
    }

    /// Waits (10 s at most) until pod `uid` is recorded as `captured`
    /// (`Some(true)`), uncaptured (`Some(false)`) or not at all (`None`).
    async fn wait_for_record(&self, uid: &str, captured: Option<bool>) {
        let state = &self.agent.inner.state;
        let recorded = || state.load(uid).ok().flatten().map(|pod| pod.captured);
        let wait = async {
            while recorded() != captured {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("record of {uid}: {:?}, want {captured:?}", recorded()));
    }
}

mod adopt;
mod in_place;

#[tokio::test]
async fn a_pod_that_leaves_ambient_mode_is_released_after_the_grace() {
    let mut s = switching().await;
    // The namespace's label changes to none: the pod is released, but not
    // before the grace has passed.
    let changed = tokio::time::Instant::now();
    s.set_mode(DataPlaneMode::None);
    assert_eq!(next(&mut s.events).await, ("remove".into(), "u1".into(), 0));
    assert!(
        changed.elapsed() >= Duration::from_millis(300),
        "released after {:?}, within the grace",
        changed.elapsed()
    );
    // The rules go right after the ztunnel let go; the record stays,
    // uncaptured.
    s.wait_for_record("u1", Some(false)).await;
    assert_eq!(s.redirect.calls(), ["install", "remove"]);
    s.running.abort();
}

#[tokio::test]
async fn a_pod_switched_back_within_the_grace_stays_captured() {
    let mut s = switching().await;
    s.set_mode(DataPlaneMode::Sidecar);
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.set_mode(DataPlaneMode::Ambient);
    let event = tokio::time::timeout(Duration::from_millis(800), next(&mut s.events)).await;
    assert!(event.is_err(), "nothing sent to the ztunnel: {event:?}");
    assert!(s.agent.inner.state.load("u1").ok().flatten().is_some());
    assert_eq!(s.redirect.calls(), ["install"]);
    s.running.abort();
}

#[tokio::test]
async fn with_sidecar_rules_a_sidecar_pod_gets_its_rules_and_no_capture() {
    let f = fixture_with(true);
    f.agent
        .handle(&request(Command::Add, "side-0", "s1"))
        .await
        .expect("add");
    f.agent
        .handle(&request(Command::Check, "side-0", "s1"))
        .await
        .expect("check");
    assert_eq!(f.redirect.calls(), ["install sidecar", "check sidecar"]);
    assert!(
        f.agent.inner.state.load("s1").expect("load").is_none(),
        "not handed to the ztunnel"
    );
    // Without the flag, a sidecar pod is left alone (its init container
    // installs the rules).
    let f = fixture();
    f.agent
        .handle(&request(Command::Add, "side-0", "s1"))
        .await
        .expect("add");
    assert!(f.redirect.calls().is_empty());
}
