//! Braid's Kubernetes CustomResourceDefinitions: the Rust types behind the
//! `braid.dev` API group (derived with `kube`'s `CustomResource`), and their
//! conversion into the domain model of `braid-model`; also the conversion of
//! Gateway API `HTTPRoute`s ([`httproute`], types from the `gateway-api`
//! crate, whose upstream CRDs are installed as they are).
//!
//! The YAML under `manifests/crds/` is generated from [`all_crds`] by
//! `cargo xtask codegen`; edit the types here, never that YAML.
//!
//! This crate is types and pure conversions only: no Kubernetes client, no
//! watchers, no status writing (the control plane does those). The CRD schema
//! validates what the API server can check cheaply (enums, port ranges,
//! principal and namespace syntax, list lengths, and CEL rules that refuse an
//! empty `from` or `to`); [`TryFrom`] into the model is the complete check,
//! and it is what the file source relies on, since no API server sees those
//! documents. The limits and patterns both use live in one module, so the
//! two never disagree about a principal, a namespace name or a list length.
//!
//! ```
//! use braid_crd::AuthorizationPolicy;
//!
//! let yaml = r#"
//! apiVersion: braid.dev/v1alpha1
//! kind: AuthorizationPolicy
//! metadata: {name: web-ingress, namespace: shop}
//! spec:
//!   selector: {matchLabels: {app: web}}
//!   rules:
//!   - from: {namespaces: [shop]}
//!     to: {ports: [8080]}
//! "#;
//! let crd: AuthorizationPolicy = serde_yaml_ng::from_str(yaml).unwrap();
//! let policy = braid_model::AuthorizationPolicy::try_from(&crd).unwrap();
//! assert_eq!(policy.rules[0].destination_ports, [8080]);
//! ```

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

mod authorization_policy;
pub mod gateway;
pub mod httproute;
mod limits;
mod peer_authentication;
mod selector;

pub use authorization_policy::{
    Action, AuthorizationPolicy, AuthorizationPolicySpec, AuthorizationPolicyStatus, Destination,
    Rule, Source,
};
pub use peer_authentication::{
    MtlsMode, MutualTls, PeerAuthentication, PeerAuthenticationSpec, PeerAuthenticationStatus,
};
pub use selector::WorkloadSelector;

/// The API group of every Braid CRD.
pub const GROUP: &str = "braid.dev";

/// The namespace a namespaced object is in when its metadata names none (the
/// `kubectl apply` and file-source convention).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Condition types and reasons the control plane writes into `status.conditions`.
///
/// Conditions are standard `metav1.Condition`s, so `kubectl wait
/// --for=condition=Accepted` works.
pub mod condition {
    /// Condition type: whether the control plane accepted the object. Status
    /// `True` with reason [`ACCEPTED`], or `False` with reason [`INVALID`]
    /// and a message naming the offending field.
    pub const TYPE_ACCEPTED: &str = "Accepted";
    /// Reason: the object was translated and is being enforced.
    pub const ACCEPTED: &str = "Accepted";
    /// Reason: the object failed validation and is ignored.
    pub const INVALID: &str = "Invalid";
}

/// Every CRD this crate defines, in a stable order; `cargo xtask codegen`
/// writes one `manifests/crds/<plural>.<group>.yaml` per entry.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![AuthorizationPolicy::crd(), PeerAuthentication::crd()]
}

#[cfg(test)]
mod tests;
