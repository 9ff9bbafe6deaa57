//! Where a pooled connection's TCP socket comes from.

use std::{future::Future, io, net::SocketAddr, pin::Pin};

use tokio::net::TcpStream;

/// A TCP connection being opened.
pub type Dialing<'a> = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + 'a>>;

/// Opens the TCP connections under HBONE: from this process's own network
/// namespace ([`DirectDial`]), or from a pod's, with the proxy's socket mark,
/// so the tunnel leaves with the pod's address and skips capture.
pub trait Dial: Send + Sync {
    /// Tells dialers apart in the [`Pool`](super::Pool): connections made
    /// by dialers with different origins are never shared.
    fn origin(&self) -> u64;

    /// Connects to `to`.
    fn connect(&self, to: SocketAddr) -> Dialing<'_>;
}

/// Dials from the calling process's network namespace (origin 0).
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectDial;

impl Dial for DirectDial {
    fn origin(&self) -> u64 {
        0
    }

    fn connect(&self, to: SocketAddr) -> Dialing<'_> {
        Box::pin(TcpStream::connect(to))
    }
}
