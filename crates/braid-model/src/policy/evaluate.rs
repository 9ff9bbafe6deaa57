//! Evaluating [`AuthorizationPolicy`]s for one new inbound connection.
//!
//! The data plane (ztunnel and sidecar) calls [`authorize`] once per accepted
//! connection, so it is allocation-free: the attributes and the decision
//! borrow from the caller and from the policies.

use std::{collections::BTreeMap, fmt};

use super::{Action, AuthorizationPolicy, Rule, selects};

/// What L4 policy looks at on a new inbound connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionAttrs<'a> {
    /// The authenticated peer; `None` for a plaintext (unauthenticated)
    /// connection. A rule that names source principals or namespaces never
    /// matches a plaintext connection.
    pub source: Option<Peer<'a>>,
    /// The port the connection is for on the destination workload.
    pub destination_port: u16,
    /// The workload the connection is for.
    pub destination: DestinationWorkload<'a>,
}

/// An authenticated peer, from its mTLS certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer<'a> {
    /// The peer's SPIFFE ID, e.g. `spiffe://cluster.local/ns/shop/sa/web`.
    pub principal: &'a str,
    /// The peer's namespace (the `ns` segment of its SPIFFE ID).
    pub namespace: &'a str,
}

/// The destination workload of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestinationWorkload<'a> {
    /// Its namespace: only policies of this namespace apply.
    pub namespace: &'a str,
    /// Its (pod) labels, matched against policy selectors.
    pub labels: &'a BTreeMap<String, String>,
}

/// The outcome of [`authorize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision<'p> {
    /// The connection may proceed.
    Allow,
    /// The connection must be refused, and why (for logs and metrics).
    Deny(DenyReason<'p>),
}

/// Why a connection was denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason<'p> {
    /// A DENY policy that applies to the destination matched.
    DenyPolicy {
        /// The policy's namespace.
        namespace: &'p str,
        /// The policy's name.
        name: &'p str,
    },
    /// ALLOW policies apply to the destination and none matched (this
    /// includes an ALLOW policy without rules, which matches nothing).
    NoAllowMatched,
}

/// Decides whether a new connection may reach its destination workload.
///
/// * A policy applies when it is in the destination's namespace and has no
///   selector or a selector whose labels the workload all carries.
/// * **DENY wins**: any applicable DENY policy with a matching rule denies,
///   whatever the ALLOW policies say. When several match, the first in
///   iteration order is reported.
/// * **ALLOW is exclusive**: once any ALLOW policy applies, the connection
///   must match a rule of one of them. An ALLOW policy without rules matches
///   nothing, so on its own it denies everything.
/// * No applicable policy: allow.
///
/// A rule matches when every non-empty field matches (see [`Rule`]); a
/// policy matches when any of its rules does.
pub fn authorize<'p>(
    policies: impl IntoIterator<Item = &'p AuthorizationPolicy>,
    conn: &ConnectionAttrs<'_>,
) -> Decision<'p> {
    let mut allow_applies = false;
    let mut allow_matched = false;
    for policy in policies.into_iter().filter(|p| applies(p, conn)) {
        let matched = policy.rules.iter().any(|r| rule_matches(r, conn));
        match policy.action {
            Action::Deny if matched => {
                return Decision::Deny(DenyReason::DenyPolicy {
                    namespace: &policy.namespace,
                    name: &policy.name,
                });
            }
            Action::Deny => {}
            Action::Allow => {
                allow_applies = true;
                allow_matched |= matched;
            }
        }
    }
    if allow_applies && !allow_matched {
        Decision::Deny(DenyReason::NoAllowMatched)
    } else {
        Decision::Allow
    }
}

fn applies(policy: &AuthorizationPolicy, conn: &ConnectionAttrs<'_>) -> bool {
    policy.namespace == conn.destination.namespace
        && selects(policy.selector.as_ref(), conn.destination.labels)
}

fn rule_matches(rule: &Rule, conn: &ConnectionAttrs<'_>) -> bool {
    let ports = &rule.destination_ports;
    if !ports.is_empty() && !ports.contains(&conn.destination_port) {
        return false;
    }
    if rule.source_principals.is_empty() && rule.source_namespaces.is_empty() {
        return true;
    }
    // Source conditions need an authenticated peer: a plaintext connection
    // must never pass (or dodge) them by having no identity to compare.
    let Some(peer) = conn.source else {
        return false;
    };
    let principals = &rule.source_principals;
    let namespaces = &rule.source_namespaces;
    (principals.is_empty()
        || principals
            .iter()
            .any(|p| principal_matches(p, peer.principal)))
        && (namespaces.is_empty() || namespaces.iter().any(|n| n == peer.namespace))
}

/// `*` matches any principal, `*suffix` and `prefix*` match by suffix and
/// prefix, anything else must be equal.
fn principal_matches(pattern: &str, principal: &str) -> bool {
    if let Some(suffix) = pattern.strip_prefix('*') {
        principal.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        principal.starts_with(prefix)
    } else {
        pattern == principal
    }
}

// === impl Peer ===

impl<'a> Peer<'a> {
    /// The peer named by a SPIFFE ID of the form
    /// `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`;
    /// `None` when `principal` has another shape (such a peer cannot be
    /// placed in a namespace, so the caller should treat it as
    /// unauthenticated).
    pub fn from_spiffe_id(principal: &'a str) -> Option<Self> {
        let rest = principal.strip_prefix("spiffe://")?;
        let mut segments = rest.split('/');
        match (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) {
            (Some(td), Some("ns"), Some(namespace), Some("sa"), Some(sa), None)
                if !td.is_empty() && !namespace.is_empty() && !sa.is_empty() =>
            {
                Some(Self {
                    principal,
                    namespace,
                })
            }
            _ => None,
        }
    }
}

// === impl Decision ===

impl Decision<'_> {
    /// Whether the connection may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow)
    }
}

// === impl DenyReason ===

impl fmt::Display for DenyReason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DenyPolicy { namespace, name } => {
                write!(f, "denied by DENY policy {namespace}/{name}")
            }
            Self::NoAllowMatched => f.write_str("no ALLOW policy matched"),
        }
    }
}

#[cfg(test)]
mod tests;
