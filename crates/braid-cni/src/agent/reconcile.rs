//! Following the mode changes of running pods: a `braid.dev/mode` label
//! edited on a pod or its namespace changes the pod's effective mode without
//! any CNI call, so the agent compares every pod it recorded with the
//! current modes whenever they change.
//!
//! - A pod turning ambient (no sidecar) is captured at once, in place: every
//!   proxy treats it as ambient as soon as it learns of the switch and
//!   tunnels to its :15008, so it must not wait for a restart.
//! - A captured pod leaving ambient is released after the release grace
//!   (proxies still tunnelling to it meanwhile keep working); its record
//!   stays, uncaptured, so it is captured again if it turns back.
//! - A recorded pod whose network namespace no longer opens is gone (its DEL
//!   was missed): its record is dropped.

use std::{collections::HashMap, time::Duration};

use tokio::time::Instant;

use super::{Agent, AgentError, PodRecord, open_netns, open_pod_netns};

/// How soon a failed in-place capture is tried again (no mode change needs
/// to happen for the retry).
const CAPTURE_RETRY: Duration = Duration::from_secs(1);

// === impl Agent ===

impl Agent {
    /// Reconciles the recorded pods with their modes now and after every
    /// mode change, until aborted.
    pub(super) async fn reconcile_on_mode_change(self) {
        let mut changes = self.inner.modes.changes();
        // Since when each captured pod (by uid) has been out of ambient mode.
        let mut leaving: HashMap<String, Instant> = HashMap::new();
        loop {
            let next = self.reconcile(&mut leaving).await;
            let wake = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                () = wake => {}
            }
        }
    }

    /// One pass over every record: captures pods that turned ambient,
    /// releases those whose grace is over, drops those that are gone.
    /// Returns when the next pass is due without a mode change (a grace
    /// ending, a capture to retry), if ever.
    pub(super) async fn reconcile(
        &self,
        leaving: &mut HashMap<String, Instant>,
    ) -> Option<Instant> {
        let pods = match self.inner.state.all() {
            Ok(pods) => pods,
            Err(error) => {
                tracing::warn!(%error, "cannot list recorded pods");
                return None;
            }
        };
        let grace = self.inner.config.release_grace;
        let now = Instant::now();
        let mut waiting = HashMap::new();
        let mut next: Option<Instant> = None;
        let mut wake_at = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));
        for pod in &pods {
            // Checked before the mode: a deleted pod's workload is unknown.
            if !pod.captured && self.forget_if_gone(pod).await {
                continue;
            }
            // An unknown workload keeps its state: its DEL will come.
            let Some(mode) = self.inner.modes.lookup(&pod.workload) else {
                continue;
            };
            match (pod.captured, mode.captured()) {
                (false, true) => {
                    if let Err(error) = self.capture_in_place(pod).await {
                        tracing::warn!(workload = %pod.workload, %error, "cannot capture a pod that turned ambient; retrying");
                        wake_at(now + CAPTURE_RETRY);
                    }
                }
                (false, false) | (true, true) => {}
                (true, false) => {
                    let since = leaving.get(&pod.uid).copied().unwrap_or(now);
                    if now < since + grace {
                        tracing::debug!(workload = %pod.workload, "pod leaves ambient mode; released after the grace");
                        wake_at(since + grace);
                        waiting.insert(pod.uid.clone(), since);
                    } else if let Err(error) = self.release_in_place(pod).await {
                        tracing::warn!(workload = %pod.workload, %error, "cannot release a pod that left ambient mode");
                    }
                }
            }
        }
        *leaving = waiting;
        let recorded = pods.iter().map(|pod| pod.workload.clone()).collect();
        self.adopt_unrecorded(&recorded).await;
        next
    }

    /// Captures an uncaptured pod whose mode turned ambient, as its ADD
    /// would have. A failure leaves it uncaptured, with nothing installed,
    /// for the next pass to retry.
    async fn capture_in_place(&self, pod: &PodRecord) -> Result<(), AgentError> {
        let _pods = self.inner.pods.lock().await;
        if !self.unchanged(pod)? {
            return Ok(());
        }
        let netns = match open_pod_netns(&pod.workload, &pod.netns) {
            Ok(netns) => netns,
            Err(error) => {
                tracing::warn!(%error, uid = %pod.uid, "pod gone without a CNI DEL; dropping its record");
                self.inner.state.remove(&pod.uid)?;
                return Ok(());
            }
        };
        self.capture(pod, &netns).await?;
        tracing::info!(workload = %pod.workload, uid = %pod.uid, "pod turned ambient; captured in place");
        Ok(())
    }

    /// Releases a captured pod whose grace is over; its record stays.
    async fn release_in_place(&self, pod: &PodRecord) -> Result<(), AgentError> {
        let _pods = self.inner.pods.lock().await;
        if !self.unchanged(pod)? {
            return Ok(());
        }
        self.release(pod).await?;
        tracing::info!(workload = %pod.workload, uid = %pod.uid, "pod left ambient mode; released");
        Ok(())
    }

    /// Drops the record of an uncaptured pod whose namespace no longer
    /// opens, and says whether it did. (Captured pods are checked at each
    /// ztunnel replay.)
    async fn forget_if_gone(&self, pod: &PodRecord) -> bool {
        if open_netns(&pod.netns).is_ok() {
            return false;
        }
        let _pods = self.inner.pods.lock().await;
        if !self.unchanged(pod).unwrap_or(false) || open_netns(&pod.netns).is_ok() {
            return false;
        }
        tracing::warn!(workload = %pod.workload, uid = %pod.uid, netns = %pod.netns.display(), "pod gone without a CNI DEL; dropping its record");
        if let Err(error) = self.inner.state.remove(&pod.uid) {
            tracing::warn!(%error, "cannot drop a pod record");
        }
        true
    }

    /// Whether `pod` is still recorded as the pass saw it: an ADD or DEL
    /// may have changed it since (the caller holds the pods lock).
    fn unchanged(&self, pod: &PodRecord) -> Result<bool, AgentError> {
        Ok(self.inner.state.load(&pod.uid)?.as_ref() == Some(pod))
    }
}
