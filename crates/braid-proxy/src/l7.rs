//! HTTP-aware proxying for sidecars: outbound connections that speak
//! HTTP/1.x or HTTP/2 (gRPC included) are served with hyper and each request
//! is routed on its own, with upstream connection reuse, request metrics
//! and a JSON access-log line per request. Everything else stays L4.
//!
//! The client's HTTP version is kept upstream (HTTP/1.1 to HTTP/1.1, h2 to
//! h2), so nothing is translated and the application sees what its peer
//! sent. WebSocket and other HTTP/1.1 upgrades switch to bytes after `101`.

use std::{net::SocketAddr, sync::Arc};

use hyper::{
    server::conn::{http1, http2},
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

mod body;
mod error;
mod forward;
mod mirror;
mod pool;
mod routing;

pub use error::ERROR_HEADER;
pub(crate) use forward::Caller;
pub(crate) use pool::Senders;

use crate::{detect::Protocol, upstream::PodContext};

/// Serves one client connection that speaks HTTP `version`, sending each
/// request to where `original` resolves at that moment. `io` is a captured
/// connection (a sidecar's outbound) or a tunnel's stream (at a waypoint,
/// where `caller` is the tunnel's peer).
pub(crate) async fn serve_outbound<I>(
    io: I,
    version: Protocol,
    pod: Arc<PodContext>,
    senders: Senders,
    original: SocketAddr,
    client: SocketAddr,
    caller: Option<Caller>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = Arc::new(forward::Outbound {
        pod,
        senders,
        original,
        client,
        version,
        caller,
    });
    let service = service_fn(move |request| forward::forward(ctx.clone(), request));
    let io = TokioIo::new(io);
    let served = match version {
        Protocol::Http2 => {
            http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, service)
                .await
        }
        _ => {
            http1::Builder::new()
                .serve_connection(io, service)
                .with_upgrades()
                .await
        }
    };
    if let Err(error) = served {
        tracing::debug!(%client, %original, %error, "outbound HTTP connection ended");
    }
}
