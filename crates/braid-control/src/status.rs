//! The status writer: the control plane's verdict on each
//! AuthorizationPolicy and PeerAuthentication becomes its
//! `status.observedGeneration` and one `Accepted` condition (True, or False
//! with reason `Invalid` and a message naming the offending field), so
//! `kubectl get bap` and `kubectl wait --for=condition=Accepted` show what
//! the mesh made of an object. An HTTPRoute gets Gateway API route status
//! instead ([`route`]): `Accepted` and `ResolvedRefs` at each Service
//! parent, with the specification's reasons. A waypoint Gateway gets
//! `Accepted`, `Programmed` and its addresses ([`gateway`]), and before
//! that its ServiceAccount, Service and Deployment ([`crate::waypoints`]).
//!
//! Several control-plane replicas may run; only the one holding the
//! `coordination.k8s.io/v1` Lease writes ([`lease`]), so replicas never fight
//! over a condition's `lastTransitionTime`. What to write is pure
//! ([`desired`]); [`writer`] reads each object's status and patches only
//! those that differ, so an unchanged verdict costs no write, and a fresh
//! leader re-checks every object once.
//!
//! Status writes only: the writer patches the `/status` subresource with
//! server-side apply (field manager `braid-control`) and never touches spec.
//! What it does not do: notice a status someone else overwrote while the
//! verdict stayed the same (it re-checks on the next verdict change or
//! leadership change).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::sync::watch;

pub mod desired;
pub mod gateway;
mod gateway_class;
pub mod lease;
pub mod route;
mod writer;

pub use desired::{CrdStatus, desired_status, is_up_to_date};
pub use gateway::{GatewayStatus, desired_gateway_status, gateway_is_up_to_date};
pub use route::{RouteStatus, desired_route_status, route_is_up_to_date};

/// The field manager of every status write and of the Lease.
pub const FIELD_MANAGER: &str = "braid-control";

/// Which kind of object the writer writes status on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CrdKind {
    /// `authorizationpolicies.braid.dev`.
    AuthorizationPolicy,
    /// `peerauthentications.braid.dev`.
    PeerAuthentication,
    /// `httproutes.gateway.networking.k8s.io` (Gateway API route status).
    HttpRoute,
    /// `gateways.gateway.networking.k8s.io` of class `braid-waypoint`.
    Gateway,
}

/// The verdict on one object at one generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The object's kind.
    pub kind: CrdKind,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// The `metadata.generation` judged; written as `observedGeneration`.
    pub generation: Option<i64>,
    /// `None` when accepted; otherwise why not, naming the field first
    /// (`spec.rules[0].from.principals[0]: ...`).
    pub error: Option<String>,
    /// For a route: the references that do not resolve, as one
    /// `ResolvedRefs=False` condition; always `None` for Braid CRDs.
    pub unresolved: Option<Problem>,
    /// For a waypoint Gateway: what the index sees of it (ready pods,
    /// addresses); `None` for other kinds, or before the index saw it.
    pub waypoint: Option<crate::index::waypoints::State>,
    /// For a route: the waypoint Gateways (same namespace) among its
    /// parents, which get status entries beside its Service parents.
    pub waypoint_parents: Vec<String>,
}

/// A condition's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The specification's reason (`BackendNotFound`).
    pub reason: String,
    /// What is wrong, field by field, and what to do.
    pub message: String,
}

/// Verdicts by (kind, namespace, name).
pub type Verdicts = BTreeMap<(CrdKind, String, String), Verdict>;

/// The `ResolvedRefs` problems of each route the index serves, by
/// (namespace, name); a route without problems is absent.
pub type RouteProblems = BTreeMap<(String, String), Vec<braid_crd::httproute::BackendProblem>>;

/// What the status writer needs from the index, beside the source's
/// verdicts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Findings {
    /// Route references that do not resolve (`ResolvedRefs`).
    pub routes: RouteProblems,
    /// Each waypoint Gateway's state, by (namespace, name) (`Programmed`).
    pub waypoints: BTreeMap<(String, String), crate::index::waypoints::State>,
    /// The waypoint Gateways each route attaches to, by the route's
    /// (namespace, name): the Gateway parents Braid writes status at.
    pub route_waypoints: BTreeMap<(String, String), Vec<String>>,
}

/// How the status writer elects its leader.
#[derive(Clone, Debug)]
pub struct StatusConfig {
    /// This replica's name in the Lease: the pod name, or the hostname.
    pub identity: String,
    /// The namespace of the Lease (the control plane's own).
    pub lease_namespace: String,
    /// The Lease's name, normally `braid-control`.
    pub lease_name: String,
    /// How long a leader's renewal holds off the others.
    pub lease_duration: Duration,
    /// How often the leader renews and the others check the Lease; well
    /// below `lease_duration`, so a slow renewal is retried before it lapses.
    pub renew_every: Duration,
    /// Set while this replica holds the Lease (the `braid_control_leader`
    /// gauge reads it).
    pub is_leader: Arc<AtomicBool>,
    /// The proxy settings of the waypoint Deployments the leader writes
    /// (image, control plane address, trust domain), as for injection.
    pub proxy: crate::inject::InjectConfig,
}

/// The Kubernetes source's verdicts in the writer's terms, with the index's
/// findings joined: `ResolvedRefs` problems to the routes, waypoint states
/// to the Gateways. Kinds the writer does not handle are skipped.
pub fn from_source(map: &crate::source::kubernetes::VerdictMap, findings: &Findings) -> Verdicts {
    let routes = &findings.routes;
    map.iter()
        .filter_map(|(key, verdict)| {
            let kind = CrdKind::from_kind(key.kind)?;
            let unresolved = match kind {
                CrdKind::HttpRoute => routes
                    .get(&(key.namespace.clone(), key.name.clone()))
                    .and_then(|problems| unresolved(problems)),
                _ => None,
            };
            let waypoint = match kind {
                CrdKind::Gateway => findings
                    .waypoints
                    .get(&(key.namespace.clone(), key.name.clone()))
                    .cloned(),
                _ => None,
            };
            let waypoint_parents = match kind {
                CrdKind::HttpRoute => findings
                    .route_waypoints
                    .get(&(key.namespace.clone(), key.name.clone()))
                    .cloned()
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            let verdict = Verdict {
                kind,
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                generation: verdict.generation,
                error: verdict.error.clone(),
                unresolved,
                waypoint,
                waypoint_parents,
            };
            Some(((kind, key.namespace.clone(), key.name.clone()), verdict))
        })
        .collect()
}

/// One `ResolvedRefs=False` condition for a route's problems: the first
/// problem's reason, every problem in the message.
fn unresolved(problems: &[braid_crd::httproute::BackendProblem]) -> Option<Problem> {
    let first = problems.first()?;
    let message = problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect::<Vec<_>>()
        .join("; ");
    Some(Problem {
        reason: first.reason.to_string(),
        message,
    })
}

// === impl CrdKind ===

impl CrdKind {
    /// The writer's name for a source kind; `None` for kinds without status.
    pub fn from_kind(kind: crate::source::Kind) -> Option<Self> {
        match kind {
            crate::source::Kind::AuthorizationPolicy => Some(Self::AuthorizationPolicy),
            crate::source::Kind::PeerAuthentication => Some(Self::PeerAuthentication),
            crate::source::Kind::HttpRoute => Some(Self::HttpRoute),
            crate::source::Kind::Gateway => Some(Self::Gateway),
            _ => None,
        }
    }

    /// The kind's name, as in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationPolicy => "AuthorizationPolicy",
            Self::PeerAuthentication => "PeerAuthentication",
            Self::HttpRoute => "HTTPRoute",
            Self::Gateway => "Gateway",
        }
    }
}

impl std::fmt::Display for CrdKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl StatusConfig ===

impl StatusConfig {
    /// The defaults: Lease `braid-control` in `lease_namespace`, held for
    /// 15 s and renewed every 5 s.
    pub fn new(identity: impl Into<String>, lease_namespace: impl Into<String>) -> Self {
        Self {
            identity: identity.into(),
            lease_namespace: lease_namespace.into(),
            lease_name: "braid-control".to_string(),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            is_leader: Arc::new(AtomicBool::new(false)),
            proxy: crate::inject::InjectConfig::defaults(),
        }
    }

    /// Whether this replica holds the Lease now.
    pub fn leading(&self) -> bool {
        self.is_leader.load(Ordering::Relaxed)
    }
}

/// Runs until `shutdown` turns true (or its sender is dropped): leader
/// election on the Lease and, while leader, patches `/status` of every
/// object whose written status differs from the desired one. On shutdown
/// the Lease is released so a peer takes over at its next check instead of
/// waiting for the Lease to expire. Dropping the future stops writing at
/// once and releases the Lease in the background.
pub async fn run(
    client: kube::Client,
    config: StatusConfig,
    verdicts: watch::Receiver<Arc<Verdicts>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (leader_tx, leader_rx) = watch::channel(false);
    let elector = lease::Elector::new(client.clone(), config.clone(), leader_tx);
    let election = tokio::spawn(elector.run(stop_rx));
    let mut writer = writer::Writer::new(client, config.renew_every, config.proxy.clone());
    tokio::select! {
        () = writer.run(verdicts, leader_rx) => {}
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
    // Stop writing first, then give the Lease up.
    drop(writer);
    let _ = stop_tx.send(true);
    if let Err(e) = election.await {
        tracing::warn!(error = %e, "the leader election task failed");
    }
}

#[cfg(test)]
mod tests;
