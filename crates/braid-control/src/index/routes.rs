//! HTTP routes in the index: each route's Service references looked up
//! among the Services of its namespace (a route may only send to its own
//! namespace until ReferenceGrants exist, so this stays namespace-local),
//! and the references that do not resolve reported as `ResolvedRefs`
//! problems.
//!
//! A backend that does not resolve stays in the route with
//! [`Backend::invalid`](braid_model::route::Backend::invalid) set, so the
//! other backends keep their shares and requests that pick it get 500, as
//! the specification asks; a mirror that does not resolve is dropped.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::Arc,
};

use braid_crd::httproute::{BackendProblem, ConvertedRoute, RefAt, Unresolved};
use braid_model::{HttpRoute, route::Filter};

use crate::source::{ConfigError, Kind, KubeObject, ObjectKey};

/// The `ResolvedRefs` problems of each route, by route name.
pub(super) type Problems = BTreeMap<String, Vec<BackendProblem>>;

/// The route to serve, with every reference of `converted` looked up in
/// `services` (the route's namespace's Services, by name), and every
/// reference that does not resolve.
pub(super) fn resolve(
    converted: &ConvertedRoute,
    services: &BTreeMap<String, Arc<KubeObject>>,
) -> (HttpRoute, Vec<BackendProblem>) {
    let mut route = converted.route.clone();
    let mut problems = converted.problems.clone();
    let mut dropped: BTreeSet<(usize, Option<usize>, std::cmp::Reverse<usize>)> = BTreeSet::new();
    for pending in &converted.refs {
        let Some((service, port)) = target(&route, pending.at) else {
            continue;
        };
        let Some(message) = lookup(services, &route.namespace, &service, port) else {
            continue;
        };
        let problem = BackendProblem {
            field: pending.field.clone(),
            reason: Unresolved::BackendNotFound,
            message,
        };
        match pending.at {
            RefAt::Backend { rule, backend } => {
                if let Some(b) = route
                    .rules
                    .get_mut(rule)
                    .and_then(|r| r.backends.get_mut(backend))
                {
                    b.invalid = Some(problem.invalid_reason());
                }
            }
            RefAt::Mirror {
                rule,
                backend,
                filter,
            } => {
                dropped.insert((rule, backend, std::cmp::Reverse(filter)));
            }
        }
        problems.push(problem);
    }
    // Highest index first within each list, so earlier indices stay valid.
    for (rule, backend, std::cmp::Reverse(filter)) in dropped {
        let Some(rule) = route.rules.get_mut(rule) else {
            continue;
        };
        let filters = match backend {
            None => &mut rule.filters,
            Some(b) => match rule.backends.get_mut(b) {
                Some(b) => &mut b.filters,
                None => continue,
            },
        };
        if filter < filters.len() {
            filters.remove(filter);
        }
    }
    (route, problems)
}

/// The Service name and port a reference points at.
fn target(route: &HttpRoute, at: RefAt) -> Option<(String, u16)> {
    match at {
        RefAt::Backend { rule, backend } => {
            let b = route.rules.get(rule)?.backends.get(backend)?;
            Some((b.service.name.clone(), b.port))
        }
        RefAt::Mirror {
            rule,
            backend,
            filter,
        } => {
            let rule = route.rules.get(rule)?;
            let filters = match backend {
                None => &rule.filters,
                Some(b) => &rule.backends.get(b)?.filters,
            };
            match filters.get(filter)? {
                Filter::Mirror(m) => Some((m.service.name.clone(), m.port)),
                _ => None,
            }
        }
    }
}

/// `None` when Service `name` exists with `port`; otherwise what is wrong.
fn lookup(
    services: &BTreeMap<String, Arc<KubeObject>>,
    namespace: &str,
    name: &str,
    port: u16,
) -> Option<String> {
    let Some(service) = services.get(name).and_then(|o| o.as_service()) else {
        return Some(format!(
            "there is no Service {namespace}/{name}; create it or fix the name"
        ));
    };
    let ports: Vec<i32> = service
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .map(|p| p.port)
        .collect();
    if ports.contains(&i32::from(port)) {
        return None;
    }
    let listed: Vec<String> = ports.iter().map(i32::to_string).collect();
    Some(format!(
        "Service {namespace}/{name} has no port {port} (its ports: {}); use one of them",
        if listed.is_empty() {
            "none".to_string()
        } else {
            listed.join(", ")
        }
    ))
}

/// Where the `ResolvedRefs` problems of a route are filed among the config
/// errors: next to (not on) the route's own entry, which a source owns.
pub fn problems_path(namespace: &str, name: &str) -> PathBuf {
    let key = ObjectKey {
        kind: Kind::HttpRoute,
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    PathBuf::from(format!("{key} (ResolvedRefs)"))
}

/// The config errors that report `problems` of route `name`.
pub(super) fn config_errors(
    namespace: &str,
    name: &str,
    problems: &[BackendProblem],
) -> Vec<ConfigError> {
    problems
        .iter()
        .map(|p| ConfigError {
            file: problems_path(namespace, name),
            document: None,
            field: p.field.clone(),
            message: format!(
                "ResolvedRefs=False, reason {}: {}; {}",
                p.reason,
                p.message,
                match p.field.contains("requestMirror") {
                    true => "the route is served without this mirror",
                    false => "the route is served, and requests sent to this backend get 500",
                }
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests;
