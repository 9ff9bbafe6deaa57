//! Gateway API `HTTPRoute` (`gateway.networking.k8s.io/v1`) →
//! [`braid_model::HttpRoute`], with the specification's defaults filled in
//! and its condition reasons attached to every problem.
//!
//! The Gateway API types come from the `gateway-api` crate. That crate is
//! built on an older kube/k8s-openapi than Braid, so only its *spec*
//! structs are used, through serde ([`spec_from_json`]); the object's
//! metadata is Braid's own k8s-openapi `ObjectMeta`. Never use the crate's
//! kube `Resource` impls with our kube.
//!
//! Two kinds of problems, as the specification separates them:
//! * [`RouteError`]: the route cannot be accepted at all (`Accepted=False`,
//!   reason `UnsupportedValue`): a filter Braid does not implement, a
//!   regular expression that does not compile, an invalid header name. The
//!   control plane keeps the route's last good version serving.
//! * [`BackendProblem`]: one reference does not resolve (`ResolvedRefs=False`
//!   with `InvalidKind`, `RefNotPermitted`, or `BackendNotFound` once the
//!   index looked the Service up). The route is still served; that backend
//!   carries [`braid_model::route::Backend::invalid`] (requests that pick it
//!   get 500), and a mirror to it is dropped.

use std::fmt;

use braid_model::HttpRoute;
use gateway_api::apis::standard::httproutes::HttpRouteSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

mod convert;
mod filters;

/// The API group of Gateway API objects.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Condition types and reasons of route status (Gateway API names).
pub mod condition {
    /// Condition type: whether the route was accepted by its parent.
    pub const TYPE_ACCEPTED: &str = "Accepted";
    /// Condition type: whether every reference of the route resolved.
    pub const TYPE_RESOLVED_REFS: &str = "ResolvedRefs";
}

/// Why a route is not accepted (`Accepted=False`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum NotAccepted {
    /// A field holds a value Braid does not support or that is invalid.
    UnsupportedValue,
}

/// Why a reference does not resolve (`ResolvedRefs=False`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Unresolved {
    /// The reference is not to a core `Service`.
    InvalidKind,
    /// No such Service, or it has no such port.
    BackendNotFound,
    /// The reference crosses namespaces, which needs a ReferenceGrant
    /// (not supported yet).
    RefNotPermitted,
}

/// A route that cannot be accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RouteError {
    /// Field path, e.g. `spec.rules[1].filters[0].type`.
    pub field: String,
    /// The `Accepted=False` reason.
    pub reason: NotAccepted,
    /// What is wrong and what to do.
    pub message: String,
}

/// One reference of an accepted route that does not resolve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}: {message}")]
pub struct BackendProblem {
    /// Field path, e.g. `spec.rules[0].backendRefs[1]`.
    pub field: String,
    /// The `ResolvedRefs=False` reason.
    pub reason: Unresolved,
    /// What is wrong and what to do.
    pub message: String,
}

/// Where in the converted route a Service reference sits, so that the
/// index can mark it unresolved once it has looked the Service up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefAt {
    /// `rules[rule].backends[backend]`.
    Backend {
        /// Rule index.
        rule: usize,
        /// Backend index (the same as in `backendRefs`).
        backend: usize,
    },
    /// A mirror filter: `rules[rule].filters[filter]`, or with `backend`,
    /// `rules[rule].backends[backend].filters[filter]` (model indices).
    Mirror {
        /// Rule index.
        rule: usize,
        /// The backend whose filter it is; `None` for a rule filter.
        backend: Option<usize>,
        /// Filter index in the model.
        filter: usize,
    },
}

/// A Service reference of the converted route still to be looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRef {
    /// Where it is in the route.
    pub at: RefAt,
    /// Its field path in the object (`spec.rules[0].backendRefs[1]`).
    pub field: String,
}

/// An accepted route: the model, the references that already failed to
/// resolve, and those the index must look up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertedRoute {
    /// The route as proxies get it (before Service lookups).
    pub route: HttpRoute,
    /// References that cannot resolve whatever Services exist.
    pub problems: Vec<BackendProblem>,
    /// Same-namespace Service references, to check against known Services.
    pub refs: Vec<PendingRef>,
}

/// Reads an HTTPRoute's `spec` (JSON, as the API server or a YAML file has
/// it) into the Gateway API types. A value the types do not know (an
/// unknown filter type, a path type, a method) is `UnsupportedValue`, as
/// the specification asks, with the field that holds it.
pub fn spec_from_json(spec: serde_json::Value) -> Result<HttpRouteSpec, RouteError> {
    // serde would read a list as the struct's fields in order.
    if !spec.is_object() {
        return Err(RouteError::unsupported(
            "spec",
            "invalid type: must be a mapping (spec: {parentRefs: ..., rules: ...})",
        ));
    }
    serde_path_to_error::deserialize(spec).map_err(|e| {
        let path = e.path().to_string();
        let field = match path.as_str() {
            "." => "spec".to_string(),
            _ => format!("spec.{path}"),
        };
        RouteError {
            field,
            reason: NotAccepted::UnsupportedValue,
            message: format!(
                "{}; see the Gateway API HTTPRoute reference",
                e.into_inner()
            ),
        }
    })
}

/// Translates an HTTPRoute (its metadata and spec) into the model, filling
/// in the Gateway API defaults. A missing namespace means `default`.
pub fn http_route(
    metadata: &ObjectMeta,
    spec: &HttpRouteSpec,
) -> Result<ConvertedRoute, RouteError> {
    convert::route(metadata, spec)
}

// === impl NotAccepted ===

impl NotAccepted {
    /// The reason as written in a condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnsupportedValue => "UnsupportedValue",
        }
    }
}

impl fmt::Display for NotAccepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Unresolved ===

impl Unresolved {
    /// The reason as written in a condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidKind => "InvalidKind",
            Self::BackendNotFound => "BackendNotFound",
            Self::RefNotPermitted => "RefNotPermitted",
        }
    }
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl RouteError ===

impl RouteError {
    pub(crate) fn unsupported(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: NotAccepted::UnsupportedValue,
            message: message.into(),
        }
    }
}

impl From<RouteError> for braid_model::k8s::FieldError {
    /// For callers that report field errors: the reason leads the message.
    fn from(e: RouteError) -> Self {
        Self::new(e.field, format!("{}: {}", e.reason, e.message))
    }
}

// === impl BackendProblem ===

impl BackendProblem {
    /// What a backend that has this problem carries as its
    /// [`invalid`](braid_model::route::Backend::invalid) reason.
    pub fn invalid_reason(&self) -> String {
        format!("{}: {}", self.reason, self.message)
    }
}

#[cfg(test)]
mod tests;
