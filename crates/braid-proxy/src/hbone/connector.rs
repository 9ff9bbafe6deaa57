//! What the server asks for each tunnel: a decision and an upstream.

use std::{io, net::SocketAddr, time::Duration};

use braid_identity::SpiffeId;
use http::StatusCode;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    time::timeout,
};

/// Decides whether a client may reach a target, and connects to it.
///
/// Called once per `CONNECT` stream with the client's verified identity.
/// Authorization belongs here (it comes in a later step); so does choosing
/// how to dial (plain TCP, a socket mark, another tunnel).
pub trait Connector: Send + Sync + 'static {
    /// The upstream connection the tunnel is spliced to.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Connects `peer` to `target`, or says why not.
    fn connect(
        &self,
        peer: &SpiffeId,
        target: SocketAddr,
    ) -> impl Future<Output = Result<Self::Stream, Refusal>> + Send;
}

/// Why a [`Connector`] did not open a tunnel; each maps to one status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Policy says no: `403`, with the reason in the response.
    #[error("denied: {reason}")]
    Denied {
        /// Shown to the client in the reason header.
        reason: String,
    },
    /// The target is a port the mesh's proxies bind
    /// ([`braid_model::catalog::ports::is_proxy_port`]): `400`, since no
    /// policy could make it right. A tunnel there would reach the proxy
    /// itself, which would take it as new traffic and open another tunnel
    /// to the same target, and so on until the node runs out of file
    /// descriptors.
    #[error(
        "{target} is refused: port {} is reserved for the mesh's proxies and is never a \
         tunnel's target (a tunnel there would loop back into the proxy)",
        .target.port()
    )]
    ProxyPort {
        /// The target.
        target: SocketAddr,
    },
    /// Dialling the target failed: `503` when nothing listens there
    /// (connection refused), `504` on a timeout, `502` otherwise.
    #[error("could not connect to {target}: {source}")]
    Dial {
        /// The target.
        target: SocketAddr,
        /// The socket error.
        source: io::Error,
    },
}

/// Dials the target over plain TCP, allowing everything.
#[derive(Clone, Debug)]
pub struct DirectConnector {
    /// Bounds each dial.
    pub timeout: Duration,
}

// === impl Refusal ===

impl Refusal {
    /// A policy refusal with `reason`.
    pub fn denied(reason: impl Into<String>) -> Self {
        Refusal::Denied {
            reason: reason.into(),
        }
    }

    /// [`Refusal::ProxyPort`] when `target` is on a port the mesh's proxies
    /// bind. A [`Connector`] that dials on a pod's behalf checks this
    /// before anything else (the inbound connector does, and counts the
    /// refusal as a denied connection).
    pub fn check_target(target: SocketAddr) -> Result<(), Refusal> {
        if braid_model::catalog::ports::is_proxy_port(target.port()) {
            return Err(Refusal::ProxyPort { target });
        }
        Ok(())
    }

    /// The response status this refusal becomes.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Denied { .. } => StatusCode::FORBIDDEN,
            Refusal::ProxyPort { .. } => StatusCode::BAD_REQUEST,
            Refusal::Dial { source, .. } => match source.kind() {
                io::ErrorKind::ConnectionRefused => StatusCode::SERVICE_UNAVAILABLE,
                io::ErrorKind::TimedOut => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            },
        }
    }
}

// === impl DirectConnector ===

impl Connector for DirectConnector {
    type Stream = TcpStream;

    async fn connect(&self, _: &SpiffeId, target: SocketAddr) -> Result<TcpStream, Refusal> {
        let dial = |source| Refusal::Dial { target, source };
        let tcp = timeout(self.timeout, TcpStream::connect(target))
            .await
            .map_err(|_| dial(io::ErrorKind::TimedOut.into()))?
            .map_err(dial)?;
        // Best effort: a target that already reset the connection shows
        // up on the first read, where the tunnel reports it.
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }
}
