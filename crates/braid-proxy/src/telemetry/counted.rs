//! A stream that counts its bytes and finishes its [`Connection`] when
//! dropped: for paths where the copying happens out of sight (the HBONE
//! server splices the upstream it was handed).

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Connection;

/// Wraps the destination side of a connection: bytes written to it were
/// sent by the source, bytes read from it go back to the source.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    connection: Option<Connection>,
    client: String,
    target: String,
    sent: u64,
    received: u64,
}

impl<S> Counted<S> {
    /// Counts `inner` for `connection` between `client` and `target`.
    pub fn new(inner: S, connection: Connection, client: String, target: String) -> Self {
        Self {
            inner,
            connection: Some(connection),
            client,
            target,
            sent: 0,
            received: 0,
        }
    }
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.finish(&self.client, &self.target, self.sent, self.received);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.received += (buf.filled().len() - before) as u64;
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            this.sent += *n as u64;
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
