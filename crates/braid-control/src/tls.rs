//! TLS on the control plane's gRPC port, with a certificate for its own
//! identity (`spiffe://<td>/ns/braid-system/sa/braid-control`) from its own
//! CA, renewed by the certificate manager. Client certificates are optional:
//! proxies reach the certificate service before they have one and
//! authenticate with a token instead.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use braid_identity::{CertificateManager, SpiffeId, tls};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// A handshake that takes longer than this is dropped, so a client that
/// connects and stalls holds nothing for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the gRPC server.
const BACKLOG: usize = 64;

/// One accepted TLS connection, as the gRPC server wants it.
#[derive(Debug)]
pub struct TlsConnection(TlsStream<TcpStream>);

/// Accepts on `listener` and hands over handshaken connections until the
/// returned stream is dropped. Each handshake uses the current certificate,
/// so a renewal applies to the next connection.
pub fn incoming(
    listener: TcpListener,
    manager: CertificateManager,
    id: SpiffeId,
) -> ReceiverStream<io::Result<TlsConnection>> {
    let (tx, rx) = mpsc::channel(BACKLOG);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed on the xDS port");
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let (tx, manager, id) = (tx.clone(), manager.clone(), id.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(tcp, &manager, &id)).await {
                    Ok(Ok(conn)) => drop(tx.send(Ok(conn)).await),
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

async fn handshake(
    tcp: TcpStream,
    manager: &CertificateManager,
    id: &SpiffeId,
) -> io::Result<TlsConnection> {
    let other = |e: String| io::Error::other(e);
    let cert = match manager.current(id) {
        Some(cert) => cert,
        None => manager.fetch(id).await.map_err(|e| other(e.to_string()))?,
    };
    let bundle = manager
        .trust_bundle()
        .ok_or_else(|| other("no trust bundle yet".into()))?;
    let config = tls::server_config_client_cert_optional(&cert, &bundle)
        .map_err(|e| other(e.to_string()))?;
    tcp.set_nodelay(true)?;
    Ok(TlsConnection(TlsAcceptor::from(config).accept(tcp).await?))
}

// === impl TlsConnection ===

impl Connected for TlsConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
