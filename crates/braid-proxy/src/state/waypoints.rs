//! Which waypoint a destination pod sits behind, for refusing traffic that
//! bypasses it: the Services each pod address is an endpoint of, kept as
//! Services arrive, so an inbound tunnel asks one map lookup.
//!
//! A pod is behind waypoint W when its namespace names W (its workload's
//! waypoint), or when every Service it is an endpoint of names a waypoint
//! (the first, W). A pod that some Service without a waypoint also selects
//! stays reachable directly: that Service's callers dial the pod, and a
//! tunnel does not say which Service a caller meant.

use std::net::IpAddr;

use braid_model::{Service, WaypointRef, Workload, WorkloadStatus};
use dashmap::DashMap;

use super::ProxyState;

/// For each endpoint address: the Services it serves, with their waypoint.
pub(super) type EndpointServices = DashMap<IpAddr, Vec<(String, Option<WaypointRef>)>>;

/// Drops `service`'s entries (it was removed or is being replaced).
pub(super) fn forget(index: &EndpointServices, name: &str, service: &Service) {
    for endpoint in &service.endpoints {
        if let Some(mut services) = index.get_mut(&endpoint.address) {
            services.retain(|(n, _)| n != name);
        }
        index.remove_if(&endpoint.address, |_, services| services.is_empty());
    }
}

/// Adds `service`'s entries.
pub(super) fn learn(index: &EndpointServices, name: &str, service: &Service) {
    for endpoint in &service.endpoints {
        let mut services = index.entry(endpoint.address).or_default();
        if !services.iter().any(|(n, _)| n == name) {
            services.push((name.to_string(), service.waypoint.clone()));
        }
    }
}

impl ProxyState {
    /// The waypoint `workload` sits behind, if any (see the module).
    pub fn waypoint_in_front_of(&self, workload: &Workload) -> Option<WaypointRef> {
        if let Some(waypoint) = &workload.waypoint {
            return Some(waypoint.clone());
        }
        let mut front = None;
        for address in &workload.addresses {
            let Some(services) = self.inner.endpoint_services.get(address) else {
                continue;
            };
            for (_, waypoint) in services.iter() {
                match waypoint {
                    None => return None,
                    Some(waypoint) => front = front.or_else(|| Some(waypoint.clone())),
                }
            }
        }
        front
    }

    /// Whether `principal` is the identity of a ready pod of `waypoint`.
    pub fn is_waypoint_identity(&self, waypoint: &WaypointRef, principal: &str) -> bool {
        let reference = braid_model::ServiceRef::new(&waypoint.namespace, &waypoint.name);
        let Some(service) = self.service(&reference) else {
            return false;
        };
        service
            .endpoints
            .iter()
            .filter(|e| e.status == WorkloadStatus::Healthy)
            .filter_map(|e| self.workload_by_ip(e.address))
            .any(|w| w.spiffe_id() == principal)
    }
}
