//! The ADS request stream, read from the HTTP/2 body here instead of by
//! tonic's `Streaming`.
//!
//! tonic 0.14 keeps one buffer per stream, grows it to the largest message
//! the stream ever sent and keeps it until the stream ends: 50 open streams
//! that each sent one 3 MiB NACK held 150 MB. [`Frames`] grows its buffer
//! with the bytes that actually arrived (never past what the current message
//! needs) and, after a message larger than [`RETAINED_BUFFER_BYTES`], starts
//! over with a small one, so an open stream costs little however large its
//! past messages were.
//!
//! The wire format is gRPC's length-prefixed message: a flag byte (0:
//! uncompressed), a big-endian `u32` length, then that many bytes of
//! protobuf. This server accepts no compression: a `grpc-encoding` header is
//! refused by tonic before the stream opens, a compressed flag here.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use braid_api::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use futures::Stream;
use hyper::body::Body as _;
use prost::Message as _;
use tonic::{Code, Status, body::Body};

/// The largest request accepted, in bytes: tonic's default
/// (`DEFAULT_MAX_RECV_MESSAGE_SIZE`), which bounded the port before it
/// decoded requests itself.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Buffer capacity a stream keeps between messages. A message larger than
/// this is read into a buffer sized for it, which is dropped once decoded.
pub const RETAINED_BUFFER_BYTES: usize = 64 << 10;

/// The gRPC message header: compressed flag and length.
const HEADER_BYTES: usize = 5;

/// Why a request stream cannot be read further.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The header announced a message over the limit.
    #[error("a message of {len} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit ([`MAX_REQUEST_BYTES`] on the server).
        limit: usize,
    },
    /// The message is compressed, or its flag byte is neither 0 nor 1.
    #[error("compressed-flag {flag} on a message: this server accepts only uncompressed messages")]
    Compressed {
        /// The flag byte.
        flag: u8,
    },
    /// The bytes are no `DeltaDiscoveryRequest`.
    #[error(transparent)]
    Decode(#[from] prost::DecodeError),
    /// The body ended inside a message.
    #[error("the request stream ended inside a message ({buffered} bytes of it received)")]
    Truncated {
        /// Bytes of the unfinished message (header included) received.
        buffered: usize,
    },
    /// The connection or the HTTP/2 stream failed (not a cancellation).
    #[error("the request stream failed: {0}")]
    Transport(Status),
}

/// The requests of one ADS stream, decoded from its HTTP body.
///
/// Cancel-safe: every byte read is kept in `self`, so a `next()` dropped in a
/// `select!` loses nothing. After the first error it ends.
#[derive(Debug)]
pub struct Frames {
    body: Body,
    /// Received bytes; those before `start` are consumed.
    buf: Vec<u8>,
    start: usize,
    limit: usize,
    done: bool,
}

// === impl Frames ===

impl Frames {
    /// Reads `body`, refusing messages over `limit` bytes.
    pub fn new(body: Body, limit: usize) -> Self {
        Self {
            body,
            buf: Vec::new(),
            start: 0,
            limit,
            done: false,
        }
    }

    /// Bytes of buffer this stream holds now (its capacity, not its content).
    pub fn retained_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// The next complete message in the buffer, if there is one.
    fn decode_buffered(&mut self) -> Option<Result<DeltaDiscoveryRequest, FrameError>> {
        let len = match self.announced() {
            Some(Ok(len)) => len,
            Some(Err(e)) => return Some(Err(e)),
            None => return None,
        };
        let body = self.start + HEADER_BYTES;
        if self.buf.len() < body + len {
            return None;
        }
        let decoded = DeltaDiscoveryRequest::decode(&self.buf[body..body + len]);
        self.start = body + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        // Only once what is left fits a small buffer: releasing earlier would
        // copy a chunk full of small messages once per message.
        if self.buf.capacity() > RETAINED_BUFFER_BYTES
            && self.buf.len() - self.start <= RETAINED_BUFFER_BYTES
        {
            self.release();
        }
        Some(decoded.map_err(FrameError::from))
    }

    /// The length the buffered header announces, checked; `None` before all
    /// of the header arrived.
    fn announced(&self) -> Option<Result<usize, FrameError>> {
        let header = self.buf.get(self.start..self.start + HEADER_BYTES)?;
        let flag = header[0];
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        Some(match (flag, len) {
            (0, len) if len <= self.limit => Ok(len),
            (0, len) => Err(FrameError::TooLarge {
                len,
                limit: self.limit,
            }),
            (flag, _) => Err(FrameError::Compressed { flag }),
        })
    }

    /// Bytes the buffer must hold (from `start`) to complete the message it
    /// is reading: its header, then header and body.
    fn message_bytes(&self) -> usize {
        match self.announced() {
            Some(Ok(len)) => HEADER_BYTES + len,
            _ => HEADER_BYTES,
        }
    }

    /// Appends `data`. The buffer doubles as bytes arrive, but never past
    /// what the current message needs: memory follows bytes received, not
    /// lengths announced, and a large message gets a buffer of its size.
    fn append(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let needed = self.buf.len() + data.len();
        if needed > self.buf.capacity() {
            let doubled = (self.buf.capacity() * 2).min(self.message_bytes());
            self.buf.reserve_exact(needed.max(doubled) - self.buf.len());
        }
        self.buf.extend_from_slice(data);
    }

    /// Replaces the buffer with one just large enough for what is left in
    /// it, so a large message's buffer is freed rather than kept.
    fn release(&mut self) {
        self.buf = self.buf[self.start..].to_vec();
        self.start = 0;
    }

    /// Ends the stream, dropping what it buffered.
    fn finish(&mut self) {
        self.done = true;
        self.buf = Vec::new();
        self.start = 0;
    }
}

impl Stream for Frames {
    type Item = Result<DeltaDiscoveryRequest, FrameError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(result) = this.decode_buffered() {
                if result.is_err() {
                    this.finish();
                }
                return Poll::Ready(Some(result));
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers on a request carry nothing ADS reads.
                    if let Some(data) = frame.data_ref() {
                        this.append(data);
                    }
                }
                // The proxy went away (RST_STREAM CANCEL): the end of the
                // stream, as tonic treats it, not a failure to report.
                Some(Err(status)) if status.code() == Code::Cancelled => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Some(Err(status)) => {
                    this.finish();
                    return Poll::Ready(Some(Err(FrameError::Transport(status))));
                }
                None => {
                    let buffered = this.buf.len() - this.start;
                    this.finish();
                    return Poll::Ready(
                        (buffered > 0).then_some(Err(FrameError::Truncated { buffered })),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
