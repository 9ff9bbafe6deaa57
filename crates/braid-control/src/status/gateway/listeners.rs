//! `status.listeners` of a waypoint Gateway: one entry per listener of its
//! spec, with the route kinds it takes, how many routes attach to it and
//! its `Accepted`, `Programmed` and `ResolvedRefs` conditions, so that
//! `kubectl describe gateway` and Gateway API tooling see each listener.
//!
//! Routes attach to the Gateway as a whole (Braid does not yet tell
//! listeners apart by `sectionName`), so every listener counts them all; a
//! waypoint's usual single listener counts exactly its routes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::{Deserialize, Serialize};

/// One entry of `status.listeners`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// The route kinds it takes: HTTPRoute.
    #[serde(default)]
    pub supported_kinds: Vec<RouteGroupKind>,
    /// Routes attached to it (accepted ones).
    #[serde(default)]
    pub attached_routes: i32,
    /// Conditions by type.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A route kind (`supportedKinds`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteGroupKind {
    /// `gateway.networking.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `HTTPRoute`.
    pub kind: String,
}

/// What the Gateway as a whole says, for its listeners.
pub(super) struct Gateway<'a> {
    /// `None` when accepted; else the field at fault, e.g.
    /// `spec.listeners[0].protocol`.
    pub(super) rejected_at: Option<&'a str>,
    /// Whether a waypoint pod is ready.
    pub(super) programmed: bool,
    /// Routes attached to the Gateway.
    pub(super) attached_routes: usize,
    /// `metadata.generation`.
    pub(super) generation: Option<i64>,
}

/// The status of each listener in `spec_listeners` (the Gateway's
/// `spec.listeners`; entries without a name are skipped, the API server
/// refuses them anyway). A condition keeps `current`'s
/// `lastTransitionTime` while its status stays.
pub(super) fn desired_listeners(
    gateway: &Gateway<'_>,
    spec_listeners: &[serde_json::Value],
    current: &[ListenerStatus],
    now: Time,
) -> Vec<ListenerStatus> {
    spec_listeners
        .iter()
        .enumerate()
        .filter_map(|(i, listener)| {
            let name = listener.get("name")?.as_str()?.to_string();
            let previous = current.iter().find(|c| c.name == name);
            let condition = |type_: &str, status: &str, reason: &str, message: String| {
                let last_transition_time = previous
                    .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
                    .filter(|c| c.status == status)
                    .map_or(now.clone(), |c| c.last_transition_time.clone());
                Condition {
                    type_: type_.to_string(),
                    status: status.to_string(),
                    reason: reason.to_string(),
                    message,
                    observed_generation: gateway.generation,
                    last_transition_time,
                }
            };
            let fault = gateway.rejected_at.and_then(|field| fault_of(field, i));
            let accepted = match (gateway.rejected_at, fault) {
                (_, Some(reason)) => condition(
                    "Accepted",
                    "False",
                    reason,
                    "this listener is not valid (see the Gateway's Accepted condition)".into(),
                ),
                _ => condition("Accepted", "True", "Accepted", "HBONE on 15008".into()),
            };
            let programmed = match (gateway.rejected_at, gateway.programmed) {
                (Some(_), _) => condition(
                    "Programmed",
                    "False",
                    "Invalid",
                    "the Gateway is not accepted (see its Accepted condition)".into(),
                ),
                (None, true) => condition(
                    "Programmed",
                    "True",
                    "Programmed",
                    "a waypoint pod is ready".into(),
                ),
                (None, false) => condition(
                    "Programmed",
                    "False",
                    "Pending",
                    "no waypoint pod is ready yet".into(),
                ),
            };
            let resolved = condition("ResolvedRefs", "True", "ResolvedRefs", String::new());
            let attached = match gateway.rejected_at {
                Some(_) => 0,
                None => i32::try_from(gateway.attached_routes).unwrap_or(i32::MAX),
            };
            Some(ListenerStatus {
                name,
                supported_kinds: vec![RouteGroupKind {
                    group: Some("gateway.networking.k8s.io".to_string()),
                    kind: "HTTPRoute".to_string(),
                }],
                attached_routes: attached,
                conditions: vec![accepted, programmed, resolved],
            })
        })
        .collect()
}

/// The listener `Accepted=False` reason when the Gateway was rejected at
/// `field` because of listener `index`: `UnsupportedProtocol` for its
/// protocol, `PortUnavailable` for its port.
fn fault_of(field: &str, index: usize) -> Option<&'static str> {
    let rest = field.strip_prefix(&format!("spec.listeners[{index}]"))?;
    match rest {
        ".protocol" => Some("UnsupportedProtocol"),
        ".port" => Some("PortUnavailable"),
        _ => Some("Pending"),
    }
}

/// Whether `current` says what `desired` says: the same listeners, each
/// with the same kinds and count and Braid's conditions as they are.
pub(super) fn listeners_up_to_date(current: &[ListenerStatus], desired: &[ListenerStatus]) -> bool {
    current.len() == desired.len()
        && desired.iter().all(|wanted| {
            current.iter().any(|c| {
                c.name == wanted.name
                    && c.supported_kinds == wanted.supported_kinds
                    && c.attached_routes == wanted.attached_routes
                    && wanted.conditions.iter().all(|w| c.conditions.contains(w))
            })
        })
}
