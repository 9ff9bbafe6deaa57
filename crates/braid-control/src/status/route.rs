//! The pure part of HTTPRoute status: the Gateway API route status this
//! control plane asks for, given the route's `spec.parentRefs` and the
//! status it carries now. No I/O; the clock is a parameter.
//!
//! Gateway API route status is one entry per parent in `status.parents`,
//! each naming the parent, the controller that wrote it and its
//! conditions. Braid writes the entries of the parents it implements (GAMMA
//! Service parents, and its waypoint Gateways) with two conditions,
//! `Accepted` and `ResolvedRefs`, and
//! keeps every other controller's entries as they are: a route may also be
//! attached to some ingress Gateway that another implementation serves.

use braid_crd::httproute::condition::{TYPE_ACCEPTED, TYPE_RESOLVED_REFS};
use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Verdict, desired::truncated};

/// Braid's `controllerName` in route status, as the specification asks: a
/// domain-prefixed path.
pub const CONTROLLER_NAME: &str = "braid.dev/control-plane";

/// The API server's limit on `status.parents`.
const MAX_PARENTS: usize = 32;

/// The `status` of a Gateway API route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteStatus {
    /// One entry per parent and controller.
    #[serde(default)]
    pub parents: Vec<ParentStatus>,
}

/// A route's status at one parent, as one controller sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentStatus {
    /// The parentRef as written in the route's spec (kept verbatim, so
    /// tools that match entries to parentRefs find it).
    pub parent_ref: Value,
    /// The controller that wrote this entry.
    pub controller_name: String,
    /// Its conditions.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// The status `verdict` asks for on a route whose `spec.parentRefs` are
/// `parent_refs`: `Accepted` and, for an accepted route, `ResolvedRefs`, at
/// every Service parent (deduplicated, in spec order), after the entries of
/// other controllers. A condition keeps `current`'s `lastTransitionTime`
/// while its status (True/False) stays; otherwise it moved `now`.
pub fn desired_route_status(
    verdict: &Verdict,
    parent_refs: &[Value],
    current: Option<&RouteStatus>,
    now: Timestamp,
) -> RouteStatus {
    let mut parents: Vec<ParentStatus> = current
        .map(|c| c.parents.iter().filter(|p| !is_ours(p)).cloned().collect())
        .unwrap_or_default();
    let mut seen: Vec<&Value> = Vec::new();
    let ours = |p: &&Value| is_service_parent(p) || is_waypoint_parent(p, verdict);
    for parent_ref in parent_refs.iter().filter(ours) {
        if seen.contains(&parent_ref) || parents.len() >= MAX_PARENTS {
            continue;
        }
        seen.push(parent_ref);
        let previous = current.and_then(|c| {
            c.parents
                .iter()
                .find(|p| is_ours(p) && p.parent_ref == *parent_ref)
        });
        let conditions = conditions(verdict, is_service_parent(parent_ref))
            .into_iter()
            .map(|(type_, status, reason, message)| Condition {
                last_transition_time: previous
                    .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
                    .filter(|c| c.status == status)
                    .map_or(Time(now), |c| c.last_transition_time.clone()),
                type_: type_.to_string(),
                status: status.to_string(),
                reason,
                message: truncated(&message),
                observed_generation: verdict.generation,
            })
            .collect();
        parents.push(ParentStatus {
            parent_ref: parent_ref.clone(),
            controller_name: CONTROLLER_NAME.to_string(),
            conditions,
        });
    }
    RouteStatus { parents }
}

/// Whether `current` already holds Braid's entries of `desired`, and no
/// others of Braid's (a parentRef removed from the spec).
pub fn route_is_up_to_date(current: Option<&RouteStatus>, desired: &RouteStatus) -> bool {
    let ours = |s: &RouteStatus| -> Vec<ParentStatus> {
        s.parents.iter().filter(|p| is_ours(p)).cloned().collect()
    };
    current.map(ours).unwrap_or_default() == ours(desired)
}

/// (type, status, reason, message) of each condition `verdict` asks for.
fn conditions(
    verdict: &Verdict,
    service_parent: bool,
) -> Vec<(&'static str, &'static str, String, String)> {
    let accepted = match &verdict.error {
        Some(error) => {
            // Not accepted: which references resolve is not known for this
            // version, so `ResolvedRefs` is left out rather than guessed.
            return vec![(
                TYPE_ACCEPTED,
                "False",
                "UnsupportedValue".to_string(),
                format!("{error}; the route's last accepted version keeps serving"),
            )];
        }
        None => (
            TYPE_ACCEPTED,
            "True",
            "Accepted".to_string(),
            match service_parent {
                true => "the route applies to traffic for this Service from every meshed caller",
                false => "the route applies at this waypoint to the Services it fronts that no route of their own attaches to (and whose hostname its hostnames admit)",
            }
            .to_string(),
        ),
    };
    let resolved = match &verdict.unresolved {
        Some(problem) => (
            TYPE_RESOLVED_REFS,
            "False",
            problem.reason.clone(),
            problem.message.clone(),
        ),
        None => (
            TYPE_RESOLVED_REFS,
            "True",
            "ResolvedRefs".to_string(),
            "every reference of the route resolved".to_string(),
        ),
    };
    vec![accepted, resolved]
}

/// Whether an entry is Braid's.
fn is_ours(parent: &ParentStatus) -> bool {
    parent.controller_name == CONTROLLER_NAME
}

/// Whether a parentRef names one of the route's waypoint Gateways (the
/// index found them: a `braid-waypoint` Gateway of the route's namespace).
fn is_waypoint_parent(parent_ref: &Value, verdict: &Verdict) -> bool {
    let field = |name: &str, default: &str| {
        parent_ref
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let group = field("group", braid_crd::httproute::GATEWAY_GROUP);
    let kind = field("kind", "Gateway");
    let namespace = field("namespace", &verdict.namespace);
    let name = field("name", "");
    group == braid_crd::httproute::GATEWAY_GROUP
        && kind == "Gateway"
        && namespace == verdict.namespace
        && verdict.waypoint_parents.contains(&name)
}

/// Whether a parentRef names a Service (the GAMMA parents Braid serves), as
/// the route conversion reads it. The API server fills in the defaults
/// (`gateway.networking.k8s.io`, `Gateway`), but a route read before
/// defaulting may lack them.
fn is_service_parent(parent_ref: &Value) -> bool {
    let group = parent_ref
        .get("group")
        .and_then(Value::as_str)
        .unwrap_or(braid_crd::httproute::GATEWAY_GROUP);
    let kind = parent_ref
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("Gateway");
    group.is_empty() && kind == "Service"
}

#[cfg(test)]
mod tests;
