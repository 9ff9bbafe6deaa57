//! The `braid.dev/mode` and `braid.dev/waypoint` labels.
//!
//! A bad value on the object being translated (a pod's mode, a Service's
//! waypoint) is an error of that object. A bad value on its Namespace counts
//! as absent: the Namespace is reported once, by `validate_namespace`, rather
//! than through every pod and Service in it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;

use super::{FieldError, syntax};
use crate::{DataPlaneMode, MODE_LABEL, WAYPOINT_LABEL, WaypointRef};

type Labels = BTreeMap<String, String>;

/// What a `braid.dev/waypoint` label asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Waypoint<'a> {
    /// `none`: no waypoint, even if an enclosing object names one.
    Disabled,
    /// The name of a waypoint Gateway.
    Named(&'a str),
}

// === impl Waypoint ===

impl Waypoint<'_> {
    /// The waypoint reference, resolved in `namespace`.
    pub(super) fn to_ref(self, namespace: &str) -> Option<WaypointRef> {
        match self {
            Self::Disabled => None,
            Self::Named(name) => Some(WaypointRef {
                name: name.to_string(),
                namespace: namespace.to_string(),
            }),
        }
    }
}

/// The field path errors use for label `key`: `metadata.labels["key"]`.
pub(super) fn field(key: &str) -> String {
    format!("metadata.labels[{key:?}]")
}

/// The mode the `braid.dev/mode` label asks for; `None` when absent.
pub(super) fn mode(labels: Option<&Labels>) -> Result<Option<DataPlaneMode>, FieldError> {
    let Some(value) = labels.and_then(|l| l.get(MODE_LABEL)) else {
        return Ok(None);
    };
    value
        .parse()
        .map(Some)
        .map_err(|e: crate::mode::UnknownMode| FieldError::new(field(MODE_LABEL), e.to_string()))
}

/// The waypoint the `braid.dev/waypoint` label asks for; `None` when absent.
pub(super) fn waypoint(labels: Option<&Labels>) -> Result<Option<Waypoint<'_>>, FieldError> {
    let Some(value) = labels.and_then(|l| l.get(WAYPOINT_LABEL)) else {
        return Ok(None);
    };
    if value == "none" {
        return Ok(Some(Waypoint::Disabled));
    }
    // The value names a Gateway, so it must be a valid object name.
    syntax::dns_subdomain(value).map_err(|msg| {
        FieldError::new(
            field(WAYPOINT_LABEL),
            format!("{msg}; or write \"none\" for no waypoint"),
        )
    })?;
    Ok(Some(Waypoint::Named(value)))
}

/// The Namespace's mode, or `None` when its label is absent or invalid.
pub(super) fn namespace_mode(namespace: Option<&Namespace>) -> Option<DataPlaneMode> {
    let labels = namespace.and_then(|ns| ns.metadata.labels.as_ref());
    mode(labels).ok().flatten()
}

/// The Namespace's waypoint choice, or `None` when its label is absent or
/// invalid.
pub(super) fn namespace_waypoint(namespace: Option<&Namespace>) -> Option<Waypoint<'_>> {
    let labels = namespace.and_then(|ns| ns.metadata.labels.as_ref());
    waypoint(labels).ok().flatten()
}

/// See [`super::validate_namespace`].
pub(super) fn validate_namespace(namespace: &Namespace) -> Result<(), FieldError> {
    let labels = namespace.metadata.labels.as_ref();
    mode(labels)?;
    waypoint(labels)?;
    Ok(())
}

#[cfg(test)]
mod tests;
