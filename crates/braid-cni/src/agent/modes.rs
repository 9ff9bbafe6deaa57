//! Where the agent learns a pod's effective data-plane mode: the control
//! plane's Workload resources over xDS ([`XdsModes`]) or, for tests, a fixed
//! map ([`FixedModes`]).

use std::{collections::BTreeMap, net::IpAddr, path::Path, sync::Arc, time::Duration};

use braid_model::{DataPlaneMode, Workload};
use braid_xds::{Client, ClientHandle, ControlPlaneTls, Delta, NodeInfo, Subscription};
use tokio::sync::watch;

/// What the agent needs to know about a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkloadMode {
    /// The effective mode (pod label, else namespace label, else none).
    pub mode: DataPlaneMode,
    /// Whether the pod runs a sidecar: such a pod is never captured.
    pub has_sidecar: bool,
}

/// A pod the control plane places on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeWorkload {
    /// `<namespace>/<pod name>`.
    pub workload: String,
    /// The pod's addresses.
    pub addresses: Vec<IpAddr>,
    /// Its mode.
    pub mode: WorkloadMode,
}

/// A lookup of workload modes by `<namespace>/<pod name>`.
pub trait ModeSource: Send + Sync + 'static {
    /// What is known about `workload` now, if anything.
    fn lookup(&self, workload: &str) -> Option<WorkloadMode>;

    /// Every pod the control plane places on this node, so the agent can
    /// adopt running pods it never saw an ADD for. Empty when the source
    /// cannot tell (a fixed mode map).
    fn on_this_node(&self) -> Vec<NodeWorkload> {
        Vec::new()
    }

    /// A receiver marked changed whenever [`lookup`](Self::lookup) may give
    /// a new answer.
    fn changes(&self) -> watch::Receiver<()>;
}

/// A mode lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum ModeError {
    /// The control plane did not publish the workload in time.
    #[error(
        "workload {workload} is not known to the control plane after {waited:?}; \
         check that braid-control is reachable and sees the pod (the runtime will retry)"
    )]
    Unknown {
        /// `<namespace>/<pod name>`.
        workload: String,
        /// How long the agent waited.
        waited: Duration,
    },
    /// The `--mode-file` could not be used.
    #[error("mode file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The xDS client could not be built.
    #[error("cannot watch workloads at {uri}: {source}")]
    Xds {
        /// Control-plane URI.
        uri: String,
        /// Cause.
        source: braid_xds::Error,
    },
}

/// A fixed map of workload → mode (the hidden `--mode-file` test flag).
#[derive(Debug)]
pub struct FixedModes {
    modes: BTreeMap<String, WorkloadMode>,
    // Never sends: a fixed map never changes. Kept so receivers stay open.
    changes: watch::Sender<()>,
}

/// Workload modes from the control plane (a wildcard Delta xDS watch).
#[derive(Debug)]
pub struct XdsModes {
    handle: ClientHandle,
    /// This node's name, as pods' `spec.nodeName` gives it.
    node: String,
    changes: Arc<watch::Sender<()>>,
}

// === impl WorkloadMode ===

impl WorkloadMode {
    /// Whether the ztunnel captures this pod: ambient and no sidecar.
    pub fn captured(self) -> bool {
        self.mode == DataPlaneMode::Ambient && !self.has_sidecar
    }
}

/// Waits up to `wait` for `source` to know `workload`.
pub async fn resolve(
    source: &dyn ModeSource,
    workload: &str,
    wait: Duration,
) -> Result<WorkloadMode, ModeError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = source.changes();
    loop {
        changes.mark_unchanged();
        if let Some(mode) = source.lookup(workload) {
            return Ok(mode);
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            // Timed out, or the source stopped and will never learn more.
            Ok(Err(_)) | Err(_) => {
                return Err(ModeError::Unknown {
                    workload: workload.to_string(),
                    waited: wait,
                });
            }
        }
    }
}

// === impl FixedModes ===

impl FixedModes {
    /// A source answering from `modes`.
    pub fn new(modes: BTreeMap<String, WorkloadMode>) -> Self {
        Self {
            modes,
            changes: watch::Sender::new(()),
        }
    }

    /// Reads a JSON object `{"<ns>/<pod>": "ambient" | "sidecar" | "none"}`;
    /// `sidecar` means the pod runs one.
    pub fn from_file(path: &Path) -> Result<Self, ModeError> {
        let file_error = |reason: String| ModeError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        let raw: BTreeMap<String, String> = serde_json::from_str(&text)
            .map_err(|e| file_error(format!("expected {{\"ns/pod\": \"ambient\"}}: {e}")))?;
        let mut modes = BTreeMap::new();
        for (workload, mode) in raw {
            let mode: DataPlaneMode = mode
                .parse()
                .map_err(|e| file_error(format!("{workload}: {e}")))?;
            let has_sidecar = mode == DataPlaneMode::Sidecar;
            modes.insert(workload, WorkloadMode { mode, has_sidecar });
        }
        Ok(Self::new(modes))
    }
}

impl ModeSource for FixedModes {
    fn lookup(&self, workload: &str) -> Option<WorkloadMode> {
        self.modes.get(workload).copied()
    }

    fn changes(&self) -> watch::Receiver<()> {
        self.changes.subscribe()
    }
}

// === impl XdsModes ===

impl XdsModes {
    /// Starts watching every Workload at `uri` as node `node` (the xDS
    /// client reconnects on its own, with backoff).
    /// `token` is presented on the stream when given.
    pub fn start(
        uri: &str,
        node: &str,
        tls: Option<ControlPlaneTls>,
        token: Option<String>,
    ) -> Result<Self, ModeError> {
        let changes = Arc::new(watch::Sender::new(()));
        let notify = Arc::clone(&changes);
        let mut info = NodeInfo::new(format!("cni~{node}"));
        info.user_agent_name = "braid-cni".into();
        let mut builder = Client::builder(uri, info)
            .watch::<Workload>(Subscription::Wildcard, move |_: Delta<Workload>| {
                notify.send_replace(())
            });
        if let Some(tls) = tls {
            builder = builder.control_plane_tls(tls);
        }
        if let Some(token) = token {
            builder = builder.bearer_token(token);
        }
        let client = builder.build().map_err(|source| ModeError::Xds {
            uri: uri.to_string(),
            source,
        })?;
        // The task ends on `shutdown` (in Drop); nothing to join.
        let (handle, _task) = client.spawn();
        Ok(Self {
            handle,
            node: node.to_string(),
            changes,
        })
    }
}

impl ModeSource for XdsModes {
    fn lookup(&self, workload: &str) -> Option<WorkloadMode> {
        let cached = self.handle.store::<Workload>()?.get(workload)?;
        Some(WorkloadMode {
            mode: cached.value.mode,
            has_sidecar: cached.value.has_sidecar,
        })
    }

    fn on_this_node(&self) -> Vec<NodeWorkload> {
        let Some(store) = self.handle.store::<Workload>() else {
            return Vec::new();
        };
        store
            .snapshot()
            .into_iter()
            .filter(|(_, cached)| cached.value.node == self.node)
            .map(|(name, cached)| NodeWorkload {
                workload: name,
                addresses: cached.value.addresses.clone(),
                mode: WorkloadMode {
                    mode: cached.value.mode,
                    has_sidecar: cached.value.has_sidecar,
                },
            })
            .collect()
    }

    fn changes(&self) -> watch::Receiver<()> {
        self.changes.subscribe()
    }
}

impl Drop for XdsModes {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use braid_api::convert::workload_to_proto;
    use braid_model::{WorkloadStatus, WorkloadUid};
    use braid_xds::test_util::{FakeAds, resource, response};

    use super::*;

    fn workload(name: &str, mode: DataPlaneMode, has_sidecar: bool) -> Workload {
        Workload {
            uid: WorkloadUid::new("shop", name),
            name: name.into(),
            namespace: "shop".into(),
            service_account: "default".into(),
            node: "node-a".into(),
            addresses: vec![[198, 18, 0, 10].into()],
            labels: Default::default(),
            mode,
            has_sidecar,
            waypoint: None,
            trust_domain: "cluster.local".into(),
            status: WorkloadStatus::Healthy,
        }
    }

    #[tokio::test]
    async fn xds_modes_wait_for_the_workload() {
        let mut ads = FakeAds::start().await.expect("fake ADS");
        let modes = Arc::new(XdsModes::start(&ads.uri(), "node-a", None, None).expect("client"));
        let waiting = {
            let modes = Arc::clone(&modes);
            tokio::spawn(
                async move { resolve(&*modes, "shop/web-0", Duration::from_secs(10)).await },
            )
        };
        let mut stream = ads.next_stream().await;
        stream.expect_request().await;
        let resources = vec![
            resource::<Workload>(
                "shop/web-0",
                "1",
                &workload_to_proto(&workload("web-0", DataPlaneMode::Ambient, false)),
            ),
            resource::<Workload>(
                "shop/old-0",
                "1",
                &workload_to_proto(&workload("old-0", DataPlaneMode::Ambient, true)),
            ),
            resource::<Workload>(
                "shop/far-0",
                "1",
                &workload_to_proto(&Workload {
                    node: "node-b".into(),
                    ..workload("far-0", DataPlaneMode::Ambient, false)
                }),
            ),
        ];
        stream.send(response::<Workload>("n1", resources, &[]));
        let mode = waiting.await.expect("task").expect("known");
        assert!(mode.captured());
        let old = modes.lookup("shop/old-0").expect("known");
        assert!(!old.captured(), "a pod with a sidecar is never captured");
        let here: Vec<String> = modes
            .on_this_node()
            .into_iter()
            .map(|w| w.workload)
            .collect();
        assert_eq!(here, ["shop/old-0", "shop/web-0"]);
        let unknown = resolve(&*modes, "shop/ghost", Duration::from_millis(20)).await;
        assert!(
            matches!(unknown, Err(ModeError::Unknown { .. })),
            "{unknown:?}"
        );
    }

    #[test]
    fn mode_file_rejects_unknown_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("modes.json");
        std::fs::write(&path, r#"{"shop/web-0":"ambient","shop/x":"bogus"}"#).expect("write");
        let error = FixedModes::from_file(&path).expect_err("bogus mode");
        assert!(error.to_string().contains("shop/x"), "{error}");
    }
}
