//! Which rule of which route a request takes, by the Gateway API's
//! precedence: within and across routes, the most specific match wins —
//! an exact path, then a regular expression, then the longest prefix; then
//! a method match; then more header matches; then more query matches; then
//! the older route, then `<namespace>/<name>` in order; then rule and match
//! order as written.

use std::{cmp::Reverse, sync::Arc};

use http::HeaderMap;

use super::{HttpRoute, PathMatch, RouteMatch, RouteRule, StringMatch, ValueMatch};
use crate::ServiceRef;

/// What the matcher looks at in a request.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The method, as sent.
    pub method: &'a str,
    /// The path, without its query.
    pub path: &'a str,
    /// The query, without its `?`.
    pub query: Option<&'a str>,
    /// The request's headers.
    pub headers: &'a HeaderMap,
}

/// The routes that apply to one Service port for one caller, ordered once
/// by precedence so selecting is a scan to the first match.
#[derive(Clone, Debug, Default)]
pub struct ServiceRoutes {
    routes: Vec<Arc<HttpRoute>>,
    /// (route, rule, match) indices, most specific first.
    entries: Vec<(usize, usize, usize)>,
}

/// The rule a request takes.
#[derive(Clone, Copy, Debug)]
pub struct Selected<'a> {
    /// The route.
    pub route: &'a Arc<HttpRoute>,
    /// The rule's position in the route.
    pub rule_index: usize,
    /// The rule.
    pub rule: &'a RouteRule,
    /// The match that took the request.
    pub matched: &'a RouteMatch,
}

// === impl ServiceRoutes ===

impl ServiceRoutes {
    /// The routes among `routes` that apply to `service`'s `port` for a
    /// caller in `caller_namespace` (GAMMA): producer routes (in the
    /// Service's namespace) apply to every caller; consumer routes (in
    /// another namespace) only to callers in theirs, and where one applies
    /// the producer routes do not.
    pub fn for_service<'a>(
        routes: impl IntoIterator<Item = &'a Arc<HttpRoute>>,
        service: &ServiceRef,
        port: u16,
        caller_namespace: &str,
    ) -> Self {
        let attached: Vec<&Arc<HttpRoute>> = routes
            .into_iter()
            .filter(|r| {
                r.service_parents()
                    .any(|(s, p)| s == service && p.is_none_or(|p| p == port))
            })
            .collect();
        let consumer: Vec<Arc<HttpRoute>> = attached
            .iter()
            .filter(|r| r.namespace != service.namespace && r.namespace == caller_namespace)
            .map(|r| Arc::clone(r))
            .collect();
        if !consumer.is_empty() {
            return Self::new(consumer);
        }
        Self::new(
            attached
                .into_iter()
                .filter(|r| r.namespace == service.namespace)
                .cloned()
                .collect(),
        )
    }

    /// The routes among `routes` that apply at waypoint `namespace/name`
    /// to a request for the Service named `hostname`: those attached to the
    /// waypoint's Gateway, from its own namespace (the Gateway API default
    /// of `allowedRoutes`), whose `hostnames` admit the Service's. They
    /// apply where no route attaches to the Service itself.
    pub fn for_waypoint<'a>(
        routes: impl IntoIterator<Item = &'a Arc<HttpRoute>>,
        namespace: &str,
        name: &str,
        hostname: &str,
    ) -> Self {
        Self::new(
            routes
                .into_iter()
                .filter(|r| r.namespace == namespace)
                .filter(|r| r.gateway_parents().any(|p| p == (namespace, name)))
                .filter(|r| r.admits_host(hostname))
                .cloned()
                .collect(),
        )
    }

    /// Orders every match of `routes` by precedence.
    pub fn new(routes: Vec<Arc<HttpRoute>>) -> Self {
        let mut entries: Vec<(usize, usize, usize)> = routes
            .iter()
            .enumerate()
            .flat_map(|(r, route)| {
                route
                    .rules
                    .iter()
                    .enumerate()
                    .flat_map(move |(i, rule)| (0..rule.matches.len()).map(move |m| (r, i, m)))
            })
            .collect();
        entries.sort_by_cached_key(|&(r, i, m)| {
            let route = &routes[r];
            let matched = &route.rules[i].matches[m];
            let (kind, length) = match &matched.path {
                PathMatch::Exact(p) => (0, p.len()),
                PathMatch::Regex(_) => (1, 0),
                PathMatch::Prefix(p) => (2, p.trim_end_matches('/').len()),
            };
            (
                kind,
                Reverse(length),
                matched.method.is_none(),
                Reverse(matched.headers.len()),
                Reverse(matched.query.len()),
                route.created.unwrap_or(i64::MAX),
                (route.namespace.clone(), route.name.clone()),
                i,
                m,
            )
        });
        Self { routes, entries }
    }

    /// Whether no route applies (the Service's own endpoints serve it).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The routes, in no particular order.
    pub fn routes(&self) -> &[Arc<HttpRoute>] {
        &self.routes
    }

    /// The rule `request` takes; `None` when routes apply but none matches
    /// (the request is answered 404).
    pub fn select(&self, request: &Request<'_>) -> Option<Selected<'_>> {
        self.entries.iter().find_map(|&(r, i, m)| {
            let route = &self.routes[r];
            let rule = &route.rules[i];
            let matched = &rule.matches[m];
            matched.matches(request).then_some(Selected {
                route,
                rule_index: i,
                rule,
                matched,
            })
        })
    }
}

// === impl RouteMatch ===

impl RouteMatch {
    /// Whether `request` satisfies every part of this match.
    pub fn matches(&self, request: &Request<'_>) -> bool {
        self.path.matches(request.path)
            && self.method.as_deref().is_none_or(|m| m == request.method)
            && self
                .headers
                .iter()
                .all(|h| header_matches(h, request.headers))
            && self.query.iter().all(|q| query_matches(q, request.query))
    }
}

// === impl PathMatch ===

impl PathMatch {
    /// Whether `path` (without its query) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => path == exact,
            Self::Regex(pattern) => pattern.matches(path),
            Self::Prefix(prefix) => {
                let prefix = prefix.trim_end_matches('/');
                match path.strip_prefix(prefix) {
                    // Whole segments only: `/foo` is no prefix of `/foobar`.
                    Some(rest) => rest.is_empty() || rest.starts_with('/'),
                    None => false,
                }
            }
        }
    }

    /// The prefix a `ReplacePrefixMatch` replaces (`None` unless a prefix).
    pub fn prefix(&self) -> Option<&str> {
        match self {
            Self::Prefix(p) => Some(p),
            _ => None,
        }
    }
}

// === impl StringMatch ===

impl StringMatch {
    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(exact) => value == exact,
            Self::Regex(pattern) => pattern.matches(value),
        }
    }
}

/// A header matches when present and its value (repeated headers joined
/// with `,`) matches.
fn header_matches(expected: &ValueMatch, headers: &HeaderMap) -> bool {
    let mut values = headers
        .get_all(expected.name.as_str())
        .iter()
        .filter_map(|v| v.to_str().ok());
    let Some(first) = values.next() else {
        return false;
    };
    match values.next() {
        None => expected.value.matches(first),
        Some(second) => {
            let mut joined = format!("{first},{second}");
            for more in values {
                joined.push(',');
                joined.push_str(more);
            }
            expected.value.matches(&joined)
        }
    }
}

/// A query parameter matches when its first occurrence's value matches
/// (names compared exactly, values as sent).
fn query_matches(expected: &ValueMatch, query: Option<&str>) -> bool {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name == expected.name).then_some(value)
        })
        .is_some_and(|value| expected.value.matches(value))
}
