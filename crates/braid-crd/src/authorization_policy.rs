//! `AuthorizationPolicy` (`braid.dev/v1alpha1`): L4 allow/deny rules for the
//! workloads of one namespace.
//!
//! Doc comments on the spec types become the field descriptions of the
//! generated CRD schema (and so `kubectl explain`), so they are written for
//! users.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    limits::{
        FROM_NOT_EMPTY_MESSAGE, FROM_NOT_EMPTY_RULE, MAX_NAMESPACE_LENGTH, MAX_PRINCIPAL_LENGTH,
        MAX_RULE_ENTRIES, MAX_RULES, NAMESPACE_PATTERN, PRINCIPAL_PATTERN, TO_NOT_EMPTY_MESSAGE,
        TO_NOT_EMPTY_RULE,
    },
    selector::WorkloadSelector,
};

mod convert;

/// The desired state of an AuthorizationPolicy.
// Two printer columns share `type_ = "string"`, which clippy mistakes for a
// repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "braid.dev",
    version = "v1alpha1",
    kind = "AuthorizationPolicy",
    namespaced,
    shortname = "bap",
    category = "braid",
    status = "AuthorizationPolicyStatus",
    derive = "PartialEq",
    doc = "AuthorizationPolicy allows or denies connections to the workloads of a namespace, by source identity, source namespace and destination port.",
    printcolumn(name = "Action", type_ = "string", json_path = ".spec.action"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Accepted")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicySpec {
    /// Selects the workloads (pods) of this namespace the policy applies to.
    /// When absent, the policy applies to every workload in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,

    /// What to do with connections that match a rule: ALLOW (the default) or
    /// DENY. DENY policies are evaluated first and win; once any ALLOW policy
    /// selects a workload, only connections matching some ALLOW rule reach it.
    #[serde(default)]
    pub action: Action,

    /// The policy matches a connection when any rule matches. An ALLOW policy
    /// without rules matches nothing, so it denies every connection to the
    /// selected workloads. At most 64 rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_RULES))]
    pub rules: Vec<Rule>,
}

/// What a policy does with the connections its rules match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    /// Allow matching connections (and, once any ALLOW policy selects a
    /// workload, only those).
    #[default]
    Allow,
    /// Deny matching connections; DENY wins over ALLOW.
    Deny,
}

/// One rule. It matches a connection when every field that is set matches;
/// a rule with neither `from` nor `to` matches every connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Where the connection comes from. Absent: from anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Source>,

    /// Where the connection goes to on the selected workloads. Absent: any port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Destination>,
}

/// The source of a connection: at least one of principals and namespaces.
/// Matches when every non-empty list has an entry matching the connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": FROM_NOT_EMPTY_RULE,
    "message": FROM_NOT_EMPTY_MESSAGE,
}]))]
pub struct Source {
    /// Peer identities (from the mTLS certificate), each
    /// `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`, or with
    /// one `*` wildcard at the start or end (`spiffe://cluster.local/ns/shop/*`,
    /// `*/sa/web`), or exactly `*` for any authenticated peer. At most 64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = MAX_RULE_ENTRIES),
        inner(pattern(PRINCIPAL_PATTERN), length(max = MAX_PRINCIPAL_LENGTH))
    )]
    pub principals: Vec<String>,

    /// Namespaces of the peer workloads (namespace names, no wildcards).
    /// At most 64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = MAX_RULE_ENTRIES),
        inner(pattern(NAMESPACE_PATTERN), length(max = MAX_NAMESPACE_LENGTH))
    )]
    pub namespaces: Vec<String>,
}

/// The destination of a connection on a selected workload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": TO_NOT_EMPTY_RULE,
    "message": TO_NOT_EMPTY_MESSAGE,
}]))]
pub struct Destination {
    /// Destination (container) ports, 1-65535; at least one, at most 64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_RULE_ENTRIES), inner(range(min = 1, max = 65535)))]
    pub ports: Vec<i32>,
}

/// The observed state of an AuthorizationPolicy, written by the control plane.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicyStatus {
    /// The `metadata.generation` the control plane last judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current conditions. `Accepted` is True when the policy is enforced, and
    /// False with reason `Invalid` and a message naming the offending field
    /// when it is not. Each condition's observedGeneration says which
    /// `metadata.generation` it describes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["type"]
    ))]
    pub conditions: Vec<Condition>,
}

// === impl Action ===

impl From<Action> for braid_model::Action {
    fn from(action: Action) -> Self {
        match action {
            Action::Allow => Self::Allow,
            Action::Deny => Self::Deny,
        }
    }
}

#[cfg(test)]
mod tests;
