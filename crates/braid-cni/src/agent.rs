//! The node agent: serves the CNI plugin's requests, decides per pod whether
//! the ztunnel captures it, installs the in-pod redirect rules, records the
//! pod and hands its network namespace to the ztunnel. It follows mode
//! changes of running pods too (see [`reconcile`]): a pod turning ambient is
//! captured in place, one leaving ambient is released.

mod adopt;
mod modes;
mod reconcile;
mod redirect;
mod server;
mod state;
mod ztunnel;

#[cfg(test)]
mod tests;

use std::{
    os::fd::{AsFd, OwnedFd},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

pub use modes::{FixedModes, ModeError, ModeSource, NodeWorkload, WorkloadMode, XdsModes, resolve};
pub use redirect::{CaptureRedirect, Redirect, RedirectError, RuleKind};
pub use state::{PodRecord, StateDir, StateError};

use self::ztunnel::{Delivery, ZtunnelLink};
use crate::{
    agent_api::{AgentRequest, Command},
    handoff::HandoffError,
};

/// Where the agent listens and keeps its state.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The plugin socket (`--socket`).
    pub socket: PathBuf,
    /// The ztunnel's hand-off socket (`--ztunnel-socket`).
    pub ztunnel_socket: PathBuf,
    /// One JSON file per pod added and not yet deleted (`--state-dir`).
    pub state_dir: PathBuf,
    /// How long an ADD waits for the control plane to know the pod.
    pub mode_wait: Duration,
    /// Install the sidecar redirect rules in pods that run a braid-proxy
    /// sidecar, so they need no init container (`--sidecar-rules`).
    pub sidecar_rules: bool,
    /// How long a pod whose mode left ambient stays captured before it is
    /// released (`--release-grace-ms`): every proxy learns of the switch
    /// from its own xDS stream, and until the last one has, some still
    /// tunnel to the pod's :15008; releasing at once would refuse them.
    /// Meanwhile plaintext from proxies that already switched is taken on
    /// 15006, so no connection fails either way.
    pub release_grace: Duration,
}

/// The agent; cheap to share (`Arc` inside).
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

struct Inner {
    config: AgentConfig,
    modes: Arc<dyn ModeSource>,
    redirect: Arc<dyn Redirect>,
    state: StateDir,
    ztunnel: ZtunnelLink,
    /// Held while a pod's rules, record and ztunnel hand-off change (ADD,
    /// DEL, and each capture or release of the reconcile loop), so a DEL
    /// never interleaves with an in-place capture of the same pod.
    pods: tokio::sync::Mutex<()>,
    /// What adoption remembers between passes (pods deleted, pods whose
    /// namespace was not found).
    adoption: std::sync::Mutex<adopt::Adoption>,
}

/// Why a plugin request failed; the text is returned to the runtime.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The request lacks a field.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The pod's mode is not known.
    #[error(transparent)]
    Mode(#[from] ModeError),
    /// The pod's state file failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The pod's network namespace cannot be opened.
    #[error("cannot open network namespace {} of pod {workload}: {source}", path.display())]
    Netns {
        /// `<namespace>/<pod>`.
        workload: String,
        /// Namespace path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Installing, removing or checking rules failed.
    #[error("pod {workload}: {source}")]
    Redirect {
        /// `<namespace>/<pod>`.
        workload: String,
        /// Cause.
        source: RedirectError,
    },
    /// The ztunnel refused the pod.
    #[error("pod {workload}: {source}")]
    Ztunnel {
        /// `<namespace>/<pod>`.
        workload: String,
        /// Cause.
        source: HandoffError,
    },
    /// CHECK for an ambient pod the agent has not captured.
    #[error(
        "ambient pod {0} is not captured by this node's agent; if its mode just turned ambient, \
         check again in a moment, else delete and re-add it"
    )]
    NotCaptured(String),
    /// The plugin socket cannot be served.
    #[error("cannot serve the plugin socket {}: {source}", path.display())]
    Serve {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

// === impl Agent ===

impl Agent {
    /// An agent deciding modes with `modes` and writing rules with
    /// `redirect`. Opens the state directory; serves nothing yet.
    pub fn new(
        config: AgentConfig,
        modes: Arc<dyn ModeSource>,
        redirect: Arc<dyn Redirect>,
    ) -> Result<Self, AgentError> {
        let state = StateDir::open(&config.state_dir)?;
        let ztunnel = ZtunnelLink::new(config.ztunnel_socket.clone(), state.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                modes,
                redirect,
                state,
                ztunnel,
                pods: tokio::sync::Mutex::new(()),
                adoption: std::sync::Mutex::new(adopt::Adoption::default()),
            }),
        })
    }

    /// Serves the plugin socket and keeps the ztunnel link up, until an
    /// error stops the server.
    pub async fn run(self) -> Result<(), AgentError> {
        let listener = server::bind(&self.inner.config.socket)?;
        let link = self.clone();
        let ztunnel = tokio::spawn(async move { link.inner.ztunnel.run().await });
        let reconciling = tokio::spawn(self.clone().reconcile_on_mode_change());
        let served = server::serve(listener, self).await;
        ztunnel.abort();
        reconciling.abort();
        served
    }

    /// Handles one plugin request.
    pub async fn handle(&self, request: &AgentRequest) -> Result<(), AgentError> {
        for (field, value) in [
            ("pod_namespace", &request.pod_namespace),
            ("pod_name", &request.pod_name),
            ("container_id", &request.container_id),
        ] {
            if value.is_empty() {
                return Err(AgentError::Invalid(format!("field {field} is empty")));
            }
        }
        match request.cmd {
            Command::Add => self.add(request).await,
            Command::Del => self.del(request).await,
            Command::Check => self.check(request).await,
        }
    }

    async fn add(&self, request: &AgentRequest) -> Result<(), AgentError> {
        let workload = request.workload();
        self.adoption().added(&workload);
        let path = PathBuf::from(&request.netns);
        let treatment = self.treatment(&workload).await?;
        let _pods = self.inner.pods.lock().await;
        match treatment {
            Treatment::Sidecar => {
                tracing::debug!(%workload, "sidecar pod; nothing to do");
                Ok(())
            }
            Treatment::SidecarRules => {
                let netns = open_pod_netns(&workload, &path)?;
                self.redirect(&workload, &netns, |r, fd| r.install(fd, RuleKind::Sidecar))
                    .await?;
                tracing::info!(%workload, "sidecar redirect rules installed");
                Ok(())
            }
            Treatment::Uncaptured => {
                // A retried ADD may find the pod captured under an earlier
                // mode: let go of it first, so no rules stay behind.
                if let Some(old) = self.inner.state.load(request.uid())?
                    && old.captured
                {
                    self.release(&old).await?;
                }
                self.inner.state.save(&PodRecord {
                    uid: request.uid().to_string(),
                    workload: workload.clone(),
                    netns: path,
                    captured: false,
                })?;
                tracing::debug!(%workload, "not ambient; recorded, captured if it turns ambient");
                Ok(())
            }
            Treatment::Capture => {
                let netns = open_pod_netns(&workload, &path)?;
                let pod = PodRecord {
                    uid: request.uid().to_string(),
                    workload,
                    netns: path,
                    captured: true,
                };
                self.capture(&pod, &netns).await?;
                self.take_over_adopted(&pod, &netns).await
            }
        }
    }

    /// Captures `pod` through its open namespace `netns`: records it as
    /// captured (so a reconnecting ztunnel gets it in the replay), hands
    /// the namespace to the ztunnel and, once the ztunnel has its
    /// listeners up in it, installs the ambient rules. ADD and the in-place
    /// capture of a pod turning ambient both use it.
    ///
    /// The order matters for a running pod: rules installed before the
    /// ztunnel listens would send its new connections to a closed port
    /// (refused). A failure undoes what was done, so a pod is never left
    /// with rules and no listener.
    async fn capture(&self, pod: &PodRecord, netns: &OwnedFd) -> Result<(), AgentError> {
        let pod = PodRecord {
            captured: true,
            ..pod.clone()
        };
        self.inner.state.save(&pod)?;
        let captured = self.listeners_then_rules(&pod, netns).await;
        if captured.is_err()
            && let Err(undo) = self.release(&pod).await
        {
            tracing::warn!(workload = %pod.workload, error = %undo, "cannot undo a failed capture");
        }
        captured
    }

    async fn listeners_then_rules(
        &self,
        pod: &PodRecord,
        netns: &OwnedFd,
    ) -> Result<(), AgentError> {
        let workload = &pod.workload;
        let delivery = self.inner.ztunnel.add_pod(pod, netns.as_fd()).await;
        let delivery = delivery.map_err(|source| AgentError::Ztunnel {
            workload: workload.clone(),
            source,
        })?;
        self.redirect(workload, netns, |r, fd| r.install(fd, RuleKind::Ambient))
            .await?;
        match delivery {
            Delivery::Sent => tracing::info!(%workload, uid = %pod.uid, "pod captured"),
            // Its traffic is refused until the ztunnel is back (fail
            // closed: the pod's mode asks for mutual TLS).
            Delivery::Deferred => {
                tracing::info!(%workload, "pod captured; ztunnel not connected, sent when it is");
            }
        }
        Ok(())
    }

    /// Stops capturing `pod`: its rules go first (if its namespace still
    /// exists), so new connections flow uncaptured and none is redirected
    /// to a listener that is gone; then the ztunnel forgets it. Its record
    /// stays, marked uncaptured, so the pod is captured again if its mode
    /// turns back to ambient; only DEL deletes it.
    async fn release(&self, pod: &PodRecord) -> Result<(), AgentError> {
        // A namespace that no longer opens took its rules with it.
        if let Ok(netns) = open_netns(&pod.netns) {
            self.redirect(&pod.workload, &netns, |r, fd| r.remove(fd))
                .await?;
        }
        // The ztunnel forgets pods missing from a replay anyway, so a
        // refusal must not block the release.
        if let Err(error) = self.inner.ztunnel.remove_pod(&pod.uid).await {
            tracing::warn!(workload = %pod.workload, %error, "ztunnel refused remove_pod");
        }
        self.inner.state.save(&PodRecord {
            captured: false,
            ..pod.clone()
        })?;
        Ok(())
    }

    fn adoption(&self) -> std::sync::MutexGuard<'_, adopt::Adoption> {
        self.inner
            .adoption
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// After `pod`'s ADD, forgets an adopted record of the same pod: in the
    /// same namespace the ztunnel has moved its capture to the ADD's uid;
    /// in another one it is an earlier pod of that name, released now.
    async fn take_over_adopted(&self, pod: &PodRecord, netns: &OwnedFd) -> Result<(), AgentError> {
        let Some(adopted) = self.adopted(&pod.workload)? else {
            return Ok(());
        };
        if !same_netns(netns, &adopted.netns) && adopted.captured {
            self.release(&adopted).await?;
        }
        self.inner.state.remove(&adopted.uid)?;
        Ok(())
    }

    async fn del(&self, request: &AgentRequest) -> Result<(), AgentError> {
        let uid = request.uid();
        let _pods = self.inner.pods.lock().await;
        self.adoption().deleted(request.workload());
        let recorded = match self.inner.state.load(uid)? {
            Some(pod) => Some(pod),
            // A pod the agent adopted: known by its name (and namespace).
            None => self.adopted(&request.workload())?.filter(|pod| {
                request.netns.is_empty()
                    || open_netns(Path::new(&request.netns))
                        .is_ok_and(|given| same_netns(&given, &pod.netns))
            }),
        };
        let Some(pod) = recorded else {
            return Ok(());
        };
        let uid = pod.uid.clone();
        let pod = match request.netns.as_str() {
            "" => pod,
            given => PodRecord {
                netns: PathBuf::from(given),
                ..pod
            },
        };
        if pod.captured {
            self.release(&pod).await?;
            tracing::info!(workload = %pod.workload, %uid, "pod released");
        }
        self.inner.state.remove(&uid)?;
        Ok(())
    }

    async fn check(&self, request: &AgentRequest) -> Result<(), AgentError> {
        let workload = request.workload();
        let kind = match self.treatment(&workload).await? {
            Treatment::Uncaptured | Treatment::Sidecar => return Ok(()),
            Treatment::SidecarRules => RuleKind::Sidecar,
            Treatment::Capture => {
                let captured = match self.inner.state.load(request.uid())? {
                    Some(pod) => Some(pod),
                    None => self.adopted(&workload)?,
                };
                if !captured.is_some_and(|pod| pod.captured) {
                    return Err(AgentError::NotCaptured(workload));
                }
                RuleKind::Ambient
            }
        };
        let netns = open_pod_netns(&workload, Path::new(&request.netns))?;
        self.redirect(&workload, &netns, move |r, fd| r.check(fd, kind))
            .await
    }

    /// What the agent does for `workload`'s pod.
    async fn treatment(&self, workload: &str) -> Result<Treatment, AgentError> {
        let mode = resolve(&*self.inner.modes, workload, self.inner.config.mode_wait).await?;
        Ok(if mode.captured() {
            Treatment::Capture
        } else if mode.has_sidecar && self.inner.config.sidecar_rules {
            Treatment::SidecarRules
        } else if mode.has_sidecar {
            Treatment::Sidecar
        } else {
            Treatment::Uncaptured
        })
    }

    /// Runs a blocking rule operation on the blocking pool.
    async fn redirect(
        &self,
        workload: &str,
        netns: &OwnedFd,
        op: impl FnOnce(&dyn Redirect, std::os::fd::BorrowedFd<'_>) -> Result<(), RedirectError>
        + Send
        + 'static,
    ) -> Result<(), AgentError> {
        let fail = |source| AgentError::Redirect {
            workload: workload.to_string(),
            source,
        };
        let redirect = Arc::clone(&self.inner.redirect);
        let fd = netns.try_clone().map_err(|e| {
            fail(RedirectError {
                action: "prepare",
                reason: format!("cannot duplicate the namespace fd: {e}"),
            })
        })?;
        tokio::task::spawn_blocking(move || op(&*redirect, fd.as_fd()))
            .await
            .map_err(|e| {
                fail(RedirectError {
                    action: "run",
                    reason: format!("rule task failed: {e}"),
                })
            })?
            .map_err(fail)
    }
}

/// What the agent does for a pod.
enum Treatment {
    /// Ambient: in-pod rules and the hand-off to the ztunnel.
    Capture,
    /// A sidecar pod, with `--sidecar-rules`: its redirect rules only.
    SidecarRules,
    /// A sidecar pod without `--sidecar-rules`: nothing (its init container
    /// installs the rules). Not recorded: a pod keeps its sidecar until it
    /// is re-created, and the new pod comes with an ADD of its own.
    Sidecar,
    /// A pod without a sidecar whose mode is not ambient: recorded as
    /// uncaptured, so it is captured in place if its mode turns ambient.
    Uncaptured,
}

/// Opens a network namespace file (`/var/run/netns/…` or `/proc/N/ns/net`).
pub(crate) fn open_netns(path: &Path) -> std::io::Result<OwnedFd> {
    std::fs::File::open(path).map(OwnedFd::from)
}

/// Whether `path` opens the namespace `netns` is (same device and inode;
/// the paths may differ: a bind mount and `/proc/PID/ns/net`).
fn same_netns(netns: &OwnedFd, path: &Path) -> bool {
    use braid_capture::NetNs;
    let here = netns.try_clone().map(|fd| NetNs::from_fd(fd).id());
    let there = NetNs::open(path).map(|ns| ns.id());
    matches!((here, there), (Ok(a), Ok(b)) if a == b)
}

fn open_pod_netns(workload: &str, path: &Path) -> Result<OwnedFd, AgentError> {
    open_netns(path).map_err(|source| AgentError::Netns {
        workload: workload.to_string(),
        path: path.to_path_buf(),
        source,
    })
}
