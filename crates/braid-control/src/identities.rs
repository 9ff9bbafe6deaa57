//! Who may hold which identity: the view the certificate service checks a
//! request against. Built by the index from pods, their namespaces' modes
//! and proxy tokens, published next to the xDS snapshot.
//!
//! Rules, in this order:
//! * the identities of the mesh's own components ([`RESERVED`]) are never
//!   issued, whoever asks: every proxy, CNI agent and braidctl authenticates
//!   the control plane by its identity, so a holder of it could serve
//!   configuration and policy to the whole mesh. The control plane issues
//!   its own certificate from its CA directly, never through `Sign`;
//! * only identities of meshed pods are issued ([`is_meshed`]);
//! * a node proxy (ztunnel) may get the identity of any service account
//!   with a meshed pod scheduled on its node; a sidecar only its own pod's.

use std::collections::HashMap;

use braid_identity::SpiffeId;
use braid_model::{DataPlaneMode, k8s::PodInfo};

use crate::source::token::{Principal, ProxyToken};

/// A ServiceAccount of one of the mesh's own components.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservedAccount {
    /// Its namespace.
    pub namespace: &'static str,
    /// Its name.
    pub service_account: &'static str,
    /// What runs as it, for the refusal.
    pub component: &'static str,
}

/// The accounts of the mesh's components (those of `manifests/install`):
/// their identities are never issued through `CertificateService.Sign`,
/// whatever pod runs as them and whoever asks.
pub const RESERVED: &[ReservedAccount] = &[
    // `SpiffeId::control_plane`: what proxies, agents and braidctl expect
    // the control plane to present (a unit test keeps the two equal).
    ReservedAccount {
        namespace: "braid-system",
        service_account: "braid-control",
        component: "the control plane",
    },
    // The node DaemonSet. Nothing authenticates it by identity today; kept
    // out of reach so a future check on it cannot be satisfied by a node's
    // token.
    ReservedAccount {
        namespace: "braid-system",
        service_account: "braid-node",
        component: "the node agent and ztunnel",
    },
];

/// Tokens, pods and what runs on each node.
#[derive(Debug, Default)]
pub struct Identities {
    tokens: HashMap<String, Principal>,
    /// (namespace, pod) -> the pod; unmeshed pods too, since the node
    /// proxies' own pods (never meshed) scope their TokenReview principal.
    pods: HashMap<(String, String), PodEntry>,
    /// node -> (namespace, service account) of its pods -> whether one of
    /// those pods is meshed.
    nodes: HashMap<String, HashMap<(String, String), bool>>,
}

/// What the view keeps of a pod.
#[derive(Debug)]
struct PodEntry {
    service_account: String,
    node: String,
    meshed: bool,
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
    /// The identity belongs to one of the mesh's own components.
    #[error(
        "{principal} may not get {id}: this identity is reserved for {component} and is never issued through CertificateService.Sign; run workloads under a ServiceAccount of their own"
    )]
    Reserved {
        /// Who asked.
        principal: String,
        /// What was asked for.
        id: String,
        /// What the identity is reserved for.
        component: &'static str,
    },
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
    /// The pods that run as the identity are not in the mesh.
    #[error(
        "{principal} may not get {id}: {pods} not in the mesh (mode none and no braid-proxy sidecar); label the pod or its namespace braid.dev/mode=ambient or sidecar"
    )]
    NotMeshed {
        /// Who asked.
        principal: String,
        /// What was asked for.
        id: String,
        /// Which pods, with the verb: "pod shop/web-0 is", "the pods … are".
        pods: String,
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

/// The reserved account `id` names, if any (in any trust domain).
pub fn reserved(id: &SpiffeId) -> Option<&'static ReservedAccount> {
    RESERVED
        .iter()
        .find(|r| r.namespace == id.namespace() && r.service_account == id.service_account())
}

/// Whether `pod` is in the mesh, given its namespace's `braid.dev/mode`
/// label: its effective mode (the pod's label, else the namespace's, else
/// none) is sidecar or ambient, or it still runs a braid-proxy sidecar
/// (actual mode sidecar, as `modes::actual_mode` says). The latter keeps a
/// pod whose namespace switched to none renewing its certificate until it
/// is re-created: its sidecar still captures its traffic, and it would
/// fail before the restart the mode status asks for. An injected pod
/// carries the container from its creation, so it is meshed from its
/// first request.
pub fn is_meshed(pod: &PodInfo, namespace_mode: Option<DataPlaneMode>) -> bool {
    let effective = pod.mode().or(namespace_mode).unwrap_or_default();
    effective != DataPlaneMode::None || pod.has_sidecar()
}

// === impl Identities ===

impl Identities {
    /// Builds the view from every pod with its namespace's mode label
    /// (`None`: no label, or no Namespace object) and every proxy token.
    pub fn new<'a>(
        pods: impl Iterator<Item = (&'a PodInfo, Option<DataPlaneMode>)>,
        tokens: impl Iterator<Item = &'a ProxyToken>,
    ) -> Self {
        let mut view = Self::default();
        for (pod, namespace_mode) in pods {
            let meshed = is_meshed(pod, namespace_mode);
            let (ns, sa) = (
                pod.namespace().to_string(),
                pod.service_account().to_string(),
            );
            if !pod.node().is_empty() {
                *view
                    .nodes
                    .entry(pod.node().to_string())
                    .or_default()
                    .entry((ns.clone(), sa.clone()))
                    .or_default() |= meshed;
            }
            view.pods.insert(
                (ns, pod.name().to_string()),
                PodEntry {
                    service_account: sa,
                    node: pod.node().to_string(),
                    meshed,
                },
            );
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

    /// The node `namespace/pod` is scheduled on, if known and scheduled
    /// (meshed or not).
    pub fn pod_node(&self, namespace: &str, pod: &str) -> Option<String> {
        self.pods
            .get(&(namespace.to_string(), pod.to_string()))
            .map(|entry| entry.node.clone())
            .filter(|node| !node.is_empty())
    }

    /// Checks that `principal` may get `id`.
    pub fn authorize_principal(
        &self,
        principal: &Principal,
        id: &SpiffeId,
    ) -> Result<Principal, Refusal> {
        if let Some(reserved) = reserved(id) {
            return Err(Refusal::Reserved {
                principal: principal.to_string(),
                id: id.to_string(),
                component: reserved.component,
            });
        }
        let wanted = (id.namespace().to_string(), id.service_account().to_string());
        let not_meshed = |pods: String| Refusal::NotMeshed {
            principal: principal.to_string(),
            id: id.to_string(),
            pods,
        };
        match principal {
            Principal::Node(node) => match self.nodes.get(node).and_then(|a| a.get(&wanted)) {
                Some(true) => Ok(principal.clone()),
                Some(false) => Err(not_meshed(format!(
                    "the pods with service account {:?} in namespace {:?} on that node are",
                    wanted.1, wanted.0
                ))),
                None => Err(Refusal::NotOnNode {
                    principal: principal.to_string(),
                    id: id.to_string(),
                    ns: wanted.0,
                    sa: wanted.1,
                }),
            },
            Principal::Pod { namespace, name } => {
                match self.pods.get(&(namespace.clone(), name.clone())) {
                    Some(pod) if *namespace == wanted.0 && pod.service_account == wanted.1 => {
                        if pod.meshed {
                            Ok(principal.clone())
                        } else {
                            Err(not_meshed(format!("pod {namespace}/{name} is")))
                        }
                    }
                    found => Err(Refusal::NotItsPod {
                        principal: principal.to_string(),
                        id: id.to_string(),
                        actual: found.map_or_else(
                            || "no such pod".to_string(),
                            |pod| format!("{namespace}/sa/{}", pod.service_account),
                        ),
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
