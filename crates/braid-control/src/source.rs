//! Configuration sources: they turn Kubernetes objects into [`Change`]s for
//! the index. Two implementations share this vocabulary: the YAML directory
//! ([`file`]) and the API server ([`kubernetes`]: kube-rs watchers).

use std::{fmt, path::PathBuf, sync::Arc};

use braid_model::k8s::PodInfo;
use k8s_openapi::api::{
    core::v1::{Namespace, Service, ServiceAccount},
    discovery::v1::EndpointSlice,
};
use serde::Serialize;

pub mod document;
pub mod file;
pub mod kubernetes;
pub mod prune;
pub mod token;

/// A Kubernetes object the control plane understands, already validated and
/// stripped to what Braid reads. Pods, by far the most numerous, are kept in
/// their compact form; the rarer kinds are boxed so every object costs only
/// what it holds.
#[derive(Clone, Debug, PartialEq)]
pub enum KubeObject {
    /// `v1 Namespace`.
    Namespace(Box<Namespace>),
    /// `v1 Pod`, as the compact [`PodInfo`].
    Pod(PodInfo),
    /// `v1 Service`.
    Service(Box<Service>),
    /// `discovery.k8s.io/v1 EndpointSlice`.
    EndpointSlice(Box<EndpointSlice>),
    /// `v1 ServiceAccount`.
    ServiceAccount(Box<ServiceAccount>),
    /// `braid.dev/v1alpha1 AuthorizationPolicy`, translated at the edge.
    AuthorizationPolicy(braid_model::AuthorizationPolicy),
    /// `braid.dev/v1alpha1 PeerAuthentication`, translated at the edge.
    PeerAuthentication(braid_model::PeerAuthentication),
    /// `v1 Secret` of type `braid.dev/proxy-token`: a proxy's credential for
    /// the certificate service.
    ProxyToken(token::ProxyToken),
    /// `gateway.networking.k8s.io/v1 HTTPRoute`, translated at the edge
    /// (the Service lookups of its backends happen in the index).
    HttpRoute(Box<braid_crd::httproute::ConvertedRoute>),
    /// `gateway.networking.k8s.io/v1 Gateway` of class `braid-waypoint`:
    /// a waypoint (Gateways of other classes are not kept).
    Gateway(Box<braid_crd::gateway::Waypoint>),
}

/// The kinds of [`KubeObject`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Kind {
    /// Namespace (cluster-scoped).
    Namespace,
    /// Pod.
    Pod,
    /// Service.
    Service,
    /// EndpointSlice.
    EndpointSlice,
    /// ServiceAccount.
    ServiceAccount,
    /// AuthorizationPolicy.
    AuthorizationPolicy,
    /// PeerAuthentication.
    PeerAuthentication,
    /// A `braid.dev/proxy-token` Secret.
    ProxyToken,
    /// Gateway API HTTPRoute.
    HttpRoute,
    /// Gateway API Gateway (waypoints).
    Gateway,
}

/// Identifies one object: kind, namespace (empty when cluster-scoped), name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectKey {
    /// Kind of the object.
    pub kind: Kind,
    /// Namespace; empty for cluster-scoped kinds.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// One change a source reports.
#[derive(Clone, Debug)]
pub enum Change {
    /// The object was created or updated.
    Apply(ObjectKey, Arc<KubeObject>),
    /// The object is gone.
    Delete(ObjectKey),
}

/// A document that could not be loaded; shown in the log and on the admin endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    /// The file (or, for other sources, the object reference).
    pub file: PathBuf,
    /// 0-based index of the YAML document in the file; `None` for file-level errors.
    pub document: Option<usize>,
    /// Field path such as `spec.ports[0].port`; empty when not field-specific.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

// === impl Kind ===

impl Kind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Namespace => "Namespace",
            Self::Pod => "Pod",
            Self::Service => "Service",
            Self::EndpointSlice => "EndpointSlice",
            Self::ServiceAccount => "ServiceAccount",
            Self::AuthorizationPolicy => "AuthorizationPolicy",
            Self::PeerAuthentication => "PeerAuthentication",
            Self::ProxyToken => "Secret",
            Self::HttpRoute => "HTTPRoute",
            Self::Gateway => "Gateway",
        }
    }
}

// === impl KubeObject ===

impl KubeObject {
    /// The pod, if this is one.
    pub fn as_pod(&self) -> Option<&PodInfo> {
        match self {
            Self::Pod(p) => Some(p),
            _ => None,
        }
    }

    /// The service, if this is one.
    pub fn as_service(&self) -> Option<&Service> {
        match self {
            Self::Service(s) => Some(s),
            _ => None,
        }
    }

    /// The EndpointSlice, if this is one.
    pub fn as_endpoint_slice(&self) -> Option<&EndpointSlice> {
        match self {
            Self::EndpointSlice(s) => Some(s),
            _ => None,
        }
    }

    /// The proxy token, if this is one.
    pub fn as_token(&self) -> Option<&token::ProxyToken> {
        match self {
            Self::ProxyToken(t) => Some(t),
            _ => None,
        }
    }

    /// The authorization policy, if this is one.
    pub fn as_policy(&self) -> Option<&braid_model::AuthorizationPolicy> {
        match self {
            Self::AuthorizationPolicy(p) => Some(p),
            _ => None,
        }
    }

    /// The peer authentication policy, if this is one.
    pub fn as_peer_authentication(&self) -> Option<&braid_model::PeerAuthentication> {
        match self {
            Self::PeerAuthentication(p) => Some(p),
            _ => None,
        }
    }

    /// The HTTP route, if this is one.
    pub fn as_http_route(&self) -> Option<&braid_crd::httproute::ConvertedRoute> {
        match self {
            Self::HttpRoute(r) => Some(r),
            _ => None,
        }
    }

    /// The waypoint Gateway, if this is one.
    pub fn as_waypoint(&self) -> Option<&braid_crd::gateway::Waypoint> {
        match self {
            Self::Gateway(w) => Some(w),
            _ => None,
        }
    }

    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Namespace(_) => Kind::Namespace,
            Self::Pod(_) => Kind::Pod,
            Self::Service(_) => Kind::Service,
            Self::EndpointSlice(_) => Kind::EndpointSlice,
            Self::ServiceAccount(_) => Kind::ServiceAccount,
            Self::AuthorizationPolicy(_) => Kind::AuthorizationPolicy,
            Self::PeerAuthentication(_) => Kind::PeerAuthentication,
            Self::ProxyToken(_) => Kind::ProxyToken,
            Self::HttpRoute(_) => Kind::HttpRoute,
            Self::Gateway(_) => Kind::Gateway,
        }
    }
}

// === impl ObjectKey ===

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind.as_str(), self.name)
        } else {
            write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
        }
    }
}

// === impl ConfigError ===

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(doc) = self.document {
            write!(f, ": document {doc}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": field {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The current configuration errors, by file; shared by the sources (which
/// write) and the admin and debug endpoints (which read).
#[derive(Clone, Debug, Default)]
pub struct ConfigErrors(
    Arc<std::sync::Mutex<std::collections::BTreeMap<PathBuf, Vec<ConfigError>>>>,
);

// === impl ConfigErrors ===

impl ConfigErrors {
    /// Replaces the errors of `file`; an empty list clears them.
    pub fn set(&self, file: &std::path::Path, errors: Vec<ConfigError>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if errors.is_empty() {
            map.remove(file);
        } else {
            map.insert(file.to_path_buf(), errors);
        }
    }

    /// The current errors of `file`.
    pub fn get(&self, file: &std::path::Path) -> Vec<ConfigError> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(file).cloned().unwrap_or_default()
    }

    /// Every current error, ordered by file and document.
    pub fn list(&self) -> Vec<ConfigError> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.values().flatten().cloned().collect()
    }
}
