//! The agent's link to the ztunnel: (re)connects with backoff, replays every
//! captured pod on each new connection, and forwards pod changes while
//! connected.

use std::{
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    path::PathBuf,
    time::Duration,
};

use tokio::sync::Mutex;

use super::state::{PodRecord, StateDir};
use crate::handoff::{HandoffClient, HandoffError};

/// First retry delay after a failed connection; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle connection is checked for a hung-up ztunnel.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(200);

/// Whether a pod change reached the ztunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The ztunnel acknowledged it.
    Sent,
    /// No ztunnel is connected; the next replay carries the current state.
    Deferred,
}

/// The shared connection slot. The lock is held for a whole request or
/// replay, so pod changes and replays never interleave on the socket.
#[derive(Debug)]
pub(crate) struct ZtunnelLink {
    path: PathBuf,
    state: StateDir,
    client: Mutex<Option<HandoffClient>>,
}

// === impl ZtunnelLink ===

impl ZtunnelLink {
    pub(crate) fn new(path: PathBuf, state: StateDir) -> Self {
        Self {
            path,
            state,
            client: Mutex::new(None),
        }
    }

    /// Hands the pod to the ztunnel if one is connected. A refusal is
    /// returned as an error; a broken connection is dropped (the reconnect
    /// replays the pod) and reported as [`Delivery::Deferred`].
    pub(crate) async fn add_pod(
        &self,
        pod: &PodRecord,
        netns: BorrowedFd<'_>,
    ) -> Result<Delivery, HandoffError> {
        let mut slot = self.client.lock().await;
        let Some(client) = slot.as_mut() else {
            return Ok(Delivery::Deferred);
        };
        let sent = client.add_pod(&pod.uid, &pod.workload, netns).await;
        Self::settle(&mut slot, sent)
    }

    /// Tells the ztunnel to forget the pod, if one is connected.
    pub(crate) async fn remove_pod(&self, uid: &str) -> Result<Delivery, HandoffError> {
        let mut slot = self.client.lock().await;
        let Some(client) = slot.as_mut() else {
            return Ok(Delivery::Deferred);
        };
        let sent = client.remove_pod(uid).await;
        Self::settle(&mut slot, sent)
    }

    /// Keeps a connection up forever: connect, replay, watch for hang-up.
    pub(crate) async fn run(&self) {
        let mut backoff = MIN_BACKOFF;
        let mut logged_down = false;
        loop {
            if self.connected_and_alive().await {
                tokio::time::sleep(LIVENESS_INTERVAL).await;
                continue;
            }
            match self.connect_and_replay().await {
                Ok(pods) => {
                    tracing::info!(socket = %self.path.display(), pods, "ztunnel connected; pods replayed");
                    backoff = MIN_BACKOFF;
                    logged_down = false;
                }
                Err(error) => {
                    // Log the first failure of a streak only: a node without a
                    // ztunnel would otherwise log every few seconds forever.
                    if !logged_down {
                        tracing::warn!(%error, "ztunnel not reachable; retrying with backoff");
                        logged_down = true;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Whether a connection exists and the ztunnel has not hung up; drops a
    /// dead one.
    async fn connected_and_alive(&self) -> bool {
        let mut slot = self.client.lock().await;
        match slot.as_ref() {
            Some(client) if client.is_closed() => {
                tracing::warn!(socket = %self.path.display(), "ztunnel disconnected; reconnecting");
                *slot = None;
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Connects, then sends every captured pod and `snapshot_sent` before any
    /// new change can use the connection. Returns how many pods were sent.
    async fn connect_and_replay(&self) -> Result<usize, HandoffError> {
        // Connect outside the lock: a slow hello must not hold up ADDs.
        let mut client = HandoffClient::connect(&self.path).await?;
        let mut slot = self.client.lock().await;
        // Read the state under the lock: an ADD that saved its record before
        // this point is replayed here; a later one is sent by the ADD itself.
        let pods = self.state.all().unwrap_or_else(|error| {
            tracing::error!(%error, "cannot list recorded pods; replaying none");
            Vec::new()
        });
        let mut sent = 0;
        // Uncaptured pods are the agent's own business: the ztunnel gets
        // only the ones it should serve.
        for pod in pods.into_iter().filter(|pod| pod.captured) {
            let Some(netns) = self.open_or_forget(&pod) else {
                continue;
            };
            match client.add_pod(&pod.uid, &pod.workload, netns.as_fd()).await {
                Ok(()) => sent += 1,
                Err(error) if !error.is_fatal() => {
                    tracing::warn!(%error, pod = %pod.workload, "ztunnel refused a replayed pod");
                }
                Err(error) => return Err(error),
            }
        }
        client.snapshot_sent().await?;
        *slot = Some(client);
        Ok(sent)
    }

    /// Opens a recorded pod's namespace; a namespace that is gone means the
    /// pod is gone (its DEL was missed), so its record is dropped.
    fn open_or_forget(&self, pod: &PodRecord) -> Option<OwnedFd> {
        match super::open_netns(&pod.netns) {
            Ok(fd) => Some(fd),
            Err(error) => {
                tracing::info!(pod = %pod.workload, %error, "dropping the record of a vanished pod");
                if let Err(error) = self.state.remove(&pod.uid) {
                    tracing::warn!(%error, "cannot drop pod record");
                }
                None
            }
        }
    }

    fn settle(
        slot: &mut Option<HandoffClient>,
        sent: Result<(), HandoffError>,
    ) -> Result<Delivery, HandoffError> {
        match sent {
            Ok(()) => Ok(Delivery::Sent),
            Err(error) if error.is_fatal() => {
                tracing::warn!(%error, "lost the ztunnel connection; the pod is sent on reconnect");
                *slot = None;
                Ok(Delivery::Deferred)
            }
            Err(error) => Err(error),
        }
    }
}
