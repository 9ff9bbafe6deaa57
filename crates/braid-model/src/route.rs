//! HTTP routes (Gateway API `HTTPRoute`, GAMMA profile) as proxies apply
//! them: the resource ([`HttpRoute`]), which rule a request takes
//! ([`ServiceRoutes::select`], in `matching.rs`) and what the rule's filters
//! do to it (`filters.rs`).
//!
//! Shared by the control plane (validation, `braidctl` "which route would
//! this request take"), and every proxy, so all of them agree on one
//! matcher. Conversion from the Gateway API objects lives in `braid-crd`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ServiceRef;

mod filters;
mod matching;
mod pattern;

pub use filters::{Redirected, apply_header_modifier, rewrite_path};
pub use matching::{Request, Selected, ServiceRoutes};
pub use pattern::{Pattern, PatternError};

/// One HTTPRoute: where it attaches and its rules, in the order written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRoute {
    /// Namespace of the route.
    pub namespace: String,
    /// Name of the route.
    pub name: String,
    /// Creation time, seconds since the Unix epoch (`None` when unknown, as
    /// for files): the older of two equally specific routes wins.
    pub created: Option<i64>,
    /// What the route attaches to.
    pub parents: Vec<RouteParent>,
    /// Host names it serves; ignored for Service parents (GAMMA).
    pub hostnames: Vec<String>,
    /// The rules, in the order written.
    pub rules: Vec<RouteRule>,
}

/// What a route attaches to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RouteParent {
    /// A Service (GAMMA): the route applies to traffic for it, wherever the
    /// caller is. `port: None` attaches to every port of the Service.
    Service {
        /// The Service.
        service: ServiceRef,
        /// The Service port, if the parentRef named one.
        port: Option<u16>,
    },
    /// A Gateway (a waypoint): the route applies at that Gateway.
    Gateway {
        /// Namespace of the Gateway.
        namespace: String,
        /// Name of the Gateway.
        name: String,
        /// The listener (`sectionName`), if named.
        section: Option<String>,
    },
}

/// One rule: the request matches when any of `matches` does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRule {
    /// The rule's `name`, if it has one.
    pub name: Option<String>,
    /// Never empty: a rule written without matches gets one matching every
    /// request (path prefix `/`).
    pub matches: Vec<RouteMatch>,
    /// Filters applied to every request the rule takes, in order.
    pub filters: Vec<Filter>,
    /// Where requests go, by weight. Empty with no redirect filter: the
    /// request is answered 500, as the specification asks.
    pub backends: Vec<Backend>,
    /// Time limits.
    pub timeouts: Timeouts,
}

/// One match: every field set must match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteMatch {
    /// The path match (prefix `/` when the route named none).
    pub path: PathMatch,
    /// Header matches (names compared without case).
    pub headers: Vec<ValueMatch>,
    /// Query parameter matches (names compared exactly).
    pub query: Vec<ValueMatch>,
    /// The method, upper case.
    pub method: Option<String>,
}

/// How a request's path (without its query) is matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathMatch {
    /// The whole path, byte for byte.
    Exact(String),
    /// A prefix of whole path segments: `/foo` matches `/foo` and
    /// `/foo/bar`, not `/foobar`; a trailing `/` in the prefix is ignored.
    Prefix(String),
    /// A regular expression the whole path must match.
    Regex(Pattern),
}

/// A header or query parameter match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueMatch {
    /// The header (lower case) or parameter name.
    pub name: String,
    /// How its value is matched.
    pub value: StringMatch,
}

/// How a value is matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StringMatch {
    /// Byte for byte.
    Exact(String),
    /// A regular expression the whole value must match.
    Regex(Pattern),
}

/// One filter of a rule or of a backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Filter {
    /// Changes the request's headers.
    RequestHeaders(HeaderModifier),
    /// Changes the response's headers.
    ResponseHeaders(HeaderModifier),
    /// Answers with a redirect instead of forwarding.
    Redirect(Redirect),
    /// Rewrites the host or path before forwarding.
    Rewrite(Rewrite),
    /// Sends a copy of the request elsewhere and drops its answer.
    Mirror(Mirror),
}

/// Header changes: `set` replaces, `add` appends, `remove` deletes (in that
/// order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderModifier {
    /// (name, value) pairs that replace any existing value.
    pub set: Vec<(String, String)>,
    /// (name, value) pairs appended to existing values.
    pub add: Vec<(String, String)>,
    /// Names removed.
    pub remove: Vec<String>,
}

/// A redirect answer (`RequestRedirect`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirect {
    /// `http` or `https`; `None` keeps the request's.
    pub scheme: Option<String>,
    /// `None` keeps the request's host.
    pub hostname: Option<String>,
    /// `None` keeps the request's path.
    pub path: Option<PathModifier>,
    /// `None` derives it from the scheme (or keeps the request's).
    pub port: Option<u16>,
    /// A 3xx status (301, 302, 303, 307 or 308; 302 by default).
    pub status: u16,
}

/// A rewrite before forwarding (`URLRewrite`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewrite {
    /// Replaces the `Host` / `:authority`.
    pub hostname: Option<String>,
    /// Replaces the path.
    pub path: Option<PathModifier>,
}

/// How a redirect or rewrite changes the path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathModifier {
    /// The whole path becomes this.
    Full(String),
    /// The part the rule's prefix matched becomes this.
    Prefix(String),
}

/// A copy of each request (`RequestMirror`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirror {
    /// Where copies go.
    pub service: ServiceRef,
    /// The Service port.
    pub port: u16,
    /// The share of requests copied, in millionths (1 000 000 = all).
    pub parts_per_million: u32,
}

/// A weighted destination of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    /// The Service requests go to.
    pub service: ServiceRef,
    /// The Service port.
    pub port: u16,
    /// Its share relative to the rule's other backends; 0 gets none.
    pub weight: u32,
    /// Filters applied only to requests sent to this backend.
    pub filters: Vec<Filter>,
    /// Why this backend cannot be used (an unresolved reference): requests
    /// that pick it are answered 500, so the other backends keep their
    /// shares.
    pub invalid: Option<String>,
}

/// A rule's time limits (`timeouts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// From the request's start to its response's headers, retries included.
    pub request: Option<Duration>,
    /// One attempt at a backend.
    pub backend_request: Option<Duration>,
}

// === impl HttpRoute ===

impl HttpRoute {
    /// `<namespace>/<name>`: its xDS resource name.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The Service ports this route attaches to (`None`: every port).
    pub fn service_parents(&self) -> impl Iterator<Item = (&ServiceRef, Option<u16>)> {
        self.parents.iter().filter_map(|p| match p {
            RouteParent::Service { service, port } => Some((service, *port)),
            RouteParent::Gateway { .. } => None,
        })
    }

    /// The Gateways this route attaches to, as (namespace, name).
    pub fn gateway_parents(&self) -> impl Iterator<Item = (&str, &str)> {
        self.parents.iter().filter_map(|p| match p {
            RouteParent::Gateway {
                namespace, name, ..
            } => Some((namespace.as_str(), name.as_str())),
            RouteParent::Service { .. } => None,
        })
    }

    /// Whether this route's `hostnames` admit `host` (none admit every
    /// host; `*.example.com` admits every name below `example.com`).
    pub fn admits_host(&self, host: &str) -> bool {
        self.hostnames.is_empty()
            || self.hostnames.iter().any(|h| match h.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
                None => h.eq_ignore_ascii_case(host),
            })
    }
}

// === impl RouteRule ===

impl RouteRule {
    /// The backend a request with `roll` (uniform in `0..u32::MAX`) goes
    /// to; `None` when every weight is 0 (or there are none).
    pub fn pick_backend(&self, roll: u32) -> Option<&Backend> {
        let total: u64 = self.backends.iter().map(|b| u64::from(b.weight)).sum();
        if total == 0 {
            return None;
        }
        let mut point = u64::from(roll) * total / (u64::from(u32::MAX) + 1);
        for backend in &self.backends {
            let weight = u64::from(backend.weight);
            if point < weight {
                return Some(backend);
            }
            point -= weight;
        }
        None
    }

    /// The rule's redirect filter, if any: such a rule answers itself.
    pub fn redirect(&self) -> Option<&Redirect> {
        self.filters.iter().find_map(|f| match f {
            Filter::Redirect(r) => Some(r),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests;
