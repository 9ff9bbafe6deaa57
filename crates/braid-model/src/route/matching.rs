//! Which rule of which route a request takes, by the Gateway API's
//! precedence: within and across routes, the most specific match wins —
//! an exact path, then a regular expression, then the longest prefix; then
//! a method match; then more header matches; then more query matches; then
//! the older route, then `<namespace>/<name>` in order; then rule and match
//! order as written.
//!
//! Selecting does not scan every match: a path index gives the matches
//! whose path can take the request (its exact path, the prefixes ending at
//! one of its `/`, every regular expression), so a table of a thousand
//! routes costs a few hash lookups, not a thousand comparisons over memory
//! the cache no longer holds.

use std::{cmp::Reverse, collections::HashMap, sync::Arc};

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
/// by precedence so selecting takes the first match that holds.
#[derive(Clone, Debug, Default)]
pub struct ServiceRoutes {
    routes: Vec<Arc<HttpRoute>>,
    /// (route, rule, match) indices, most specific first.
    entries: Vec<(usize, usize, usize)>,
    /// Positions in `entries` by path matcher.
    paths: PathIndex,
}

/// Positions in [`ServiceRoutes::entries`] (ascending in each list) by
/// what their path matcher needs.
#[derive(Clone, Debug, Default)]
struct PathIndex {
    exact: HashMap<String, Vec<usize>>,
    /// By the prefix without trailing slashes (`""` for `/`), as
    /// [`PathMatch::matches`] compares it.
    prefix: HashMap<String, Vec<usize>>,
    regex: Vec<usize>,
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
        let mut paths = PathIndex::default();
        for (position, &(r, i, m)) in entries.iter().enumerate() {
            match &routes[r].rules[i].matches[m].path {
                PathMatch::Exact(p) => paths.exact.entry(p.clone()).or_default().push(position),
                PathMatch::Regex(_) => paths.regex.push(position),
                PathMatch::Prefix(p) => paths
                    .prefix
                    .entry(p.trim_end_matches('/').to_owned())
                    .or_default()
                    .push(position),
            }
        }
        Self {
            routes,
            entries,
            paths,
        }
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
        let mut candidates = self.paths.candidates(request.path);
        candidates.sort_unstable();
        candidates.dedup();
        candidates.into_iter().find_map(|position| {
            let (r, i, m) = self.entries[position];
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

#[cfg(test)]
impl ServiceRoutes {
    /// The rule [`ServiceRoutes::select`] must pick, by scanning every
    /// match in precedence order (what the index saves).
    pub(crate) fn select_by_scan(&self, request: &Request<'_>) -> Option<(usize, usize, usize)> {
        self.entries
            .iter()
            .copied()
            .find(|&(r, i, m)| self.routes[r].rules[i].matches[m].matches(request))
    }

    /// The (route, rule, match) indices of what `select` picked.
    pub(crate) fn indices(&self, selected: &Selected<'_>) -> (usize, usize, usize) {
        let r = self
            .routes
            .iter()
            .position(|route| Arc::ptr_eq(route, selected.route))
            .unwrap_or(usize::MAX);
        let m = selected
            .rule
            .matches
            .iter()
            .position(|matched| std::ptr::eq(matched, selected.matched))
            .unwrap_or(usize::MAX);
        (r, selected.rule_index, m)
    }
}

// === impl PathIndex ===

impl PathIndex {
    /// The positions whose path matcher may take `path`: every one that
    /// does, and only regular expressions besides. A prefix `P` takes
    /// `path` when `path` is `P` or goes on with `/` after it, so the
    /// prefixes to look up end where `path` ends or before one of its `/`.
    fn candidates(&self, path: &str) -> Vec<usize> {
        let mut found = self.regex.clone();
        if let Some(exact) = self.exact.get(path) {
            found.extend(exact);
        }
        let ends = path
            .bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'/')
            .map(|(at, _)| at)
            .chain([path.len()]);
        for end in ends {
            if let Some(prefixed) = path.get(..end).and_then(|p| self.prefix.get(p)) {
                found.extend(prefixed);
            }
        }
        found
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
