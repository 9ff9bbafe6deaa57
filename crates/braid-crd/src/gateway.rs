//! Gateway API `Gateway` (`gateway.networking.k8s.io/v1`) of class
//! [`WAYPOINT_CLASS`] → [`Waypoint`]: the declaration of a waypoint.
//!
//! Only Gateways of that class are Braid's; any other class belongs to
//! another controller and is left alone ([`waypoint`] returns `Ok(None)`:
//! no error, no status written). As for HTTPRoutes, only the `gateway-api`
//! crate's spec struct is used, through serde; metadata is Braid's own
//! k8s-openapi `ObjectMeta`.
//!
//! A waypoint is addressed, not routed to by hostname, so its Gateway is
//! narrow: listeners that take HBONE on 15008 (as Istio's waypoints are
//! written), no `spec.addresses` (its address is its Service's), and no
//! `infrastructure.parametersRef`. Anything else is not accepted, with the
//! specification's `Accepted=False` reason ([`GatewayError::reason`]).

use std::collections::BTreeMap;

use gateway_api::apis::standard::{constants::GatewayConditionReason, gateways::GatewaySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The `gatewayClassName` of a waypoint Gateway.
pub const WAYPOINT_CLASS: &str = "braid-waypoint";

/// The `controllerName` of the [`WAYPOINT_CLASS`] GatewayClass.
pub const WAYPOINT_CONTROLLER: &str = "braid.dev/waypoint-controller";

/// The label that ties a waypoint's pods to their Gateway (the Gateway API
/// convention, which Istio uses too): the waypoint's Service selects it.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// The port and protocol a waypoint listener takes.
pub const HBONE_PORT: i32 = 15008;

/// The listener protocol of a waypoint (`protocol: HBONE`).
pub const HBONE_PROTOCOL: &str = "HBONE";

/// An accepted waypoint Gateway, as the control plane keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waypoint {
    /// `metadata.namespace` (`default` when absent).
    pub namespace: String,
    /// `metadata.name`: also the name of its Service, ServiceAccount and
    /// Deployment.
    pub name: String,
    /// `spec.infrastructure.labels`, for the objects made for it.
    pub labels: BTreeMap<String, String>,
    /// `spec.infrastructure.annotations`, for the objects made for it.
    pub annotations: BTreeMap<String, String>,
}

/// A waypoint Gateway that cannot be accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct GatewayError {
    /// Field path, e.g. `spec.listeners[0].protocol`.
    pub field: String,
    /// The `Accepted=False` reason.
    pub reason: GatewayConditionReason,
    /// What is wrong and what to do.
    pub message: String,
}

/// Translates a Gateway (its metadata and its `spec` as JSON): `Ok(None)`
/// when its class is not [`WAYPOINT_CLASS`].
pub fn waypoint(
    metadata: &ObjectMeta,
    spec: serde_json::Value,
) -> Result<Option<Waypoint>, GatewayError> {
    // The class decides whose Gateway it is before anything is judged: a
    // Gateway of another controller is never Braid's error.
    let class = spec.get("gatewayClassName").and_then(|c| c.as_str());
    if class != Some(WAYPOINT_CLASS) {
        return Ok(None);
    }
    let spec: GatewaySpec = serde_path_to_error::deserialize(spec).map_err(|e| {
        let path = e.path().to_string();
        let field = match path.as_str() {
            "." => "spec".to_string(),
            _ => format!("spec.{path}"),
        };
        GatewayError {
            reason: not_accepted_reason(&field),
            field,
            message: format!("{}; see the Gateway API Gateway reference", e.into_inner()),
        }
    })?;
    let name = metadata.name.as_deref().unwrap_or_default();
    if let Err(message) = dns_label(name) {
        return Err(GatewayError {
            field: "metadata.name".to_string(),
            reason: GatewayConditionReason::Invalid,
            message: format!(
                "{message}: a waypoint's Service is named after its Gateway, so the name must be a DNS label"
            ),
        });
    }
    listeners(&spec)?;
    if spec.addresses.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err(GatewayError {
            field: "spec.addresses".to_string(),
            reason: GatewayConditionReason::UnsupportedAddress,
            message: "a waypoint is reached at its Service's address; remove spec.addresses"
                .to_string(),
        });
    }
    let infrastructure = spec.infrastructure.as_ref();
    if infrastructure.is_some_and(|i| i.parameters_ref.is_some()) {
        return Err(GatewayError {
            field: "spec.infrastructure.parametersRef".to_string(),
            reason: GatewayConditionReason::InvalidParameters,
            message: "waypoints take no parameters yet; remove parametersRef".to_string(),
        });
    }
    let namespace = match metadata.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns.to_string(),
        _ => crate::DEFAULT_NAMESPACE.to_string(),
    };
    Ok(Some(Waypoint {
        namespace,
        name: name.to_string(),
        labels: infrastructure
            .and_then(|i| i.labels.clone())
            .unwrap_or_default(),
        annotations: infrastructure
            .and_then(|i| i.annotations.clone())
            .unwrap_or_default(),
    }))
}

/// Every listener takes HBONE on 15008, and there is at least one.
fn listeners(spec: &GatewaySpec) -> Result<(), GatewayError> {
    let not_valid = |field: String, message: String| GatewayError {
        field,
        reason: GatewayConditionReason::ListenersNotValid,
        message,
    };
    if spec.listeners.is_empty() {
        return Err(not_valid(
            "spec.listeners".to_string(),
            format!(
                "a waypoint needs a listener: add {{name: mesh, port: {HBONE_PORT}, protocol: {HBONE_PROTOCOL}}}"
            ),
        ));
    }
    for (i, listener) in spec.listeners.iter().enumerate() {
        if listener.protocol != HBONE_PROTOCOL {
            return Err(not_valid(
                format!("spec.listeners[{i}].protocol"),
                format!(
                    "{:?} is not supported: a waypoint takes only {HBONE_PROTOCOL} (mTLS tunnels from the mesh's proxies)",
                    listener.protocol
                ),
            ));
        }
        if listener.port != HBONE_PORT {
            return Err(not_valid(
                format!("spec.listeners[{i}].port"),
                format!(
                    "{} is not supported: {HBONE_PROTOCOL} is taken on port {HBONE_PORT}",
                    listener.port
                ),
            ));
        }
    }
    Ok(())
}

/// An RFC 1035 label: what a Service name must be.
fn dns_label(value: &str) -> Result<(), String> {
    match braid_model::names::is_dns1035_label(value) {
        true => Ok(()),
        false => Err(format!(
            "{value:?} is not a DNS label (at most 63 characters: lowercase letters, digits and '-', starting with a letter)"
        )),
    }
}

/// The `Accepted=False` reason of a [`GatewayError`] at `field`. The
/// control plane keeps a rejected object's error as a field and a message;
/// this recovers the reason from the field when it writes status.
pub fn not_accepted_reason(field: &str) -> GatewayConditionReason {
    let at = |prefix: &str| field == prefix || field.starts_with(&format!("{prefix}["));
    if at("spec.listeners") || field.starts_with("spec.listeners.") {
        GatewayConditionReason::ListenersNotValid
    } else if at("spec.addresses") || field.starts_with("spec.addresses.") {
        GatewayConditionReason::UnsupportedAddress
    } else if field.starts_with("spec.infrastructure.parametersRef") {
        GatewayConditionReason::InvalidParameters
    } else {
        GatewayConditionReason::Invalid
    }
}

impl From<GatewayError> for braid_model::k8s::FieldError {
    /// For callers that report field errors: the reason leads the message,
    /// as for routes.
    fn from(e: GatewayError) -> Self {
        Self::new(e.field, format!("{}: {}", e.reason, e.message))
    }
}

#[cfg(test)]
mod tests;
