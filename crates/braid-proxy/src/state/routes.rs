//! HTTP routes as a proxy holds them, and the routes that apply to one
//! Service port for one caller, ordered once and reused by every request
//! until the routes change.

use std::{net::SocketAddr, sync::Arc};

use braid_model::{HttpRoute, ServiceRef, WaypointRef, route::ServiceRoutes};
use braid_xds::Delta;

use super::ProxyState;

/// The routes that apply to a request for a Service port.
#[derive(Clone, Debug)]
pub struct Attached {
    /// The Service the request was for.
    pub service: ServiceRef,
    /// Its port.
    pub port: u16,
    /// The routes, by precedence.
    pub routes: Arc<ServiceRoutes>,
}

// === impl ProxyState ===

impl ProxyState {
    /// Every HTTP route, by name.
    pub fn http_routes(&self) -> Vec<Arc<HttpRoute>> {
        super::sorted(
            self.inner
                .routes
                .iter()
                .map(|e| (e.key().clone(), e.value().clone())),
        )
    }

    /// The routes attached to the Service whose VIP `original` is (for a
    /// caller in `caller_namespace`); at waypoint `at`, where none is, the
    /// routes attached to the waypoint's Gateway that admit the Service's
    /// hostname. `None` when `original` is no Service VIP or no route
    /// attaches, so the request goes where it was sent.
    ///
    /// `at` is the same on every call for one state (a proxy is a waypoint
    /// or it is not): the ordered tables are cached without it.
    pub fn routes_for(
        &self,
        original: SocketAddr,
        caller_namespace: &str,
        at: Option<&WaypointRef>,
    ) -> Option<Attached> {
        if self.inner.routes.is_empty() {
            return None;
        }
        let service = self.service_by_vip(original.ip())?;
        let key = (original.ip(), original.port());
        // Looked up without allocating: by caller namespace, then VIP and port.
        let cached = self
            .inner
            .route_tables
            .get(caller_namespace)
            .and_then(|tables| tables.get(&key).map(|t| t.clone()));
        let routes = match cached {
            Some(found) => found,
            None => {
                let all: Vec<Arc<HttpRoute>> = self
                    .inner
                    .routes
                    .iter()
                    .map(|e| e.value().clone())
                    .collect();
                let mut table = ServiceRoutes::for_service(
                    &all,
                    &service.reference,
                    original.port(),
                    caller_namespace,
                );
                if let Some(at) = at
                    && table.is_empty()
                {
                    table = ServiceRoutes::for_waypoint(
                        &all,
                        &at.namespace,
                        &at.name,
                        &service.hostname,
                    );
                }
                let table = Arc::new(table);
                self.inner
                    .route_tables
                    .entry(caller_namespace.to_string())
                    .or_default()
                    .insert(key, table.clone());
                table
            }
        };
        (!routes.is_empty()).then(|| Attached {
            service: service.reference.clone(),
            port: original.port(),
            routes,
        })
    }

    /// Applies a delta of HTTP routes (names `<namespace>/<name>`); the
    /// ordered tables are built again on their next use.
    ///
    /// Tables are keyed by VIP, so a Service change drops them too
    /// ([`ProxyState::apply_services`]).
    pub fn apply_http_routes(&self, delta: Delta<HttpRoute>) {
        let inner = &self.inner;
        for name in delta.removed {
            inner.routes.remove(&name);
        }
        for updated in delta.updated {
            inner.routes.insert(updated.name, updated.value);
        }
        inner.route_tables.clear();
    }
}
