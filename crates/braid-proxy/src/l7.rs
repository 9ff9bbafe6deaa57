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
use tokio::net::TcpStream;

mod body;
mod error;
mod forward;
mod mirror;
mod pool;
mod routing;
pub(crate) mod sniff;

pub use forward::ERROR_HEADER;
pub(crate) use pool::Senders;

use crate::{detect::Protocol, l4::PodContext};

/// Serves one client connection that speaks HTTP `version`, sending each
/// request to where `original` resolves at that moment.
pub(crate) async fn serve_outbound(
    tcp: TcpStream,
    version: Protocol,
    pod: Arc<PodContext>,
    senders: Senders,
    original: SocketAddr,
    client: SocketAddr,
) {
    let ctx = Arc::new(forward::Outbound {
        pod,
        senders,
        original,
        client,
        version,
    });
    let service = service_fn(move |request| forward::forward(ctx.clone(), request));
    let io = TokioIo::new(tcp);
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
