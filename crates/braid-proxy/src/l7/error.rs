//! Why the proxy answers an HTTP request itself, and the one place such an
//! answer is made: a status, the reason in `braid-proxy-error` and as the
//! body.

use std::time::Duration;

use braid_model::ServiceRef;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, combinators::UnsyncBoxBody};

use crate::upstream::UpstreamError;

/// The response body type every outbound request gets.
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// Header carrying the reason when the proxy answers a request itself.
pub const ERROR_HEADER: &str = "braid-proxy-error";

/// A request the proxy could not (or must not) send upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// HTTPRoutes attach to the Service but none of their rules matches.
    #[error("no rule of the HTTPRoutes for {service} port {port} matches {method} {path}")]
    NoRoute {
        /// The Service the request was for.
        service: ServiceRef,
        /// Its port.
        port: u16,
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
    },
    /// The matching rule has no backend to send to (none, or every weight
    /// is 0).
    #[error("HTTPRoute {route} rule {rule} has no backend with a weight above 0")]
    NoBackend {
        /// `<namespace>/<name>`.
        route: String,
        /// The rule's position or name.
        rule: String,
    },
    /// The backend the request picked cannot be used.
    #[error("HTTPRoute {route} backend {backend}: {reason}")]
    InvalidBackend {
        /// `<namespace>/<name>`.
        route: String,
        /// The backend Service.
        backend: ServiceRef,
        /// Why (from the control plane, or what the proxy found).
        reason: String,
    },
    /// The request did not reach its upstream, or the upstream failed
    /// before answering; the status follows what failed
    /// ([`UpstreamError::status`]).
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// No response headers within the route's timeout.
    #[error("HTTPRoute {route}: no response within {}ms (timeouts)", after.as_millis())]
    Timeout {
        /// `<namespace>/<name>`.
        route: String,
        /// The configured limit.
        after: Duration,
    },
}

// === impl HttpError ===

impl HttpError {
    /// The route involved (`<namespace>/<name>`), or empty.
    pub(crate) fn route(&self) -> &str {
        match self {
            Self::NoBackend { route, .. }
            | Self::InvalidBackend { route, .. }
            | Self::Timeout { route, .. } => route,
            Self::NoRoute { .. } | Self::Upstream(_) => "",
        }
    }

    /// The status the client gets.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute { .. } => StatusCode::NOT_FOUND,
            Self::NoBackend { .. } | Self::InvalidBackend { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Upstream(error) => error.status(),
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// The proxy's own answer with `status`: `reason` in a header and as the
/// body.
pub(crate) fn respond(status: StatusCode, reason: &str) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(format!("{reason}\n")))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    let value = HeaderValue::from_str(&reason.replace(|c: char| !c.is_ascii_graphic(), " "))
        .unwrap_or_else(|_| HeaderValue::from_static("proxy error"));
    response.headers_mut().insert(ERROR_HEADER, value);
    response
}
