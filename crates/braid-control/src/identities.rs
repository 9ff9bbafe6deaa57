//! Who may hold which identity: the view the certificate service checks a
//! request against. Built by the index from pods and proxy tokens, published
//! next to the xDS snapshot.
//!
//! Rules: a node proxy (ztunnel) may get the identity of any service account
//! with a pod scheduled on its node; a sidecar only its own pod's.

use std::collections::{HashMap, HashSet};

use braid_identity::SpiffeId;
use braid_model::k8s::PodInfo;

use crate::source::token::{Principal, ProxyToken};

/// Tokens, pods and what runs on each node.
#[derive(Debug, Default)]
pub struct Identities {
    tokens: HashMap<String, Principal>,
    /// (namespace, pod) -> (service account, node).
    pods: HashMap<(String, String), (String, String)>,
    /// node -> (namespace, service account) of its pods.
    nodes: HashMap<String, HashSet<(String, String)>>,
}

/// Why a request is refused; each says what would make it succeed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The token is not listed in any `braid.dev/proxy-token` Secret.
    #[error(
        "unknown token: list it in a Secret of type braid.dev/proxy-token in the config directory"
    )]
    UnknownToken,
    /// The API server's TokenReview did not accept the token (`--source kube`).
    #[error("{0}")]
    TokenReview(String),
    /// A node proxy asked for an identity with no pod on its node.
    #[error(
        "{principal} may not get {id}: no pod with service account {sa:?} in namespace {ns:?} is scheduled on that node"
    )]
    NotOnNode {
        /// Who asked.
        principal: String,
        /// What was asked for.
        id: String,
        /// Namespace of the identity.
        ns: String,
        /// Service account of the identity.
        sa: String,
    },
    /// A sidecar asked for an identity other than its pod's.
    #[error("{principal} may not get {id}: the pod runs as {actual}")]
    NotItsPod {
        /// Who asked.
        principal: String,
        /// What was asked for.
        id: String,
        /// The pod's own identity (`<namespace>/sa/<account>`), or "no such pod".
        actual: String,
    },
}

// === impl Identities ===

impl Identities {
    /// Builds the view.
    pub fn new<'a>(
        pods: impl Iterator<Item = &'a PodInfo>,
        tokens: impl Iterator<Item = &'a ProxyToken>,
    ) -> Self {
        let mut view = Self::default();
        for pod in pods {
            let (ns, sa) = (
                pod.namespace().to_string(),
                pod.service_account().to_string(),
            );
            view.pods.insert(
                (ns.clone(), pod.name().to_string()),
                (sa.clone(), pod.node().to_string()),
            );
            if !pod.node().is_empty() {
                view.nodes
                    .entry(pod.node().to_string())
                    .or_default()
                    .insert((ns, sa));
            }
        }
        for token in tokens {
            view.tokens
                .insert(token.token.clone(), token.principal.clone());
        }
        view
    }

    /// Checks that the holder of `token` may get `id`; returns who it is.
    pub fn authorize(&self, token: &str, id: &SpiffeId) -> Result<Principal, Refusal> {
        let principal = self.principal(token).ok_or(Refusal::UnknownToken)?;
        self.authorize_principal(principal, id)
    }

    /// Who holds `token`, if it is a known proxy token.
    pub fn principal(&self, token: &str) -> Option<&Principal> {
        self.tokens.get(token)
    }

    /// The node `namespace/pod` is scheduled on, if known and scheduled.
    pub fn pod_node(&self, namespace: &str, pod: &str) -> Option<String> {
        self.pods
            .get(&(namespace.to_string(), pod.to_string()))
            .map(|(_, node)| node.clone())
            .filter(|node| !node.is_empty())
    }

    /// Checks that `principal` may get `id`.
    pub fn authorize_principal(
        &self,
        principal: &Principal,
        id: &SpiffeId,
    ) -> Result<Principal, Refusal> {
        let wanted = (id.namespace().to_string(), id.service_account().to_string());
        match principal {
            Principal::Node(node) => {
                if self
                    .nodes
                    .get(node)
                    .is_some_and(|accounts| accounts.contains(&wanted))
                {
                    Ok(principal.clone())
                } else {
                    Err(Refusal::NotOnNode {
                        principal: principal.to_string(),
                        id: id.to_string(),
                        ns: wanted.0,
                        sa: wanted.1,
                    })
                }
            }
            Principal::Pod { namespace, name } => {
                match self.pods.get(&(namespace.clone(), name.clone())) {
                    Some((sa, _)) if *namespace == wanted.0 && *sa == wanted.1 => {
                        Ok(principal.clone())
                    }
                    found => Err(Refusal::NotItsPod {
                        principal: principal.to_string(),
                        id: id.to_string(),
                        actual: found.map_or_else(
                            || "no such pod".to_string(),
                            |(sa, _)| format!("{namespace}/sa/{sa}"),
                        ),
                    }),
                }
            }
        }
    }
}
