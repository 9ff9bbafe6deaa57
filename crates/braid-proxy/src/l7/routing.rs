//! The route step: which HTTPRoute rule a request for a Service takes
//! (GAMMA: routes whose parent is the Service apply to every caller), what
//! the rule's filters make of the request, and which backend Service it is
//! sent to. At a waypoint, routes attached to its Gateway serve the
//! Services no route attaches to. Requests for a Service no route attaches
//! to go where they were sent.

use std::{net::SocketAddr, time::Duration};

use braid_model::route::{
    self, Filter, HeaderModifier, Mirror, PathModifier, Redirected, Rewrite, apply_header_modifier,
    rewrite_path,
};
use http::{HeaderValue, Request, Uri, header, uri::PathAndQuery};

use super::error::HttpError;
use crate::state::ProxyState;

/// Where the route step sends a request.
#[derive(Debug)]
pub(crate) enum Step {
    /// No route attaches: to the original destination.
    Original,
    /// A rule answers with a redirect.
    Redirect {
        /// `<namespace>/<name>` of the route.
        route: String,
        /// The answer.
        answer: Redirected,
    },
    /// To a rule's backend.
    Backend(Routed),
}

/// A request routed to a backend.
#[derive(Debug)]
pub(crate) struct Routed {
    /// `<namespace>/<name>` of the route.
    pub(crate) route: String,
    /// The backend Service's VIP and port: resolved like a connection to it.
    pub(crate) target: SocketAddr,
    /// Header changes for the response, in order.
    pub(crate) response: Vec<HeaderModifier>,
    /// The rule's limit until response headers (the smaller of its request
    /// and backend-request timeouts).
    pub(crate) timeout: Option<Duration>,
    /// Where copies of the request go (each mirror's Service VIP and port).
    pub(crate) mirrors: Vec<SocketAddr>,
}

/// Routes `request`, sent by a caller in `caller_namespace` to `original`
/// (at waypoint `at`, if this is one), changing it as the rule's request
/// filters say.
pub(crate) fn route<B>(
    state: &ProxyState,
    caller_namespace: &str,
    original: SocketAddr,
    at: Option<&braid_model::WaypointRef>,
    request: &mut Request<B>,
) -> Result<Step, HttpError> {
    let Some(attached) = state.routes_for(original, caller_namespace, at) else {
        return Ok(Step::Original);
    };
    let uri = request.uri().clone();
    let view = route::Request {
        method: request.method().as_str(),
        path: uri.path(),
        query: uri.query(),
        headers: request.headers(),
    };
    let Some(selected) = attached.routes.select(&view) else {
        return Err(HttpError::NoRoute {
            service: attached.service,
            port: attached.port,
            method: request.method().to_string(),
            path: uri.path().to_string(),
        });
    };
    let name = selected.route.key();
    let prefix = selected.matched.path.prefix();
    if let Some(redirect) = selected.rule.redirect() {
        let (host, port) = authority(request, original.port());
        let answer = redirect.answer("http", &host, port, uri.path(), uri.query(), prefix);
        return Ok(Step::Redirect {
            route: name,
            answer,
        });
    }
    let rule_name = || {
        selected
            .rule
            .name
            .clone()
            .unwrap_or_else(|| selected.rule_index.to_string())
    };
    let Some(backend) = selected.rule.pick_backend(rand::random()) else {
        return Err(HttpError::NoBackend {
            route: name,
            rule: rule_name(),
        });
    };
    let invalid = |reason: String| HttpError::InvalidBackend {
        route: name.clone(),
        backend: backend.service.clone(),
        reason,
    };
    if let Some(reason) = &backend.invalid {
        return Err(invalid(reason.clone()));
    }
    let service = state
        .service(&backend.service)
        .ok_or_else(|| invalid("the Service is not known to this proxy".into()))?;
    let vip = service.vips.first().copied().ok_or_else(|| {
        invalid("the Service is headless; routes send only to Services with a cluster IP".into())
    })?;
    let mut response = Vec::new();
    let mut mirrors = Vec::new();
    for filter in selected.rule.filters.iter().chain(&backend.filters) {
        match filter {
            Filter::RequestHeaders(modifier) => {
                apply_header_modifier(modifier, request.headers_mut())
            }
            Filter::ResponseHeaders(modifier) => response.push(modifier.clone()),
            Filter::Rewrite(rewrite) => apply_rewrite(rewrite, prefix, request),
            Filter::Mirror(mirror) => {
                if rand::random_range(0..1_000_000) < mirror.parts_per_million {
                    mirrors.extend(mirror_target(state, mirror));
                }
            }
            // Answered above, before any backend was picked.
            Filter::Redirect(_) => {}
        }
    }
    let timeouts = selected.rule.timeouts;
    let timeout = match (timeouts.request, timeouts.backend_request) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(Step::Backend(Routed {
        route: name,
        target: SocketAddr::new(vip, backend.port),
        response,
        timeout,
        mirrors,
    }))
}

/// The VIP and port a mirror's copies go to; `None` (and no copy) when the
/// Service is unknown or headless.
fn mirror_target(state: &ProxyState, mirror: &Mirror) -> Option<SocketAddr> {
    let Some(service) = state.service(&mirror.service) else {
        tracing::debug!(service = %mirror.service, "mirror skipped: the Service is not known to this proxy");
        return None;
    };
    let vip = service.vips.first()?;
    Some(SocketAddr::new(*vip, mirror.port))
}

/// The host and port the request was sent to (`:authority`, else `Host`),
/// the port defaulting to the one dialled.
fn authority<B>(request: &Request<B>, dialled: u16) -> (String, Option<u16>) {
    let raw = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            let host = request.headers().get(header::HOST)?;
            host.to_str().ok().map(str::to_string)
        })
        .unwrap_or_default();
    match raw.parse::<http::uri::Authority>() {
        Ok(parsed) => (
            parsed.host().to_string(),
            Some(parsed.port_u16().unwrap_or(dialled)),
        ),
        Err(_) => (raw, Some(dialled)),
    }
}

/// Applies a `URLRewrite`: the path (keeping the query) and the host.
fn apply_rewrite<B>(rewrite: &Rewrite, prefix: Option<&str>, request: &mut Request<B>) {
    if let Some(modifier) = &rewrite.path {
        set_path(request, modifier, prefix);
    }
    if let Some(host) = &rewrite.hostname {
        let Ok(value) = HeaderValue::from_str(host) else {
            return;
        };
        if request.uri().authority().is_some() {
            let mut parts = request.uri().clone().into_parts();
            if let Ok(authority) = host.parse() {
                parts.authority = Some(authority);
            }
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
        if request.headers().contains_key(header::HOST) || request.uri().authority().is_none() {
            request.headers_mut().insert(header::HOST, value);
        }
    }
}

fn set_path<B>(request: &mut Request<B>, modifier: &PathModifier, prefix: Option<&str>) {
    let uri = request.uri();
    let path = rewrite_path(modifier, prefix, uri.path());
    let joined = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let Ok(path_and_query) = joined.parse::<PathAndQuery>() else {
        return;
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}

#[cfg(test)]
mod tests;
