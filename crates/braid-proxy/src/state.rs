//! What a proxy knows about the mesh: workloads, services and policies as
//! the control plane last sent them, indexed for the data path.
//!
//! Fed by the xDS client's handlers (one delta at a time, on its task) and
//! read by every new connection; lookups take no lock across an await and
//! updates touch only the entries that changed. A connection decides with
//! the state of the moment it is accepted, so a policy change applies to
//! new connections as soon as its delta lands.

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use braid_model::{
    AuthorizationPolicy, ConnectionAttrs, DEFAULT_ROOT_NAMESPACE, Decision, DestinationWorkload,
    HttpRoute, MtlsMode, Peer, PeerAuthentication, Service, ServiceRef, Workload, WorkloadStatus,
    route::ServiceRoutes,
};
use braid_xds::Delta;
use dashmap::DashMap;

mod resolve;
mod routes;
mod waypoints;

pub use resolve::{Declared, Destination, Resolved, Waypoints};
pub use routes::Attached;

/// The proxy's view of the mesh; cheap to clone (clones share it).
#[derive(Clone, Debug, Default)]
pub struct ProxyState {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By uid (`<namespace>/<pod>`).
    workloads: DashMap<String, Arc<Workload>>,
    /// By each of a workload's addresses.
    workload_ips: DashMap<IpAddr, Arc<Workload>>,
    /// By resource name (`<namespace>/<service>`).
    services: DashMap<String, Arc<Service>>,
    /// By each of a service's virtual IPs.
    service_vips: DashMap<IpAddr, Arc<Service>>,
    /// The Services each endpoint address serves, with their waypoints.
    endpoint_services: waypoints::EndpointServices,
    /// By namespace, then resource name.
    authorizations: DashMap<String, BTreeMap<String, Arc<AuthorizationPolicy>>>,
    /// By resource name; few, and precedence spans namespaces.
    peer_authentications: DashMap<String, Arc<PeerAuthentication>>,
    /// HTTP routes by resource name (`<namespace>/<name>`).
    routes: DashMap<String, Arc<HttpRoute>>,
    /// Ordered routes by caller namespace, then (Service VIP, port); built
    /// on first use and dropped whenever a route or a Service changes.
    route_tables: DashMap<String, DashMap<(IpAddr, u16), Arc<ServiceRoutes>>>,
}

// === impl ProxyState ===

impl ProxyState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The workload with uid `<namespace>/<pod>`.
    pub fn workload(&self, uid: &str) -> Option<Arc<Workload>> {
        self.inner.workloads.get(uid).map(|w| w.clone())
    }

    /// The workload that has `ip` as one of its addresses.
    pub fn workload_by_ip(&self, ip: IpAddr) -> Option<Arc<Workload>> {
        self.inner.workload_ips.get(&ip).map(|w| w.clone())
    }

    /// The service `reference` names.
    pub fn service(&self, reference: &ServiceRef) -> Option<Arc<Service>> {
        self.inner
            .services
            .get(&reference.to_string())
            .map(|s| s.clone())
    }

    /// The service with `ip` as a virtual IP.
    pub fn service_by_vip(&self, ip: IpAddr) -> Option<Arc<Service>> {
        self.inner.service_vips.get(&ip).map(|s| s.clone())
    }

    /// Every workload, by uid.
    pub fn workloads(&self) -> Vec<Arc<Workload>> {
        sorted(
            self.inner
                .workloads
                .iter()
                .map(|e| (e.key().clone(), e.value().clone())),
        )
    }

    /// Every service, by name.
    pub fn services(&self) -> Vec<Arc<Service>> {
        sorted(
            self.inner
                .services
                .iter()
                .map(|e| (e.key().clone(), e.value().clone())),
        )
    }

    /// Every authorization policy, by name.
    pub fn authorizations(&self) -> Vec<Arc<AuthorizationPolicy>> {
        sorted(self.inner.authorizations.iter().flat_map(|e| {
            e.value()
                .iter()
                .map(|(name, p)| (name.clone(), p.clone()))
                .collect::<Vec<_>>()
        }))
    }

    /// Every peer authentication, by name.
    pub fn peer_authentications(&self) -> Vec<Arc<PeerAuthentication>> {
        sorted(
            self.inner
                .peer_authentications
                .iter()
                .map(|e| (e.key().clone(), e.value().clone())),
        )
    }

    /// How many workloads are known.
    pub fn workload_count(&self) -> usize {
        self.inner.workloads.len()
    }

    /// Decides on a new connection to `destination`'s `port` from `peer`
    /// (`None`: plaintext). Returns why it is denied, if it is.
    pub fn authorize(
        &self,
        destination: &Workload,
        port: u16,
        peer: Option<&str>,
    ) -> Result<(), String> {
        let source = match peer {
            Some(principal) => match Peer::from_spiffe_id(principal) {
                Some(peer) => Some(peer),
                None => return Err(format!("the peer identity {principal:?} is not valid")),
            },
            None => None,
        };
        let conn = ConnectionAttrs {
            source,
            destination_port: port,
            destination: DestinationWorkload {
                namespace: &destination.namespace,
                labels: &destination.labels,
            },
        };
        let Some(policies) = self.inner.authorizations.get(&destination.namespace) else {
            return Ok(());
        };
        match braid_model::authorize(policies.values().map(Arc::as_ref), &conn) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(reason.to_string()),
        }
    }

    /// The mutual TLS mode of `workload` under the current PeerAuthentications.
    pub fn mtls_mode(&self, workload: &Workload) -> MtlsMode {
        let policies: Vec<Arc<PeerAuthentication>> = self
            .inner
            .peer_authentications
            .iter()
            .map(|p| p.value().clone())
            .collect();
        braid_model::effective_mtls_mode(
            policies.iter().map(Arc::as_ref),
            &workload.namespace,
            &workload.labels,
            DEFAULT_ROOT_NAMESPACE,
        )
    }

    /// Applies a delta of workloads.
    pub fn apply_workloads(&self, delta: Delta<Workload>) {
        let inner = &self.inner;
        for name in delta.removed {
            if let Some((_, old)) = inner.workloads.remove(&name) {
                unindex(&inner.workload_ips, &old.addresses, |w| w.uid == old.uid);
            }
        }
        for updated in delta.updated {
            let new = updated.value;
            if let Some(old) = inner.workloads.insert(updated.name, new.clone()) {
                unindex(&inner.workload_ips, &old.addresses, |w| w.uid == old.uid);
            }
            for ip in &new.addresses {
                inner.workload_ips.insert(*ip, new.clone());
            }
        }
    }

    /// Applies a delta of services.
    pub fn apply_services(&self, delta: Delta<Service>) {
        let inner = &self.inner;
        for name in delta.removed {
            if let Some((_, old)) = inner.services.remove(&name) {
                unindex(&inner.service_vips, &old.vips, |s| {
                    s.reference == old.reference
                });
                waypoints::forget(&inner.endpoint_services, &name, &old);
            }
        }
        for updated in delta.updated {
            let new = updated.value;
            if let Some(old) = inner.services.insert(updated.name.clone(), new.clone()) {
                unindex(&inner.service_vips, &old.vips, |s| {
                    s.reference == old.reference
                });
                waypoints::forget(&inner.endpoint_services, &updated.name, &old);
            }
            for vip in &new.vips {
                inner.service_vips.insert(*vip, new.clone());
            }
            waypoints::learn(&inner.endpoint_services, &updated.name, &new);
        }
        // Route tables are keyed by VIP: a VIP may now be another Service's.
        if !inner.route_tables.is_empty() {
            inner.route_tables.clear();
        }
    }

    /// Applies a delta of authorization policies (names `<namespace>/<name>`).
    pub fn apply_authorizations(&self, delta: Delta<AuthorizationPolicy>) {
        let inner = &self.inner;
        for name in delta.removed {
            let namespace = name.split('/').next().unwrap_or_default();
            if let Some(mut policies) = inner.authorizations.get_mut(namespace) {
                policies.remove(&name);
            }
            inner
                .authorizations
                .remove_if(namespace, |_, p| p.is_empty());
        }
        for updated in delta.updated {
            let namespace = updated.value.namespace.clone();
            inner
                .authorizations
                .entry(namespace)
                .or_default()
                .insert(updated.name, updated.value);
        }
    }

    /// Applies a delta of peer authentications.
    pub fn apply_peer_authentications(&self, delta: Delta<PeerAuthentication>) {
        let inner = &self.inner;
        for name in delta.removed {
            inner.peer_authentications.remove(&name);
        }
        for updated in delta.updated {
            inner
                .peer_authentications
                .insert(updated.name, updated.value);
        }
    }
}

fn sorted<T>(entries: impl Iterator<Item = (String, Arc<T>)>) -> Vec<Arc<T>> {
    let mut entries: Vec<(String, Arc<T>)> = entries.collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().map(|(_, value)| value).collect()
}

/// Whether `workload` may take new connections.
pub fn is_healthy(workload: &Workload) -> bool {
    workload.status == WorkloadStatus::Healthy
}

/// Drops `keys` from `index` where they still point at the old value (a new
/// owner of an address keeps it).
fn unindex<T>(index: &DashMap<IpAddr, Arc<T>>, keys: &[IpAddr], is_old: impl Fn(&T) -> bool) {
    for key in keys {
        index.remove_if(key, |_, current| is_old(current));
    }
}

#[cfg(test)]
mod tests;
