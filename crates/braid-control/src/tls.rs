//! TLS on the control plane's gRPC port, with a certificate for its own
//! identity (`spiffe://<td>/ns/braid-system/sa/braid-control`) from its own
//! CA, renewed by the certificate manager. Client certificates are optional:
//! proxies reach the certificate service before they have one and
//! authenticate with a token instead.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use braid_identity::{CertificateManager, SpiffeId, tls};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// One accepted TLS connection.
#[derive(Debug)]
pub struct TlsConnection(TlsStream<TcpStream>);

/// The server side of a TLS handshake on `tcp` with the current certificate
/// of `id` (so a renewal applies to the next connection). The caller bounds
/// how long it may take.
pub(crate) async fn handshake(
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
    Ok(TlsConnection(TlsAcceptor::from(config).accept(tcp).await?))
}

// === impl TlsConnection ===

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
