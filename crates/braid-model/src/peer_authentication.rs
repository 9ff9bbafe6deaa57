//! Peer authentication: whether workloads accept plaintext connections
//! (PERMISSIVE) or only mutual TLS (STRICT), and which policy decides that
//! for a workload ([`effective_mtls_mode`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::selects;

/// The namespace whose selector-less PeerAuthentication applies to the whole
/// mesh, unless configured otherwise.
pub const DEFAULT_ROOT_NAMESPACE: &str = "braid-system";

/// The mTLS mode of the workloads a policy selects, scoped to one namespace
/// (or, without a selector in the root namespace, to the whole mesh).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAuthentication {
    /// Policy name.
    pub name: String,
    /// Namespace it applies in.
    pub namespace: String,
    /// Pod labels selecting the workloads; `None` selects the whole namespace
    /// (the whole mesh in the root namespace).
    pub selector: Option<BTreeMap<String, String>>,
    /// The mode of the selected workloads.
    pub mode: MtlsMode,
}

/// Whether a workload accepts plaintext connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MtlsMode {
    /// Only mutual TLS; plaintext connections are refused.
    Strict,
    /// Mutual TLS and plaintext are both accepted (the default, so that
    /// workloads outside the mesh keep working during a migration).
    #[default]
    Permissive,
}

/// How specifically a policy applies to a workload; higher wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    /// No selector, in the root namespace.
    Mesh,
    /// No selector, in the workload's namespace.
    Namespace,
    /// A selector matching the workload, in the workload's namespace.
    Workload,
}

/// The policy that decides the mTLS mode of a workload in `namespace` with
/// `labels`, or `None` when none applies.
///
/// Precedence: a policy with a selector matching the workload in its
/// namespace beats a selector-less policy in its namespace, which beats a
/// selector-less policy in `root_namespace` (mesh-wide). A policy with a
/// selector applies only in its own namespace, even in the root namespace.
/// An empty selector counts as none.
///
/// Among policies of the same precedence the lexicographically first name
/// wins: the model has no creation timestamps (Istio picks the oldest), and
/// a name-based rule gives every proxy and every restart the same answer.
pub fn effective_peer_authentication<'p>(
    policies: impl IntoIterator<Item = &'p PeerAuthentication>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    root_namespace: &str,
) -> Option<&'p PeerAuthentication> {
    policies
        .into_iter()
        .filter_map(|p| level(p, namespace, labels, root_namespace).map(|l| (l, p)))
        // Highest level, then smallest name.
        .min_by(|(la, a), (lb, b)| lb.cmp(la).then_with(|| a.name.cmp(&b.name)))
        .map(|(_, p)| p)
}

/// The mTLS mode of a workload in `namespace` with `labels`: the mode of
/// [`effective_peer_authentication`], or [`MtlsMode::Permissive`] when no
/// policy applies.
pub fn effective_mtls_mode<'p>(
    policies: impl IntoIterator<Item = &'p PeerAuthentication>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    root_namespace: &str,
) -> MtlsMode {
    effective_peer_authentication(policies, namespace, labels, root_namespace)
        .map(|p| p.mode)
        .unwrap_or_default()
}

fn level(
    policy: &PeerAuthentication,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    root_namespace: &str,
) -> Option<Level> {
    let selector = policy.selector.as_ref().filter(|s| !s.is_empty());
    match selector {
        Some(_) if policy.namespace == namespace => {
            selects(selector, labels).then_some(Level::Workload)
        }
        Some(_) => None,
        None if policy.namespace == namespace => Some(Level::Namespace),
        None if policy.namespace == root_namespace => Some(Level::Mesh),
        None => None,
    }
}

// === impl MtlsMode ===

impl MtlsMode {
    /// Whether plaintext connections are accepted.
    pub fn allows_plaintext(self) -> bool {
        self == Self::Permissive
    }
}

#[cfg(test)]
mod tests;
