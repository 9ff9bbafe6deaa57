//! A pod's outbound connections proxied as bytes: resolved and dialled
//! (over HBONE to a meshed destination with the pod's identity, as plain
//! TCP from the pod's own address otherwise), then relayed and counted.
//! Which connections come here is decided above, in [`crate::outbound`].

use std::{io, net::SocketAddr};

use tokio::{io::AsyncWriteExt as _, net::TcpStream};

use crate::{
    detect::sniff::Early,
    telemetry::Connection,
    upstream::{PodContext, Route, UpstreamError, UpstreamIo},
};

/// Why a connection proxied as bytes failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RelayError {
    /// It never reached its upstream.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The client left before its upstream was connected.
    #[error("client went away: {0}")]
    ClientGone(#[source] io::Error),
    /// The connection broke while relaying.
    #[error("connection to {target} broke: {source}")]
    Broken {
        /// The upstream.
        target: SocketAddr,
        /// The socket error.
        source: io::Error,
    },
}

/// A connection decided to be proxied as bytes, with its upstream open.
pub(crate) struct Opened {
    tcp: TcpStream,
    upstream: UpstreamIo,
    connection: Connection,
    peer: SocketAddr,
    /// Where the client was going.
    pub(crate) original: SocketAddr,
    target: SocketAddr,
    /// Bytes of a server-first greeting already passed to the client.
    greeted: u64,
}

/// Resolves and dials the connection's upstream (over HBONE to a meshed
/// destination, as plain TCP otherwise) and counts it opened. A decided
/// connection that fails here is counted closed at once, with no bytes.
pub(crate) async fn opaque(
    mut tcp: TcpStream,
    peer: SocketAddr,
    pod: &PodContext,
    original: SocketAddr,
    early: Option<Early>,
) -> Result<Opened, RelayError> {
    let (route, dialed, greeting) = match early {
        Some(Early {
            route,
            io,
            greeting,
        }) => (route, Ok(io), greeting),
        None => {
            let route = Route::resolve(pod, original)?;
            let dialed = route.dial(pod).await;
            (route, dialed, Vec::new())
        }
    };
    let connection = pod.metrics.open(route.labels(pod));
    let target = route.target;
    let connected = async {
        let upstream = dialed?;
        // What a server-first protocol already said while we sniffed.
        tcp.write_all(&greeting)
            .await
            .map_err(RelayError::ClientGone)?;
        Ok::<_, RelayError>(upstream)
    }
    .await;
    match connected {
        Ok(upstream) => Ok(Opened {
            tcp,
            upstream,
            connection,
            peer,
            original,
            target,
            greeted: greeting.len() as u64,
        }),
        Err(reason) => {
            connection.finish(&peer.to_string(), &target.to_string(), 0, 0);
            Err(reason)
        }
    }
}

// === impl Opened ===

impl Opened {
    /// Relays bytes both ways until the connection ends, then counts it
    /// closed with its bytes.
    pub(crate) async fn relay(self) -> Result<(), RelayError> {
        let Self {
            tcp,
            upstream,
            connection,
            peer,
            target,
            greeted,
            ..
        } = self;
        let outcome = upstream
            .splice(tcp)
            .await
            .map_err(|source| RelayError::Broken { target, source });
        let (sent, received) = match &outcome {
            Ok((sent, received)) => (*sent, received + greeted),
            Err(_) => (0, 0),
        };
        connection.finish(&peer.to_string(), &target.to_string(), sent, received);
        outcome.map(drop)
    }
}
