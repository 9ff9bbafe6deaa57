//! Why a connection or request did not reach its upstream, kept typed up to
//! the stack that answers it: the L4 stack logs and counts it, the HTTP
//! stack turns it into a status ([`UpstreamError::status`]).

use std::{io, net::SocketAddr, time::Duration};

use http::StatusCode;

use crate::hbone;

/// A destination that could not be reached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The destination does not resolve now: a Service without that port
    /// or without a ready endpoint.
    #[error("{0}")]
    Unresolved(String),
    /// The pod cannot send as itself yet: the control plane has not sent
    /// its workload, or it has no certificate.
    #[error("{0}")]
    NotReady(String),
    /// The destination is a port the mesh's proxies bind, where reaching
    /// it would loop back into a proxy.
    #[error(
        "{target} is refused: port {} is reserved for the mesh's proxies \
         (connecting there would loop back into a proxy)",
        target.port()
    )]
    ProxyPort {
        /// The refused destination.
        target: SocketAddr,
    },
    /// The HBONE tunnel to the destination's proxy did not open; the
    /// error says which step failed and whether the proxy refused (boxed:
    /// it is large, and errors travel in every `Result` of the data path).
    #[error(transparent)]
    Hbone(Box<hbone::Error>),
    /// The waypoint that fronts the destination did not take the tunnel.
    /// Nothing is sent around it: the caller gets a refusal.
    #[error(
        "waypoint {waypoint} did not take the tunnel ({source}); traffic for this destination \
         only goes through its waypoint: check that the waypoint runs"
    )]
    WaypointDown {
        /// `<namespace>/<name>` of the waypoint.
        waypoint: String,
        /// What failed.
        source: Box<hbone::Error>,
    },
    /// Plain TCP: no connection within the limit.
    #[error("connecting to {target} timed out after {after:?}")]
    ConnectTimeout {
        /// The destination.
        target: SocketAddr,
        /// The limit.
        after: Duration,
    },
    /// Plain TCP: the connection failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// The destination.
        target: SocketAddr,
        /// The socket error.
        source: io::Error,
    },
    /// The HTTP handshake on a new upstream connection failed.
    #[error("{version} handshake with {target}: {source}")]
    Handshake {
        /// `HTTP/1.1` or `HTTP/2`.
        version: &'static str,
        /// The destination.
        target: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The upstream failed the request (reset, closed, malformed answer).
    #[error("upstream {target}: {source}")]
    Http {
        /// The destination.
        target: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
}

// === impl UpstreamError ===

impl From<hbone::Error> for UpstreamError {
    fn from(error: hbone::Error) -> Self {
        Self::Hbone(Box::new(error))
    }
}

impl UpstreamError {
    /// The status an HTTP client gets for this failure: 503 when there is
    /// nowhere to send (nothing resolves, nothing listens, the pod is not
    /// ready), 504 when the upstream did not answer in time, 403 when the
    /// destination's proxy refused by policy, 502 for any other failure of
    /// the upstream.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Unresolved(_)
            | Self::NotReady(_)
            | Self::ProxyPort { .. }
            | Self::WaypointDown { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Hbone(error) => match error.as_ref() {
                hbone::Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                hbone::Error::Refused { status, .. } => match *status {
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => StatusCode::FORBIDDEN,
                    StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => *status,
                    _ => StatusCode::BAD_GATEWAY,
                },
                _ => StatusCode::BAD_GATEWAY,
            },
            Self::ConnectTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Connect { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Connect { .. } | Self::Handshake { .. } | Self::Http { .. } => {
                StatusCode::BAD_GATEWAY
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: StatusCode) -> UpstreamError {
        UpstreamError::from(hbone::Error::Refused {
            proxy: "198.18.0.20:15008".parse().expect("test address"),
            target: "198.18.0.20:8080".parse().expect("test address"),
            status,
            reason: Some("denied by policy shop/deny-all".into()),
        })
    }

    /// What the HBONE error knew reaches the HTTP client: a policy refusal
    /// at the destination is 403 (not a generic 502), and its reason stays
    /// in the message.
    #[test]
    fn statuses_keep_what_the_layer_below_knew() {
        let denied = refused(StatusCode::FORBIDDEN);
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
        assert!(denied.to_string().contains("deny-all"), "{denied}");
        assert_eq!(
            refused(StatusCode::SERVICE_UNAVAILABLE).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            refused(StatusCode::BAD_REQUEST).status(),
            StatusCode::BAD_GATEWAY
        );

        let target: SocketAddr = "198.18.0.30:80".parse().expect("test address");
        let connect = |kind| UpstreamError::Connect {
            target,
            source: io::Error::from(kind),
        };
        assert_eq!(
            connect(io::ErrorKind::ConnectionRefused).status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "nothing listens"
        );
        assert_eq!(
            connect(io::ErrorKind::ConnectionReset).status(),
            StatusCode::BAD_GATEWAY
        );
        let timeout = UpstreamError::ConnectTimeout {
            target,
            after: Duration::from_secs(10),
        };
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            UpstreamError::ProxyPort { target }.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
