//! The pure part of waypoint Gateway status: the `Accepted` and
//! `Programmed` conditions and the addresses Braid asks for, given the
//! verdict and what the index sees of the waypoint. No I/O; the clock is a
//! parameter.
//!
//! * `Accepted`: True, or False with the specification's reason for the
//!   field at fault (`ListenersNotValid`, `UnsupportedAddress`,
//!   `InvalidParameters`, `Invalid`).
//! * `Programmed`: True (reason `Programmed`) once a waypoint pod is
//!   ready, so `kubectl wait --for=condition=Programmed gateway/wp` waits
//!   for a waypoint that can take traffic; False with `Pending` until then,
//!   or `Invalid` while the Gateway is not accepted.
//! * `addresses`: the waypoint Service's cluster IPs.
//! * `listeners`: each listener's kinds, attached routes and conditions
//!   ([`listeners`]).
//!
//! Gateway conditions are a list keyed by type, so the write touches only
//! Braid's two and leaves other conditions to whoever wrote them.

use braid_crd::gateway::not_accepted_reason;
use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use serde::{Deserialize, Serialize};

use super::{Verdict, desired::truncated};

mod listeners;

pub use listeners::{ListenerStatus, RouteGroupKind};

/// The part of a Gateway's `status` Braid writes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayStatus {
    /// Where the waypoint is reached.
    #[serde(default)]
    pub addresses: Vec<GatewayAddress>,
    /// Conditions by type.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// One entry per listener of the spec.
    #[serde(default)]
    pub listeners: Vec<ListenerStatus>,
}

/// One entry of `status.addresses`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayAddress {
    /// `IPAddress`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The address.
    pub value: String,
}

/// The status `verdict` asks for on a waypoint Gateway whose
/// `spec.listeners` are `spec_listeners`. A condition keeps `current`'s
/// `lastTransitionTime` while its status stays.
pub fn desired_gateway_status(
    verdict: &Verdict,
    spec_listeners: &[serde_json::Value],
    current: Option<&GatewayStatus>,
    now: Timestamp,
) -> GatewayStatus {
    let state = verdict.waypoint.clone().unwrap_or_default();
    let name = &verdict.name;
    // The field at fault leads the kept error (`<field>: <reason>: ...`).
    let rejected_at = verdict
        .error
        .as_deref()
        .map(|e| e.split_once(": ").map_or("", |(field, _)| field));
    let (accepted, programmed) = match (&verdict.error, rejected_at) {
        (Some(error), Some(field)) => (
            (
                "False",
                not_accepted_reason(field).to_string(),
                format!("{error}; the waypoint's last accepted version keeps running"),
            ),
            (
                "False",
                "Invalid".to_string(),
                "the Gateway is not accepted (see Accepted)".to_string(),
            ),
        ),
        _ => (
            (
                "True",
                "Accepted".to_string(),
                format!(
                    "braid-control runs this waypoint: ServiceAccount, Service and Deployment {name}"
                ),
            ),
            match state.ready {
                0 => (
                    "False",
                    "Pending".to_string(),
                    format!("no waypoint pod is ready yet; see Deployment {name}"),
                ),
                n => (
                    "True",
                    "Programmed".to_string(),
                    format!("{n} waypoint pod(s) ready"),
                ),
            },
        ),
    };
    let condition = |type_: &str, (status, reason, message): (&str, String, String)| {
        let last_transition_time = current
            .and_then(|c| c.conditions.iter().find(|c| c.type_ == type_))
            .filter(|c| c.status == status)
            .map_or(Time(now), |c| c.last_transition_time.clone());
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason,
            message: truncated(&message),
            observed_generation: verdict.generation,
            last_transition_time,
        }
    };
    GatewayStatus {
        addresses: state
            .addresses
            .iter()
            .map(|ip| GatewayAddress {
                type_: Some("IPAddress".to_string()),
                value: ip.to_string(),
            })
            .collect(),
        conditions: vec![
            condition("Accepted", accepted),
            condition("Programmed", programmed),
        ],
        listeners: listeners::desired_listeners(
            &listeners::Gateway {
                rejected_at,
                programmed: state.ready > 0,
                attached_routes: state.attached_routes,
                generation: verdict.generation,
            },
            spec_listeners,
            current.map_or(&[][..], |c| c.listeners.as_slice()),
            Time(now),
        ),
    }
}

/// Whether `current` already says what `desired` says: the same addresses
/// and each of Braid's conditions as is.
pub fn gateway_is_up_to_date(current: Option<&GatewayStatus>, desired: &GatewayStatus) -> bool {
    let Some(current) = current else {
        return false;
    };
    current.addresses == desired.addresses
        && listeners::listeners_up_to_date(&current.listeners, &desired.listeners)
        && desired
            .conditions
            .iter()
            .all(|wanted| current.conditions.contains(wanted))
}

#[cfg(test)]
mod tests;
