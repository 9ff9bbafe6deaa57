//! The body of a request the proxy sends upstream: the client's own body,
//! the client's body teed to a mirror, or a mirror's copy.
//!
//! One enum rather than a boxed body, so the common case (the client's body
//! passed through) costs no allocation per request.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::mpsc;

/// Frames of a request body a mirror may lag behind by before its copy is
/// abandoned (the client's request never waits for a mirror).
const MIRROR_BUFFER: usize = 16;

/// Errors of a request body: the client's, or a mirror copy cut short.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A request body sent upstream.
#[derive(Debug)]
pub(crate) enum RequestBody {
    /// The client's body, passed through.
    Client(Incoming),
    /// The client's body, each data frame also copied to a mirror.
    Teed(Tee),
    /// A mirror's copy of a client body.
    Copy(Copied),
    /// No body (a mirror of a request without one).
    Empty,
}

/// The client's body, copying to each mirror while that mirror keeps up.
#[derive(Debug)]
pub(crate) struct Tee {
    inner: Incoming,
    /// Per mirror: where its copy goes, and the flag saying it ended whole.
    copies: Vec<(mpsc::Sender<Bytes>, Arc<AtomicBool>)>,
}

/// A mirror's copy: ends with an error unless the client's body ended
/// whole, so a mirror never receives a truncated request as if complete.
#[derive(Debug)]
pub(crate) struct Copied {
    frames: mpsc::Receiver<Bytes>,
    complete: Arc<AtomicBool>,
}

/// A mirror copy that could not keep up or whose original failed.
#[derive(Debug, thiserror::Error)]
#[error(
    "the mirrored request's body was cut short (the mirror fell behind or the client's body failed)"
)]
pub(crate) struct CutShort;

// === impl RequestBody ===

impl RequestBody {
    /// Splits the client's body into one for the primary request and a
    /// copy for each of `mirrors`.
    pub(crate) fn tee(inner: Incoming, mirrors: usize) -> (Self, Vec<Self>) {
        if inner.is_end_stream() {
            let copies = (0..mirrors).map(|_| Self::Empty).collect();
            return (Self::Client(inner), copies);
        }
        let mut copies = Vec::with_capacity(mirrors);
        let mut senders = Vec::with_capacity(mirrors);
        for _ in 0..mirrors {
            let (tx, rx) = mpsc::channel(MIRROR_BUFFER);
            let complete = Arc::new(AtomicBool::new(false));
            senders.push((tx, complete.clone()));
            copies.push(Self::Copy(Copied {
                frames: rx,
                complete,
            }));
        }
        let tee = Tee {
            inner,
            copies: senders,
        };
        (Self::Teed(tee), copies)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Self::Client(inner) => Pin::new(inner).poll_frame(cx).map_err(Into::into),
            Self::Teed(tee) => tee.poll_frame(cx),
            Self::Copy(copy) => copy.poll_frame(cx),
            Self::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Client(inner) => inner.is_end_stream(),
            Self::Teed(tee) => tee.inner.is_end_stream(),
            Self::Copy(_) => false,
            Self::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Client(inner) => inner.size_hint(),
            Self::Teed(tee) => tee.inner.size_hint(),
            Self::Copy(_) => SizeHint::default(),
            Self::Empty => SizeHint::with_exact(0),
        }
    }
}

// === impl Tee ===

impl Tee {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    // A mirror that is full or gone loses its copy: it ends
                    // cut short, and the client never waits for it.
                    self.copies
                        .retain(|(copy, _)| copy.try_send(data.clone()).is_ok());
                }
            }
            Poll::Ready(None) => {
                for (copy, complete) in self.copies.drain(..) {
                    // Marked before the channel closes, so the copy sees
                    // its end as whole.
                    complete.store(true, Ordering::Release);
                    drop(copy);
                }
            }
            Poll::Ready(Some(Err(_))) => self.copies.clear(),
            Poll::Pending => {}
        }
        polled.map_err(Into::into)
    }
}

// === impl Copied ===

impl Copied {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.frames.poll_recv(cx) {
            Poll::Ready(Some(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(None) if self.complete.load(Ordering::Acquire) => Poll::Ready(None),
            Poll::Ready(None) => Poll::Ready(Some(Err(CutShort.into()))),
            Poll::Pending => Poll::Pending,
        }
    }
}
