//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several
//! control-plane replicas exactly one writes status.
//!
//! Every `renew_every` each replica reads the Lease. The holder renews it
//! (`renewTime` = now); the others take it over only when it has no holder
//! or the holder's `renewTime` + `leaseDurationSeconds` has passed. Every
//! write is a replace carrying the `resourceVersion` just read, so when two
//! replicas race for an expired Lease the API server lets exactly one win
//! (the other gets 409 Conflict and stays a follower).
//!
//! A leader that cannot renew steps down once `lease_duration -
//! renew_every` has passed since its last renewal, before a peer may take
//! over: two writers at once would fight over `lastTransitionTime`. On
//! shutdown the leader clears `holderIdentity`, and a peer takes over at its
//! next check instead of waiting for the Lease to expire.
//!
//! Expiry is judged by this replica's clock against the holder's
//! `renewTime`, so clocks must roughly agree (within the lease duration).

use std::{sync::atomic::Ordering, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use super::{FIELD_MANAGER, StatusConfig};

/// What a replica does with the Lease it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or the holder let it expire: take it over.
    TakeOver,
    /// Someone else holds it and renewed it in time.
    Follow {
        /// The current holder.
        holder: String,
    },
}

/// The election loop of one replica.
pub struct Elector {
    api: Api<Lease>,
    config: StatusConfig,
    leader: watch::Sender<bool>,
    /// When we last renewed (or acquired) the Lease, while leader.
    renewed_at: Option<Timestamp>,
}

/// What `spec` means for `identity` at `now`; a Lease without a duration
/// counts as lasting `default_duration`.
pub fn decide(
    spec: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    default_duration: Duration,
) -> Decision {
    let holder = spec
        .and_then(|s| s.holder_identity.as_deref())
        .unwrap_or_default();
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    if holder == identity {
        return Decision::Renew;
    }
    let duration = spec
        .and_then(|s| s.lease_duration_seconds)
        .map_or(default_duration, |s| {
            Duration::from_secs(u64::try_from(s).unwrap_or(0))
        });
    let expires = spec
        .and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref()))
        .and_then(|t| t.0.checked_add(signed(duration)).ok());
    match expires {
        Some(expires) if expires > now => Decision::Follow {
            holder: holder.to_string(),
        },
        _ => Decision::TakeOver,
    }
}

// === impl Elector ===

impl Elector {
    /// An elector for `config`'s Lease; it reports leadership on `leader`
    /// and in `config.is_leader`.
    pub fn new(client: kube::Client, config: StatusConfig, leader: watch::Sender<bool>) -> Self {
        Self {
            api: Api::namespaced(client, &config.lease_namespace),
            config,
            leader,
            renewed_at: None,
        }
    }

    /// Checks the Lease every `renew_every` until `stop` turns true (or is
    /// dropped), then releases it if we hold it.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            self.step().await;
            tokio::select! {
                () = tokio::time::sleep(self.config.renew_every) => {}
                _ = stop.wait_for(|stop| *stop) => break,
            }
        }
        self.release().await;
    }

    /// One check: read the Lease and act on [`decide`].
    async fn step(&mut self) {
        let now = Timestamp::now();
        match self.try_step(now).await {
            Ok(leading) => {
                if leading {
                    self.renewed_at = Some(now);
                }
                self.set_leader(leading);
            }
            Err(e) => {
                let deadline = self
                    .config
                    .lease_duration
                    .saturating_sub(self.config.renew_every);
                let lapsed = self
                    .renewed_at
                    .and_then(|t| t.checked_add(signed(deadline)).ok())
                    .is_none_or(|deadline| deadline <= now);
                tracing::warn!(
                    lease = %self.lease_ref(),
                    error = %e,
                    "cannot read or renew the status writer's Lease; check that its namespace exists and that the control plane may get, create and update coordination.k8s.io leases there"
                );
                if lapsed {
                    self.set_leader(false);
                }
            }
        }
    }

    /// Whether we hold the Lease after this check.
    async fn try_step(&self, now: Timestamp) -> Result<bool, kube::Error> {
        let name = &self.config.lease_name;
        let Some(lease) = self.api.get_opt(name).await? else {
            return self.create(now).await;
        };
        let decision = decide(
            lease.spec.as_ref(),
            &self.config.identity,
            now,
            self.config.lease_duration,
        );
        let mut spec = lease.spec.clone().unwrap_or_default();
        match decision {
            Decision::Follow { .. } => return Ok(false),
            Decision::Renew => {}
            Decision::TakeOver => {
                spec.holder_identity = Some(self.config.identity.clone());
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(seconds(self.config.lease_duration));
        self.replace(lease, spec).await
    }

    /// Creates the Lease with us as holder; `false` when a peer was faster.
    async fn create(&self, now: Timestamp) -> Result<bool, kube::Error> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.lease_name.clone()),
                namespace: Some(self.config.lease_namespace.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(seconds(self.config.lease_duration)),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        match self.api.create(&post_params(), &lease).await {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 409) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces `lease` (at the resource version read) with `spec`; `false`
    /// when someone changed it since.
    async fn replace(&self, mut lease: Lease, spec: LeaseSpec) -> Result<bool, kube::Error> {
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.config.lease_name, &post_params(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 409) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Clears `holderIdentity` if we still hold the Lease.
    async fn release(&mut self) {
        let was_leader = *self.leader.borrow();
        self.set_leader(false);
        if !was_leader {
            return;
        }
        let result = async {
            let Some(lease) = self.api.get_opt(&self.config.lease_name).await? else {
                return Ok(false);
            };
            let mut spec = lease.spec.clone().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(false);
            }
            spec.holder_identity = None;
            spec.acquire_time = None;
            self.replace(lease, spec).await
        }
        .await;
        match result {
            Ok(true) => {
                tracing::info!(lease = %self.lease_ref(), "released the status writer's Lease")
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(
                lease = %self.lease_ref(),
                error = %e,
                "cannot release the status writer's Lease; a peer takes over when it expires"
            ),
        }
    }

    fn set_leader(&mut self, leading: bool) {
        self.config.is_leader.store(leading, Ordering::Relaxed);
        let changed = self.leader.send_if_modified(|current| {
            let changed = *current != leading;
            *current = leading;
            changed
        });
        if !leading {
            self.renewed_at = None;
        }
        if changed && leading {
            tracing::info!(lease = %self.lease_ref(), identity = %self.config.identity, "became the status writer");
        } else if changed {
            tracing::info!(lease = %self.lease_ref(), identity = %self.config.identity, "no longer the status writer");
        }
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.config.lease_namespace, self.config.lease_name)
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

/// Whether `error` is an API error with HTTP status `code`.
pub(super) fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs().max(1)).unwrap_or(i32::MAX)
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}
