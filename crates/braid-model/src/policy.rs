//! L4 authorization policies: the resource ([`AuthorizationPolicy`]) and its
//! evaluation for one connection ([`authorize`], in `evaluate.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod evaluate;

pub use evaluate::{ConnectionAttrs, Decision, DenyReason, DestinationWorkload, Peer, authorize};

/// An L4 authorization policy, scoped to one namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationPolicy {
    /// Policy name.
    pub name: String,
    /// Namespace it applies in.
    pub namespace: String,
    /// Pod labels selecting the workloads; `None` selects the whole namespace.
    pub selector: Option<BTreeMap<String, String>>,
    /// Allow or deny matching connections.
    pub action: Action,
    /// The policy matches when any rule matches. An ALLOW with no rules matches
    /// nothing, so it denies everything to the selected workloads.
    pub rules: Vec<Rule>,
}

/// What a matching policy does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Allow matching connections (and, once any ALLOW applies, only those).
    #[default]
    Allow,
    /// Deny matching connections; DENY wins over ALLOW.
    Deny,
}

/// One rule: matches when every non-empty field matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Source SPIFFE IDs.
    pub source_principals: Vec<String>,
    /// Source namespaces.
    pub source_namespaces: Vec<String>,
    /// Destination ports.
    pub destination_ports: Vec<u16>,
}

/// Whether `selector` (`None`: the whole namespace) selects a workload with
/// `labels`: every selector label is present with the same value. Shared by
/// every namespaced policy kind, so they all select alike.
pub(crate) fn selects(
    selector: Option<&BTreeMap<String, String>>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}
