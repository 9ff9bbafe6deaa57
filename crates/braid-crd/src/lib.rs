//! Braid's Kubernetes CustomResourceDefinitions: the Rust types behind the
//! `braid.dev` API group (derived with `kube`'s `CustomResource`), and their
//! conversion into the domain model of `braid-model`.
//!
//! The YAML under `manifests/crds/` is generated from [`all_crds`] by
//! `cargo xtask codegen`; edit the types here, never that YAML.
//!
//! This crate is types and pure conversions only: no Kubernetes client, no
//! watchers, no status writing (the control plane does those). The CRD schema
//! validates what the API server can check cheaply (enums, port ranges, the
//! shape of principals); [`TryFrom`] into the model is the complete check,
//! and it is what the file source relies on, since no API server sees those
//! documents.
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
mod tests {
    use super::*;

    #[test]
    fn crd_names_and_scope() {
        let crds = all_crds();
        let [authorization, peer] = crds.as_slice() else {
            panic!("expected two CRDs, got {}", crds.len());
        };
        for (crd, name, short, column) in [
            (
                authorization,
                "authorizationpolicies.braid.dev",
                "bap",
                "Action",
            ),
            (peer, "peerauthentications.braid.dev", "bpa", "Mode"),
        ] {
            assert_eq!(crd.metadata.name.as_deref(), Some(name));
            assert_eq!(crd.spec.group, GROUP);
            assert_eq!(crd.spec.scope, "Namespaced");
            assert_eq!(crd.spec.names.short_names, Some(vec![short.to_string()]));
            assert_eq!(crd.spec.names.categories, Some(vec!["braid".to_string()]));
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, "v1alpha1");
            let columns: Vec<_> = version
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.name.as_str())
                .collect();
            assert_eq!(columns, [column, "Age"], "{name}");
            let subresources = version.subresources.as_ref().expect("subresources");
            assert!(subresources.status.is_some());
        }
    }

    #[test]
    fn peer_authentication_schema_carries_validation() {
        let crd = PeerAuthentication::crd();
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema");
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["required"], serde_json::json!(["mtls"]));
        let mtls = &spec["properties"]["mtls"];
        assert_eq!(mtls["required"], serde_json::json!(["mode"]));
        let mode = &mtls["properties"]["mode"];
        assert_eq!(mode["enum"], serde_json::json!(["STRICT", "PERMISSIVE"]));
        assert_eq!(mode.get("default"), None, "the mode is always explicit");
        let columns = &crd.spec.versions[0].additional_printer_columns;
        let mode_column = columns.iter().flatten().find(|c| c.name == "Mode");
        assert_eq!(
            mode_column.map(|c| c.json_path.as_str()),
            Some(".spec.mtls.mode")
        );
    }

    #[test]
    fn schema_carries_validation() {
        let crd = AuthorizationPolicy::crd();
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema");
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(spec["action"]["enum"], serde_json::json!(["ALLOW", "DENY"]));
        assert_eq!(spec["action"]["default"], "ALLOW");
        let rule = &spec["rules"]["items"]["properties"];
        let ports = &rule["to"]["properties"]["ports"]["items"];
        assert_eq!(ports["minimum"].as_f64(), Some(1.0));
        assert_eq!(ports["maximum"].as_f64(), Some(65535.0));
        let principals = &rule["from"]["properties"]["principals"]["items"];
        assert!(principals["pattern"].is_string(), "{principals}");
    }
}
