//! One tunnel as a byte stream: an HTTP/2 stream behind `AsyncRead` and
//! `AsyncWrite`.
//!
//! TCP semantics map onto HTTP/2 as HBONE expects: shutting down the write
//! side sends `END_STREAM` (the peer reads EOF, the other direction keeps
//! flowing); a stream dropped before both directions have ended is reset
//! (`RST_STREAM CANCEL`), and a reset from the peer is an io error
//! (`ConnectionReset`) on the next read or write.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A tunnel opened by [`Pool::connect`](super::Pool::connect) (or accepted
/// by the [`Server`](super::Server)): read and write it like a TCP stream.
pub struct HboneStream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received but not yet read; at most one DATA frame.
    pending: Bytes,
    write_closed: bool,
    /// The pool's count of streams on this connection, while this lives.
    _slot: Option<Slot>,
}

/// One stream counted against a pooled connection's limit; released on drop.
pub(crate) struct Slot(Arc<AtomicUsize>);

// === impl HboneStream ===

impl HboneStream {
    pub(crate) fn new(send: SendStream<Bytes>, recv: RecvStream, slot: Option<Slot>) -> Self {
        Self {
            send,
            recv,
            pending: Bytes::new(),
            write_closed: false,
            _slot: slot,
        }
    }

    /// The halves and state [`splice`](super::splice) drives directly.
    pub(super) fn parts(
        &mut self,
    ) -> (
        &mut SendStream<Bytes>,
        &mut RecvStream,
        &mut Bytes,
        &mut bool,
    ) {
        (
            &mut self.send,
            &mut self.recv,
            &mut self.pending,
            &mut self.write_closed,
        )
    }

    /// Why a write cannot proceed once h2 gives no more capacity.
    fn poll_write_error(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        Poll::Ready(match ready!(self.send.poll_reset(cx)) {
            Ok(Reason::NO_ERROR) | Ok(Reason::CANCEL) | Ok(Reason::STREAM_CLOSED) => {
                io::Error::new(io::ErrorKind::BrokenPipe, "the HBONE stream was closed")
            }
            Ok(reason) => io::Error::new(io::ErrorKind::ConnectionReset, h2::Error::from(reason)),
            Err(e) => to_io(e),
        })
    }
}

impl AsyncRead for HboneStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.pending.is_empty() {
            match ready!(this.recv.poll_data(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Ok(chunk)) => {
                    // The window reopens as soon as a frame is taken in; at
                    // most one frame waits here, so memory stays bounded.
                    let _ = this.recv.flow_control().release_capacity(chunk.len());
                    this.pending = chunk;
                }
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for HboneStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.send.reserve_capacity(buf.len());
        loop {
            // Capacity left over from an earlier reservation is used at once;
            // otherwise wait until the peer's window opens.
            let available = this.send.capacity();
            if available > 0 {
                let n = available.min(buf.len());
                let chunk = Bytes::copy_from_slice(&buf[..n]);
                return match this.send.send_data(chunk, false) {
                    Ok(()) => Poll::Ready(Ok(n)),
                    Err(_) => this.poll_write_error(cx).map(Err),
                };
            }
            match ready!(this.send.poll_capacity(cx)) {
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return this.poll_write_error(cx).map(Err),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection task writes frames as soon as they are queued.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.write_closed {
            return Poll::Ready(Ok(()));
        }
        match this.send.send_data(Bytes::new(), true) {
            Ok(()) => {
                this.write_closed = true;
                Poll::Ready(Ok(()))
            }
            Err(_) => this.poll_write_error(cx).map(Err),
        }
    }
}

impl Drop for HboneStream {
    fn drop(&mut self) {
        // Dropping an unfinished tunnel is an abort, as closing a TCP socket
        // with unread data is: tell the peer instead of leaving it waiting.
        if !self.write_closed || !self.recv.is_end_stream() {
            self.send.send_reset(Reason::CANCEL);
        }
    }
}

impl std::fmt::Debug for HboneStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HboneStream")
            .field("stream_id", &self.send.stream_id().as_u32())
            .field("write_closed", &self.write_closed)
            .finish_non_exhaustive()
    }
}

// === impl Slot ===

impl Slot {
    /// Counts one more stream on `in_flight`.
    pub(crate) fn claim(in_flight: &Arc<AtomicUsize>) -> Self {
        in_flight.fetch_add(1, Ordering::AcqRel);
        Self(in_flight.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An HTTP/2 error as the io error a TCP socket would have given.
pub(crate) fn to_io(e: h2::Error) -> io::Error {
    let kind = match e.get_io() {
        Some(io) => io.kind(),
        None if e.is_reset() || e.is_go_away() => io::ErrorKind::ConnectionReset,
        None => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}
