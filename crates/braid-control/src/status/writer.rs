//! The I/O half of status writing: while leader, read each object whose
//! verdict changed and patch its `/status` when it differs from
//! [`desired_status`] (or, on a route, [`desired_route_status`]; on a
//! waypoint Gateway, [`desired_gateway_status`], after applying the
//! waypoint's objects).
//!
//! A verdict is remembered once it is on the object (or needs no write), so
//! an unchanged verdict costs nothing. Writes that fail for a transient
//! reason are retried every `retry_every`; an object that is gone (404),
//! whose patch conflicts (409) or that already has a newer generation than
//! the verdict (a newer verdict is on its way) is not retried until its
//! verdict changes.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::StreamExt as _;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use tokio::sync::watch;

use super::{
    CrdKind, CrdStatus, FIELD_MANAGER, GatewayStatus, RouteStatus, Verdict, Verdicts,
    desired_gateway_status, desired_route_status, desired_status, gateway_is_up_to_date,
    is_up_to_date, lease::is_status, route_is_up_to_date,
};
use crate::inject::InjectConfig;

/// How many objects are read and patched at once.
const CONCURRENCY: usize = 8;

type Key = (CrdKind, String, String);

/// Writes status while this replica leads.
pub(super) struct Writer {
    client: kube::Client,
    retry_every: Duration,
    /// What waypoint Deployments run.
    proxy: Arc<InjectConfig>,
    /// The verdicts known to be on their objects.
    done: HashMap<Key, Verdict>,
    /// Whether the GatewayClass is known to be in place this term.
    class_done: bool,
}

/// What happened to one object.
#[derive(Debug)]
enum Outcome {
    /// Patched.
    Written,
    /// Already right, gone, or superseded: nothing to retry.
    Settled,
    /// Not written; try again later.
    Retry(kube::Error),
    /// A waypoint's objects could not be written; try again later.
    RetryWaypoint(crate::waypoints::apply::ApplyError),
    /// Not tried: leadership ended meanwhile.
    NotLeader,
}

// === impl Writer ===

impl Writer {
    pub(super) fn new(client: kube::Client, retry_every: Duration, proxy: InjectConfig) -> Self {
        Self {
            client,
            retry_every,
            proxy: Arc::new(proxy),
            done: HashMap::new(),
            class_done: false,
        }
    }

    /// Makes sure of the GatewayClass `braid-waypoint` once per term;
    /// whether that must be retried.
    async fn ensure_class(&mut self) -> bool {
        if self.class_done {
            return false;
        }
        match super::gateway_class::ensure(&self.client).await {
            Ok(super::gateway_class::ClassOutcome::Ready) => {
                self.class_done = true;
                false
            }
            // Checked again with the next verdicts: the CRDs may come.
            Ok(super::gateway_class::ClassOutcome::NoCrd) => false,
            Ok(super::gateway_class::ClassOutcome::Foreign(controller)) => {
                tracing::warn!(
                    class = braid_crd::gateway::WAYPOINT_CLASS,
                    %controller,
                    "the GatewayClass names another controller; Braid still runs the Gateways of that class as waypoints, but writes no class status (delete the class to let Braid create it)"
                );
                self.class_done = true;
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?self.retry_every, "cannot create or update the GatewayClass braid-waypoint; check the control plane's RBAC");
                true
            }
        }
    }

    /// Writes while `leader` says so, on every verdict change, and retries
    /// failed writes every `retry_every`. Never returns; the caller drops it.
    pub(super) async fn run(
        &mut self,
        mut verdicts: watch::Receiver<Arc<Verdicts>>,
        mut leader: watch::Receiver<bool>,
    ) {
        let mut verdicts_open = true;
        loop {
            let pending = if *leader.borrow_and_update() {
                let class_pending = self.ensure_class().await;
                let current = verdicts.borrow_and_update().clone();
                self.sync(&current, &leader).await || class_pending
            } else {
                false
            };
            tokio::select! {
                changed = verdicts.changed(), if verdicts_open => {
                    // The source is gone: keep the last verdicts.
                    verdicts_open = changed.is_ok();
                }
                changed = leader.changed() => {
                    if changed.is_err() {
                        // The elector stopped: we are shutting down.
                        std::future::pending::<()>().await;
                    }
                    // A new term re-checks every object: someone else may
                    // have written in between.
                    self.done.clear();
                    self.class_done = false;
                }
                () = tokio::time::sleep(self.retry_every), if pending => {}
            }
        }
    }

    /// Brings every object's status in line with `verdicts`; whether some
    /// write must be retried.
    async fn sync(&mut self, verdicts: &Verdicts, leader: &watch::Receiver<bool>) -> bool {
        self.done.retain(|key, _| verdicts.contains_key(key));
        // Owned work items: the stream's futures must not borrow (they
        // run inside the spawned status task, which must be Send).
        let todo: Vec<Verdict> = verdicts
            .iter()
            .filter(|(key, verdict)| self.done.get(*key) != Some(*verdict))
            .map(|(_, verdict)| verdict.clone())
            .collect();
        if todo.is_empty() {
            return false;
        }
        let mut outcomes = futures::stream::iter(todo)
            .map(|verdict| {
                let client = self.client.clone();
                let proxy = self.proxy.clone();
                let leading = *leader.borrow();
                async move {
                    if !leading {
                        return (verdict, Outcome::NotLeader);
                    }
                    let outcome = write(&client, &verdict, &proxy).await;
                    (verdict, outcome)
                }
            })
            .buffer_unordered(CONCURRENCY);
        let (mut written, mut failed) = (0usize, Vec::new());
        while let Some((verdict, outcome)) = outcomes.next().await {
            let key = (
                verdict.kind,
                verdict.namespace.clone(),
                verdict.name.clone(),
            );
            match outcome {
                Outcome::Written => {
                    written += 1;
                    self.done.insert(key, verdict);
                }
                Outcome::Settled => {
                    self.done.insert(key, verdict);
                }
                Outcome::Retry(e) => failed.push(format!("{} {}/{}: {e}", key.0, key.1, key.2)),
                Outcome::RetryWaypoint(e) => failed.push(e.to_string()),
                Outcome::NotLeader => {}
            }
        }
        if written > 0 {
            tracing::debug!(written, "wrote status");
        }
        if let Some(first) = failed.first() {
            tracing::warn!(
                failed = failed.len(),
                first = %first,
                retry_in = ?self.retry_every,
                "cannot write the status of some objects (Braid CRDs, HTTPRoutes, Gateways) or a waypoint's objects; check the control plane's RBAC"
            );
        }
        !failed.is_empty()
    }
}

/// Reads the object of `verdict` and patches its status if needed; for an
/// accepted waypoint Gateway, applies its objects first (an unaccepted one
/// keeps the objects of its last accepted version).
async fn write(client: &kube::Client, verdict: &Verdict, proxy: &InjectConfig) -> Outcome {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &verdict.namespace, &resource(verdict.kind));
    let object = match api.get_opt(&verdict.name).await {
        Ok(Some(object)) => object,
        Ok(None) => return Outcome::Settled,
        Err(e) => return Outcome::Retry(e),
    };
    if let (Some(seen), Some(judged)) = (object.metadata.generation, verdict.generation)
        && seen > judged
    {
        return Outcome::Settled;
    }
    if verdict.kind == CrdKind::Gateway
        && verdict.error.is_none()
        && let Some(outcome) = apply_waypoint(client, &object, proxy).await
    {
        return outcome;
    }
    let Some(status) = desired_for(verdict, &object.data, Timestamp::now()) else {
        return Outcome::Settled;
    };
    let resource = resource(verdict.kind);
    let patch = serde_json::json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"name": verdict.name, "namespace": verdict.namespace},
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch_status(&verdict.name, &params, &Patch::Apply(&patch))
        .await
    {
        Ok(_) => Outcome::Written,
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => {
            tracing::debug!(kind = %verdict.kind, namespace = %verdict.namespace, name = %verdict.name, error = %e, "status not written");
            Outcome::Settled
        }
        Err(e) => Outcome::Retry(e),
    }
}

/// Applies the objects of the waypoint Gateway `object`; `Some` outcome
/// when that failed (or the Gateway is not a waypoint after all, which a
/// newer verdict will say).
async fn apply_waypoint(
    client: &kube::Client,
    object: &DynamicObject,
    proxy: &InjectConfig,
) -> Option<Outcome> {
    let spec = object.data.get("spec").cloned().unwrap_or_default();
    let waypoint = match braid_crd::gateway::waypoint(&object.metadata, spec) {
        Ok(Some(waypoint)) => waypoint,
        Ok(None) | Err(_) => return Some(Outcome::Settled),
    };
    let uid = object.metadata.uid.as_deref().unwrap_or_default();
    let objects = crate::waypoints::objects(&waypoint, uid, proxy);
    match crate::waypoints::apply::apply(client, &objects).await {
        Ok(()) => None,
        Err(e) if is_status(&e.source, 404) => Some(Outcome::Settled),
        Err(e) => Some(Outcome::RetryWaypoint(e)),
    }
}

/// The status to write on an object whose content (spec and status) is
/// `data`; `None` when it already says so.
fn desired_for(
    verdict: &Verdict,
    data: &serde_json::Value,
    now: Timestamp,
) -> Option<serde_json::Value> {
    let status = data.get("status");
    if verdict.kind == CrdKind::Gateway {
        let current: Option<GatewayStatus> =
            status.and_then(|s| serde_json::from_value(s.clone()).ok());
        let listeners = data
            .pointer("/spec/listeners")
            .and_then(serde_json::Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let desired = desired_gateway_status(verdict, listeners, current.as_ref(), now);
        return match gateway_is_up_to_date(current.as_ref(), &desired) {
            true => None,
            false => serde_json::to_value(desired).ok(),
        };
    }
    if verdict.kind == CrdKind::HttpRoute {
        let current: Option<RouteStatus> =
            status.and_then(|s| serde_json::from_value(s.clone()).ok());
        let parent_refs = data
            .pointer("/spec/parentRefs")
            .and_then(serde_json::Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let desired = desired_route_status(verdict, parent_refs, current.as_ref(), now);
        return match route_is_up_to_date(current.as_ref(), &desired) {
            true => None,
            false => serde_json::to_value(desired).ok(),
        };
    }
    let current: Option<CrdStatus> = status.and_then(|s| serde_json::from_value(s.clone()).ok());
    let desired = desired_status(verdict, current.as_ref(), now);
    match is_up_to_date(current.as_ref(), &desired) {
        true => None,
        false => serde_json::to_value(desired).ok(),
    }
}

/// The API resource of `kind`.
fn resource(kind: CrdKind) -> ApiResource {
    match kind {
        CrdKind::AuthorizationPolicy => ApiResource::erase::<braid_crd::AuthorizationPolicy>(&()),
        CrdKind::PeerAuthentication => ApiResource::erase::<braid_crd::PeerAuthentication>(&()),
        CrdKind::HttpRoute => {
            crate::source::kubernetes::watches::gateway_api_resource(crate::source::Kind::HttpRoute)
        }
        CrdKind::Gateway => {
            crate::source::kubernetes::watches::gateway_api_resource(crate::source::Kind::Gateway)
        }
    }
}
