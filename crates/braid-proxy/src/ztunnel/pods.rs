//! The pods this ztunnel captures, as the node agent hands them over: each
//! gets listeners on 15001, 15006 and 15008 inside its own network
//! namespace, and loses them when removed.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use braid_capture::NetNs;
use braid_cni::handoff::{HandoffConnection, HandoffListener, PodEvent};
use braid_identity::{CertificateManager, TrustBundle};
use tokio::task::JoinSet;

use crate::{hbone::Pool, listeners, state::ProxyState, telemetry::Metrics, upstream::PodContext};

/// Captured pods by uid.
pub(crate) struct Pods {
    state: ProxyState,
    certs: CertificateManager,
    pool: Pool,
    bundle: TrustBundle,
    metrics: Metrics,
    pods: Mutex<HashMap<String, Captured>>,
    /// Origins for pool keys; 0 is the ztunnel's own namespace.
    next_origin: AtomicU64,
}

/// A captured pod's running listeners (dropping this stops them).
struct Captured {
    workload: String,
    /// The namespace the listeners live in.
    netns: braid_capture::NetNsId,
    /// Which hand-off connection last sent it, to forget pods an agent's
    /// replay leaves out.
    generation: u64,
    _tasks: JoinSet<()>,
}

// === impl Pods ===

impl Pods {
    pub(crate) fn new(
        state: ProxyState,
        certs: CertificateManager,
        pool: Pool,
        bundle: TrustBundle,
        metrics: Metrics,
    ) -> Self {
        Self {
            state,
            certs,
            pool,
            bundle,
            metrics,
            pods: Mutex::new(HashMap::new()),
            next_origin: AtomicU64::new(1),
        }
    }

    /// How many pods are captured.
    pub(crate) fn len(&self) -> usize {
        self.pods().len()
    }

    /// Captured pods as (uid, workload), sorted.
    pub(crate) fn list(&self) -> Vec<(String, String)> {
        let mut pods: Vec<(String, String)> = self
            .pods()
            .iter()
            .map(|(uid, pod)| (uid.clone(), pod.workload.clone()))
            .collect();
        pods.sort();
        pods
    }

    fn pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, Captured>> {
        self.pods.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes agents' connections one after another, for as long as it runs.
    pub(crate) async fn serve(self: Arc<Self>, listener: HandoffListener) {
        let mut generation = 0;
        // Backoff on accept errors (one line per burst); one agent at a time.
        let mut gate = braid_listen::Gate::new("hand-off");
        loop {
            let (conn, _) = gate.accept(|| listener.accept()).await;
            generation += 1;
            tracing::info!(generation, "node agent connected");
            self.serve_agent(conn, generation).await;
            tracing::info!("node agent disconnected; pods stay captured");
        }
    }

    async fn serve_agent(&self, mut conn: HandoffConnection, generation: u64) {
        loop {
            let event = match conn.next().await {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(error) if error.is_fatal() => {
                    tracing::warn!(%error, "hand-off connection failed");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "bad hand-off message");
                    continue;
                }
            };
            let result = match event {
                PodEvent::Add {
                    uid,
                    workload,
                    netns,
                } => self.add(uid, workload, NetNs::from_fd(netns), generation),
                PodEvent::Remove { uid } => {
                    self.remove(&uid);
                    Ok(())
                }
                PodEvent::SnapshotSent => {
                    self.forget_older_than(generation);
                    Ok(())
                }
            };
            if let Err(error) = conn.ack(result).await {
                tracing::warn!(%error, "cannot answer the node agent");
                return;
            }
        }
    }

    /// Starts capturing a pod (again, if it was: its listeners are
    /// replaced, which also covers a pod whose namespace changed).
    fn add(
        &self,
        uid: String,
        workload: String,
        netns: NetNs,
        generation: u64,
    ) -> Result<(), String> {
        {
            let mut pods = self.pods();
            // The agent replays its pods whenever it reconnects: the same pod
            // in the same namespace keeps its listeners and connections.
            if let Some(pod) = pods.get_mut(&uid)
                && pod.netns == netns.id()
            {
                pod.generation = generation;
                return Ok(());
            }
            // The same pod under a new uid: the agent adopted a running pod
            // (its own uid) and the runtime's ADD now names it. Its
            // listeners and connections carry on under the new uid.
            let renamed = pods
                .iter()
                .find(|(_, pod)| pod.netns == netns.id() && pod.workload == workload)
                .map(|(old, _)| old.clone());
            if let Some(old) = renamed
                && let Some(mut pod) = pods.remove(&old)
            {
                tracing::info!(%old, new = %uid, %workload, "captured pod renamed");
                pod.generation = generation;
                pods.insert(uid, pod);
                return Ok(());
            }
            // Binding before the old listeners in the same namespace are gone
            // would fail with EADDRINUSE: drop them first.
            drop(pods.remove(&uid));
        }
        let netns_id = netns.id();
        let listeners = listeners::bind(&netns, &workload)?;
        let pod = Arc::new(PodContext {
            workload: workload.clone(),
            netns,
            state: self.state.clone(),
            certs: self.certs.clone(),
            pool: self.pool.clone(),
            metrics: self.metrics.clone(),
            origin: self.next_origin.fetch_add(1, Ordering::Relaxed),
            this_waypoint: None,
            mark: Some(braid_capture::PROXY_MARK),
        });
        let tasks = listeners::serve(pod, listeners, self.bundle.clone(), None);
        tracing::info!(%uid, %workload, "pod captured");
        self.pods().insert(
            uid,
            Captured {
                workload,
                netns: netns_id,
                generation,
                _tasks: tasks,
            },
        );
        Ok(())
    }

    fn remove(&self, uid: &str) {
        if let Some(pod) = self.pods().remove(uid) {
            tracing::info!(%uid, workload = %pod.workload, "pod released");
        }
    }

    fn forget_older_than(&self, generation: u64) {
        self.pods().retain(|uid, pod| {
            let keep = pod.generation >= generation;
            if !keep {
                tracing::info!(%uid, workload = %pod.workload, "pod not replayed by the agent; released");
            }
            keep
        });
    }
}
