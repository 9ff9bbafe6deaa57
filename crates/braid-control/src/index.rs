//! The index: an in-memory model of every object the sources reported, and
//! the translation of changed namespaces into xDS resources.
//!
//! Pure and synchronous: sources feed it [`Change`]s, [`Index::updates`]
//! says which resources changed. Every derived resource depends only on
//! objects of its own namespace (plus the Namespace object), so a change
//! marks its namespace dirty and only dirty namespaces are recomputed.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    sync::Arc,
};

use braid_api::convert;
use braid_model::k8s::PodInfo;
use braid_model::k8s::{self, MeshSettings, SERVICE_NAME_LABEL};
use braid_model::{DataPlaneMode, MODE_LABEL};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::{
    identities::Identities,
    snapshot::{Resource, ResourceType, Snapshot},
    source::{Change, ConfigError, Kind, KubeObject, ObjectKey},
};

pub mod publisher;
pub mod routes;
pub mod waypoints;

/// Resource updates for one publish: per type, name -> new resource or removal.
pub type Updates = [BTreeMap<String, Option<Arc<Resource>>>; ResourceType::COUNT];

/// Every known Namespace and the mode its `braid.dev/mode` label selects
/// (`None`: no label, or a value that is not a mode). The injection webhook
/// reads it; a namespace missing here is unknown to the control plane.
pub type NamespaceModes = BTreeMap<String, Option<DataPlaneMode>>;

/// Every object the sources reported, grouped by namespace.
#[derive(Debug, Default)]
pub struct Index {
    settings: MeshSettings,
    namespaces: HashMap<String, Arc<KubeObject>>,
    spaces: HashMap<String, Space>,
    dirty: BTreeSet<String>,
    /// Proxy tokens by (namespace, name); they feed no xDS resource.
    tokens: BTreeMap<(String, String), Arc<KubeObject>>,
    /// Pods, Namespaces or tokens changed since the last [`Index::identities`].
    identities_dirty: bool,
    /// Namespaces changed since the last [`Index::namespace_modes`]; true at
    /// first so the initial load always publishes.
    namespaces_dirty: bool,
    /// The `ResolvedRefs` problems of each namespace's routes, as last
    /// computed.
    route_problems: HashMap<String, routes::Problems>,
    /// What each namespace's waypoint Gateways have, as last computed.
    waypoint_states: HashMap<String, waypoints::States>,
    /// Each namespace's routes attached to waypoint Gateways: route name ->
    /// the waypoints among its parents.
    route_waypoints: HashMap<String, BTreeMap<String, Vec<String>>>,
    /// Route problems or waypoint states changed since the last
    /// [`Index::take_findings`].
    findings_changed: bool,
    /// Config-error entries to replace, collected by [`Index::updates`] for
    /// [`Index::take_config_errors`] (an empty list clears an entry).
    error_updates: BTreeMap<PathBuf, Vec<ConfigError>>,
}

/// The namespaced objects of one namespace, shared with the source (an
/// `Arc`, not a copy: at 10 000 pods a second copy costs tens of MB).
#[derive(Debug, Default)]
struct Space {
    pods: BTreeMap<String, Arc<KubeObject>>,
    services: BTreeMap<String, Arc<KubeObject>>,
    slices: BTreeMap<String, Arc<KubeObject>>,
    service_accounts: BTreeSet<String>,
    policies: BTreeMap<String, Arc<KubeObject>>,
    peer_authentications: BTreeMap<String, Arc<KubeObject>>,
    http_routes: BTreeMap<String, Arc<KubeObject>>,
    gateways: BTreeMap<String, Arc<KubeObject>>,
}

// === impl Index ===

impl Index {
    /// An empty index.
    pub fn new(settings: MeshSettings) -> Self {
        Self {
            settings,
            namespaces_dirty: true,
            ..Default::default()
        }
    }

    /// Applies one change from a source.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Apply(key, object) => self.upsert(key, object),
            Change::Delete(key) => self.remove(&key),
        }
    }

    fn upsert(&mut self, key: ObjectKey, object: Arc<KubeObject>) {
        self.identities_dirty |= feeds_identities(key.kind);
        if key.kind == Kind::ProxyToken {
            self.tokens.insert((key.namespace, key.name), object);
            return;
        }
        if key.kind == Kind::Namespace {
            self.namespaces_dirty = true;
            self.namespaces.insert(key.name.clone(), object);
            self.dirty.insert(key.name);
            return;
        }
        let space = self.spaces.entry(key.namespace.clone()).or_default();
        let map = match key.kind {
            Kind::Pod => &mut space.pods,
            Kind::Service => &mut space.services,
            Kind::EndpointSlice => &mut space.slices,
            Kind::AuthorizationPolicy => &mut space.policies,
            Kind::PeerAuthentication => &mut space.peer_authentications,
            Kind::HttpRoute => &mut space.http_routes,
            Kind::Gateway => &mut space.gateways,
            Kind::ServiceAccount => {
                space.service_accounts.insert(key.name);
                self.dirty.insert(key.namespace);
                return;
            }
            Kind::Namespace | Kind::ProxyToken => return,
        };
        map.insert(key.name, object);
        self.dirty.insert(key.namespace);
    }

    fn remove(&mut self, key: &ObjectKey) {
        self.identities_dirty |= feeds_identities(key.kind);
        if key.kind == Kind::ProxyToken {
            self.tokens
                .remove(&(key.namespace.clone(), key.name.clone()));
            return;
        }
        if key.kind == Kind::Namespace {
            self.namespaces_dirty = true;
            self.namespaces.remove(&key.name);
            self.dirty.insert(key.name.clone());
            return;
        }
        if let Some(space) = self.spaces.get_mut(&key.namespace) {
            match key.kind {
                Kind::Pod => drop(space.pods.remove(&key.name)),
                Kind::Service => drop(space.services.remove(&key.name)),
                Kind::EndpointSlice => drop(space.slices.remove(&key.name)),
                Kind::ServiceAccount => drop(space.service_accounts.remove(&key.name)),
                Kind::AuthorizationPolicy => drop(space.policies.remove(&key.name)),
                Kind::PeerAuthentication => drop(space.peer_authentications.remove(&key.name)),
                Kind::HttpRoute => drop(space.http_routes.remove(&key.name)),
                Kind::Gateway => drop(space.gateways.remove(&key.name)),
                Kind::Namespace | Kind::ProxyToken => {}
            }
        }
        self.dirty.insert(key.namespace.clone());
    }

    /// The view the certificate service authorizes against, when pods,
    /// namespaces or tokens changed since the last call.
    pub fn identities(&mut self) -> Option<Identities> {
        if !std::mem::take(&mut self.identities_dirty) {
            return None;
        }
        // Each pod with its namespace's mode label: only meshed pods get
        // identities, and the label decides for pods without one.
        let pods = self.spaces.iter().flat_map(|(ns, space)| {
            let mode = self.namespaces.get(ns).and_then(|o| namespace_mode(o));
            space
                .pods
                .values()
                .filter_map(|o| o.as_pod())
                .map(move |pod| (pod, mode))
        });
        let tokens = self.tokens.values().filter_map(|o| o.as_token());
        Some(Identities::new(pods, tokens))
    }

    /// Every Namespace's mode label, when Namespaces changed since the last
    /// call (always on the first call).
    pub fn namespace_modes(&mut self) -> Option<NamespaceModes> {
        if !std::mem::take(&mut self.namespaces_dirty) {
            return None;
        }
        let modes = self
            .namespaces
            .iter()
            .map(|(name, object)| (name.clone(), namespace_mode(object)));
        Some(modes.collect())
    }

    /// Whether changes are waiting for [`Index::updates`].
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Recomputes the resources of every dirty namespace and returns those
    /// that differ from `current` (new, changed or removed).
    pub fn updates(&mut self, current: &Snapshot) -> Updates {
        let mut updates: Updates = Default::default();
        for ns in std::mem::take(&mut self.dirty) {
            let (fresh, problems, states) = self.resources_of(&ns);
            self.note_route_problems(&ns, problems);
            self.note_waypoint_states(&ns, states);
            let attached = self.waypoint_parents_of(&ns);
            self.note_route_waypoints(&ns, attached);
            for ty in ResourceType::ALL {
                let i = ty as usize;
                let old = namespace_range(current.resources(ty), &ns);
                for name in old.keys() {
                    if !fresh[i].contains_key(*name) {
                        updates[i].insert((*name).clone(), None);
                    }
                }
                for (name, resource) in &fresh[i] {
                    if old.get(name).is_none_or(|o| o.version != resource.version) {
                        updates[i].insert(name.clone(), Some(resource.clone()));
                    }
                }
            }
            if self.spaces.get(&ns).is_some_and(Space::is_empty) {
                self.spaces.remove(&ns);
            }
        }
        updates
    }

    /// The config-error entries that changed since the last call: the
    /// `ResolvedRefs` problems of routes, filed by
    /// [`routes::problems_path`]; an empty list clears an entry.
    pub fn take_config_errors(&mut self) -> BTreeMap<PathBuf, Vec<ConfigError>> {
        std::mem::take(&mut self.error_updates)
    }

    /// The `ResolvedRefs` problems of every route, by (namespace, name), for
    /// the status writer.
    pub fn route_problems(&self) -> crate::status::RouteProblems {
        self.route_problems
            .iter()
            .flat_map(|(ns, routes)| {
                routes
                    .iter()
                    .map(move |(name, problems)| ((ns.clone(), name.clone()), problems.clone()))
            })
            .collect()
    }

    /// What the status writer needs from the index (route problems,
    /// waypoint states), when it changed since the last call.
    pub fn take_findings(&mut self) -> Option<crate::status::Findings> {
        if !std::mem::take(&mut self.findings_changed) {
            return None;
        }
        let waypoints = self
            .waypoint_states
            .iter()
            .flat_map(|(ns, states)| {
                let routes = self.route_waypoints.get(ns);
                states.iter().map(move |(name, state)| {
                    let attached_routes = routes.map_or(0, |routes| {
                        routes
                            .values()
                            .filter(|parents| parents.contains(name))
                            .count()
                    });
                    let state = waypoints::State {
                        attached_routes,
                        ..state.clone()
                    };
                    ((ns.clone(), name.clone()), state)
                })
            })
            .collect();
        let route_waypoints = self
            .route_waypoints
            .iter()
            .flat_map(|(ns, routes)| {
                routes
                    .iter()
                    .map(move |(name, parents)| ((ns.clone(), name.clone()), parents.clone()))
            })
            .collect();
        Some(crate::status::Findings {
            routes: self.route_problems(),
            waypoints,
            route_waypoints,
        })
    }

    /// The routes of namespace `ns` attached to its waypoint Gateways,
    /// with those waypoints' names.
    fn waypoint_parents_of(&self, ns: &str) -> BTreeMap<String, Vec<String>> {
        let Some(space) = self.spaces.get(ns) else {
            return BTreeMap::new();
        };
        space
            .http_routes
            .values()
            .filter_map(|o| o.as_http_route())
            .filter_map(|converted| {
                let route = &converted.route;
                let parents: Vec<String> = route
                    .gateway_parents()
                    .filter(|(parent_ns, name)| {
                        *parent_ns == ns
                            && space
                                .gateways
                                .get(*name)
                                .and_then(|o| o.as_waypoint())
                                .is_some()
                    })
                    .map(|(_, name)| name.to_string())
                    .collect();
                (!parents.is_empty()).then(|| (route.name.clone(), parents))
            })
            .collect()
    }

    /// Records namespace `ns`'s routes attached to waypoints.
    fn note_route_waypoints(&mut self, ns: &str, fresh: BTreeMap<String, Vec<String>>) {
        let old = self.route_waypoints.remove(ns).unwrap_or_default();
        self.findings_changed |= old != fresh;
        if !fresh.is_empty() {
            self.route_waypoints.insert(ns.to_string(), fresh);
        }
    }

    /// Records namespace `ns`'s waypoint states.
    fn note_waypoint_states(&mut self, ns: &str, fresh: waypoints::States) {
        let old = self.waypoint_states.remove(ns).unwrap_or_default();
        self.findings_changed |= old != fresh;
        if !fresh.is_empty() {
            self.waypoint_states.insert(ns.to_string(), fresh);
        }
    }

    /// Records namespace `ns`'s route problems, noting the entries that
    /// changed.
    fn note_route_problems(&mut self, ns: &str, fresh: routes::Problems) {
        let old = self.route_problems.remove(ns).unwrap_or_default();
        self.findings_changed |= old != fresh;
        for name in old.keys().filter(|name| !fresh.contains_key(*name)) {
            self.error_updates
                .insert(routes::problems_path(ns, name), Vec::new());
        }
        for (name, problems) in &fresh {
            if old.get(name) != Some(problems) {
                let errors = routes::config_errors(ns, name, problems);
                self.error_updates
                    .insert(routes::problems_path(ns, name), errors);
            }
        }
        if !fresh.is_empty() {
            self.route_problems.insert(ns.to_string(), fresh);
        }
    }

    /// Translates every object of namespace `ns` into resources, and
    /// reports the route references that do not resolve and what each
    /// waypoint Gateway has.
    fn resources_of(
        &self,
        ns: &str,
    ) -> (
        [BTreeMap<String, Arc<Resource>>; ResourceType::COUNT],
        routes::Problems,
        waypoints::States,
    ) {
        let mut out: [BTreeMap<String, Arc<Resource>>; ResourceType::COUNT] = Default::default();
        let mut problems = routes::Problems::new();
        let mut states = waypoints::States::new();
        let Some(space) = self.spaces.get(ns) else {
            return (out, problems, states);
        };
        let namespace = self.namespaces.get(ns).and_then(|o| match o.as_ref() {
            KubeObject::Namespace(ns) => Some(ns.as_ref()),
            _ => None,
        });
        let pods: Vec<&PodInfo> = space.pods.values().filter_map(|o| o.as_pod()).collect();
        for pod in &pods {
            // Pods were validated into PodInfo at the source: this cannot fail.
            let w = k8s::workload_from_info(pod, namespace, &self.settings);
            let name = w.uid.to_string();
            let r = Resource::encode(
                ResourceType::Workload,
                name.clone(),
                &convert::workload_to_proto(&w),
            );
            out[ResourceType::Workload as usize].insert(name, Arc::new(r));
        }
        // A waypoint Gateway without a Service of its name gets the one
        // Braid would make for it (the YAML directory has nobody to make
        // it); on Kubernetes the control plane creates it and it is read
        // like any other.
        let implied: Vec<(String, k8s_openapi::api::core::v1::Service)> = space
            .gateways
            .values()
            .filter_map(|o| o.as_waypoint())
            .filter(|w| !space.services.contains_key(&w.name))
            .map(|w| (w.name.clone(), waypoints::implied_service(w)))
            .collect();
        let services = space
            .services
            .iter()
            .filter_map(|(n, o)| o.as_service().map(|s| (n, s)))
            .chain(implied.iter().map(|(n, s)| (n, s)));
        for (name, svc) in services {
            let slices: Vec<&EndpointSlice> = space
                .slices
                .values()
                .filter_map(|o| o.as_endpoint_slice())
                .filter(|s| {
                    s.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(SERVICE_NAME_LABEL))
                        == Some(name)
                })
                .collect();
            match k8s::service_from_kube(svc, namespace, &pods, &slices, &self.settings) {
                Ok(s) => {
                    if space
                        .gateways
                        .get(name)
                        .and_then(|o| o.as_waypoint())
                        .is_some()
                    {
                        states.insert(name.clone(), waypoints::State::of(&s));
                    }
                    let name = s.reference.to_string();
                    let r = Resource::encode(
                        ResourceType::Service,
                        name.clone(),
                        &convert::service_to_proto(&s),
                    );
                    out[ResourceType::Service as usize].insert(name, Arc::new(r));
                }
                Err(e) => {
                    tracing::warn!(namespace = ns, service = name, error = %e, "skipping service")
                }
            }
        }
        for policy in space.policies.values().filter_map(|o| o.as_policy()) {
            let name = format!("{}/{}", policy.namespace, policy.name);
            let r = Resource::encode(
                ResourceType::Authorization,
                name.clone(),
                &convert::authorization_to_proto(policy),
            );
            out[ResourceType::Authorization as usize].insert(name, Arc::new(r));
        }
        // Every PeerAuthentication is served as is: precedence (workload,
        // namespace, mesh-wide from the root namespace) is resolved by the
        // proxy with `braid_model::effective_mtls_mode`, so a mesh-wide policy
        // stays one resource of the root namespace and the index stays
        // namespace-local.
        let peer_authentications = space
            .peer_authentications
            .values()
            .filter_map(|o| o.as_peer_authentication());
        for policy in peer_authentications {
            let name = format!("{}/{}", policy.namespace, policy.name);
            let r = Resource::encode(
                ResourceType::PeerAuthentication,
                name.clone(),
                &convert::peer_authentication_to_proto(policy),
            );
            out[ResourceType::PeerAuthentication as usize].insert(name, Arc::new(r));
        }
        // Routes depend on the Services of their own namespace only (a
        // backend in another namespace is refused at the edge), so a
        // Service change recomputes exactly the routes it can affect.
        for converted in space.http_routes.values().filter_map(|o| o.as_http_route()) {
            let (route, found) = routes::resolve(converted, &space.services);
            let name = route.key();
            if !found.is_empty() {
                problems.insert(route.name.clone(), found);
            }
            let r = Resource::encode(
                ResourceType::HttpRoute,
                name.clone(),
                &convert::http_route_to_proto(&route),
            );
            out[ResourceType::HttpRoute as usize].insert(name, Arc::new(r));
        }
        // A waypoint whose Service did not translate still has a state.
        for waypoint in space.gateways.values().filter_map(|o| o.as_waypoint()) {
            states.entry(waypoint.name.clone()).or_default();
        }
        (out, problems, states)
    }
}

// === impl Space ===

impl Space {
    fn is_empty(&self) -> bool {
        self.pods.is_empty()
            && self.services.is_empty()
            && self.slices.is_empty()
            && self.service_accounts.is_empty()
            && self.policies.is_empty()
            && self.peer_authentications.is_empty()
            && self.http_routes.is_empty()
            && self.gateways.is_empty()
    }
}

/// Whether objects of `kind` change who may hold which identity: pods
/// (accounts, nodes, modes), their Namespaces' mode labels, proxy tokens.
fn feeds_identities(kind: Kind) -> bool {
    matches!(kind, Kind::Pod | Kind::Namespace | Kind::ProxyToken)
}

/// The mode a Namespace's `braid.dev/mode` label selects; `None` without
/// the label or with a value that is not a mode (as `braid-model` reads it).
fn namespace_mode(object: &KubeObject) -> Option<DataPlaneMode> {
    match object {
        KubeObject::Namespace(ns) => ns
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(MODE_LABEL))
            .and_then(|value| value.parse().ok()),
        _ => None,
    }
}

/// The resources named `<ns>/...`.
fn namespace_range<'a>(
    resources: &'a BTreeMap<String, Arc<Resource>>,
    ns: &str,
) -> BTreeMap<&'a String, &'a Arc<Resource>> {
    let start = format!("{ns}/");
    resources
        .range(start.clone()..)
        .take_while(|(name, _)| name.starts_with(&start))
        .collect()
}

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
