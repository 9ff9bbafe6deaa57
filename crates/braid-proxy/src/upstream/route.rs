//! Where a captured outbound connection (or, for HTTP, each request) goes,
//! and the connection that gets it there: an HBONE tunnel to a meshed
//! destination's proxy, or plain TCP from the pod's own address.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use braid_identity::SpiffeId;
use braid_model::WaypointRef;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

use super::{PodContext, UpstreamError};
use crate::{
    hbone::HboneStream,
    state::Resolved,
    telemetry::{Direction, Labels, Peer},
};

/// Bounds dialling a passthrough destination.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How an upstream is reached.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Via {
    /// HBONE to `proxy`, which must present `expected`.
    Mesh {
        /// The destination's proxy (its sidecar or its ztunnel listener).
        proxy: SocketAddr,
        /// The destination workload's identity.
        expected: SpiffeId,
    },
    /// Plain TCP: the destination is outside the mesh.
    Plain,
}

/// One resolved destination: where, how, and who (for telemetry).
#[derive(Clone, Debug)]
pub(crate) struct Route {
    /// `ip:port` of the destination itself.
    pub(crate) target: SocketAddr,
    /// How to reach it.
    pub(crate) via: Via,
    /// The destination as telemetry labels.
    pub(crate) destination: Peer,
    /// The waypoint the route goes through, if the destination has one.
    pub(crate) waypoint: Option<WaypointRef>,
}

/// A connection to an upstream.
pub(crate) enum UpstreamIo {
    /// A tunnel stream.
    Hbone(HboneStream),
    /// Plain TCP.
    Tcp(TcpStream),
}

// === impl Route ===

impl Route {
    /// Resolves `original` as `pod` sees it now (a service VIP picks one of
    /// its ready endpoints each time).
    pub(crate) fn resolve(pod: &PodContext, original: SocketAddr) -> Result<Self, UpstreamError> {
        let route = Self::resolve_any(pod, original)?;
        if braid_model::catalog::ports::is_proxy_port(route.target.port()) {
            let own = pod.workload().ok();
            route.check_not_a_proxy(own.as_ref().map_or(&[], |w| &w.addresses))?;
        }
        Ok(route)
    }

    /// Refuses a route to a port the mesh's proxies bind, where that is a
    /// proxy: a meshed destination's (its proxy would refuse the tunnel
    /// anyway) or this pod's own, by one of `own` addresses, loopback or the
    /// unspecified address. Dialling it would reach the proxy itself, which
    /// would take the connection as new traffic and send it on again.
    /// Elsewhere (a host outside the mesh) the port is no proxy's and passes.
    pub(crate) fn check_not_a_proxy(&self, own: &[IpAddr]) -> Result<(), UpstreamError> {
        let target = self.target;
        if !braid_model::catalog::ports::is_proxy_port(target.port()) {
            return Ok(());
        }
        let ip = target.ip().to_canonical();
        let local = ip.is_loopback() || ip.is_unspecified() || own.contains(&ip);
        if local || self.mtls() {
            return Err(UpstreamError::ProxyPort { target });
        }
        Ok(())
    }

    /// Resolves `original` without looking at where the route leads.
    fn resolve_any(pod: &PodContext, original: SocketAddr) -> Result<Self, UpstreamError> {
        let resolved = pod
            .state
            .resolve(original, pod.waypoints())
            .map_err(UpstreamError::Unresolved)?;
        Ok(match resolved {
            Resolved::Mesh(destination) => Route {
                target: destination.target,
                via: Via::Mesh {
                    proxy: destination.proxy,
                    expected: PodContext::identity(&destination.workload)
                        .map_err(UpstreamError::Unresolved)?,
                },
                destination: Peer::workload(&destination.workload),
                waypoint: destination.waypoint,
            },
            Resolved::Passthrough { target } => Route {
                target,
                via: Via::Plain,
                destination: pod
                    .state
                    .workload_by_ip(target.ip())
                    .map(|w| Peer::workload(&w))
                    .unwrap_or_else(Peer::unknown),
                waypoint: None,
            },
        })
    }

    /// Whether traffic on this route travels over mutual TLS.
    pub(crate) fn mtls(&self) -> bool {
        matches!(self.via, Via::Mesh { .. })
    }

    /// Outbound telemetry labels from `pod` to this route.
    pub(crate) fn labels(&self, pod: &PodContext) -> Labels {
        Labels {
            direction: Direction::Outbound,
            source: pod.peer(),
            destination: self.destination.clone(),
            mtls: self.mtls(),
        }
    }

    /// Outbound labels for a destination that could not be resolved.
    pub(crate) fn unresolved_labels(pod: &PodContext) -> Labels {
        Labels {
            direction: Direction::Outbound,
            source: pod.peer(),
            destination: Peer::unknown(),
            mtls: false,
        }
    }

    /// Opens a connection to the route as `pod`: over HBONE with the pod's
    /// identity, or plain TCP from its address.
    pub(crate) async fn dial(&self, pod: &PodContext) -> Result<UpstreamIo, UpstreamError> {
        match &self.via {
            Via::Mesh { proxy, expected } => {
                let source = pod.workload().map_err(UpstreamError::NotReady)?;
                let id = PodContext::identity(&source).map_err(UpstreamError::NotReady)?;
                let cert = pod
                    .certificate(&id)
                    .await
                    .map_err(UpstreamError::NotReady)?;
                let stream = pod
                    .pool
                    .connect_from(pod, &cert, *proxy, expected, self.target)
                    .await
                    .map_err(|error| match &self.waypoint {
                        Some(waypoint) => UpstreamError::WaypointDown {
                            waypoint: format!("{}/{}", waypoint.namespace, waypoint.name),
                            source: Box::new(error),
                        },
                        None => error.into(),
                    })?;
                tracing::debug!(
                    source = %id, destination = %expected, target = %self.target,
                    "outbound HBONE tunnel open"
                );
                Ok(UpstreamIo::Hbone(stream))
            }
            Via::Plain => {
                let target = self.target;
                let tcp = tokio::time::timeout(CONNECT_TIMEOUT, pod.connect(target))
                    .await
                    .map_err(|_| UpstreamError::ConnectTimeout {
                        target,
                        after: CONNECT_TIMEOUT,
                    })?
                    .map_err(|source| UpstreamError::Connect { target, source })?;
                Ok(UpstreamIo::Tcp(tcp))
            }
        }
    }
}

// === impl UpstreamIo ===

impl UpstreamIo {
    /// Copies bytes both ways between `client` and this upstream until both
    /// sides are done; returns (client → upstream, upstream → client).
    pub(crate) async fn splice(self, mut client: TcpStream) -> io::Result<(u64, u64)> {
        match self {
            Self::Hbone(tunnel) => crate::hbone::splice(client, tunnel).await,
            Self::Tcp(mut tcp) => tokio::io::copy_bidirectional(&mut client, &mut tcp).await,
        }
    }
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Hbone(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Hbone(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Hbone(s) => Pin::new(s).poll_flush(cx),
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Hbone(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(target: &str, via: Via) -> Route {
        Route {
            target: target.parse().expect("test address"),
            via,
            destination: Peer::unknown(),
            waypoint: None,
        }
    }

    fn mesh() -> Via {
        Via::Mesh {
            proxy: "198.18.0.20:15008".parse().expect("test address"),
            expected: SpiffeId::new("cluster.local", "shop", "web").expect("test identity"),
        }
    }

    /// Outbound traffic never reaches a proxy's own port: not this pod's
    /// (by its address, loopback or 0.0.0.0), not a meshed destination's.
    #[test]
    fn connect_to_own_proxy_port_is_refused_outbound() {
        let own = [IpAddr::from([198, 18, 0, 10])];
        for target in [
            "198.18.0.10:15001",
            "127.0.0.1:15006",
            "0.0.0.0:15008",
            "[::1]:15001",
            "[::ffff:127.0.0.1]:15021",
        ] {
            let refused = route(target, Via::Plain).check_not_a_proxy(&own);
            assert!(
                matches!(refused, Err(UpstreamError::ProxyPort { .. })),
                "{target}: {refused:?}"
            );
        }
        // Through a VIP to the pod itself, or to another meshed pod.
        assert!(
            route("198.18.0.10:15020", mesh())
                .check_not_a_proxy(&own)
                .is_err()
        );
        assert!(
            route("198.18.0.20:15001", mesh())
                .check_not_a_proxy(&own)
                .is_err()
        );
        // The pod calling itself on an app port, or a host outside the mesh
        // that happens to use the port, passes.
        assert!(
            route("198.18.0.10:8080", mesh())
                .check_not_a_proxy(&own)
                .is_ok()
        );
        assert!(
            route("127.0.0.1:8080", Via::Plain)
                .check_not_a_proxy(&own)
                .is_ok()
        );
        assert!(
            route("198.18.0.30:15001", Via::Plain)
                .check_not_a_proxy(&own)
                .is_ok()
        );
    }
}
