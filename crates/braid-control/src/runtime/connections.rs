//! The xDS port's connections. Each is accepted through a
//! [`braid_listen::Gate`] (a cap on open connections, a backoff on accept
//! errors), TLS-handshaken when there is a CA, and closed once it holds no
//! call for too long: `handshake` after accept if no call ever came (a client
//! that sent nothing, or only the HTTP/2 preface), `idle` after its last
//! call ended. Neither tonic nor hyper has such a timeout (their keep-alive
//! pings are answered by an idle client), so [`Connection`] enforces it at
//! the I/O level and [`CallsLayer`] counts the calls it carries.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use braid_identity::{CertificateManager, SpiffeId};
use braid_listen::{Gate, Permit};
use hyper::body::{Body, Frame, SizeHint};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::{Instant, Sleep},
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// When a connection without calls is closed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// From accept to the first call (TLS and HTTP/2 handshakes included).
    pub(crate) handshake: Duration,
    /// From the end of the last call to the next one.
    pub(crate) idle: Duration,
}

/// Accepted (and, with `tls`, handshaken) connections wait here for the
/// gRPC server.
const BACKLOG: usize = 64;

/// One connection of the xDS port, as the gRPC server reads it.
pub(crate) struct Connection {
    io: Pin<Box<dyn Io>>,
    activity: Arc<Activity>,
    timeouts: Timeouts,
    deadline: Pin<Box<Sleep>>,
    info: TcpConnectInfo,
    _permit: Permit,
}

/// What each request of a connection carries (tonic copies it into the
/// request's extensions), so [`CallsLayer`] can count the calls.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionInfo {
    /// Addresses, as tonic's `Request::remote_addr` wants them.
    pub(crate) tcp: TcpConnectInfo,
    activity: Arc<Activity>,
}

/// Counts the calls each connection carries (see [`Connection`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CallsLayer;

/// The service [`CallsLayer`] makes.
#[derive(Clone, Debug)]
pub(crate) struct Calls<S> {
    inner: S,
}

/// A response body that ends its call when dropped.
pub(crate) struct CallBody<B> {
    body: Pin<Box<B>>,
    _call: Option<CallGuard>,
}

/// A plain or TLS stream.
trait Io: AsyncRead + AsyncWrite + Send {}

impl<T: AsyncRead + AsyncWrite + Send> Io for T {}

/// Calls in progress and since when a connection has none.
#[derive(Debug)]
struct Activity {
    calls: AtomicUsize,
    /// A call has been seen: `idle` applies instead of `handshake`.
    called: AtomicBool,
    idle_since: Mutex<Instant>,
    /// The connection's reader, woken when the last call ends so it
    /// starts its idle timer.
    reader: Mutex<Option<Waker>>,
}

/// One call in progress; ends it when dropped.
#[derive(Debug)]
struct CallGuard(Arc<Activity>);

/// Accepts on `listener` through `gate` and hands over connections until the
/// returned stream is dropped. With `tls`, each connection is handshaken
/// first with the current certificate (so a renewal applies to the next
/// connection).
pub(crate) fn incoming(
    listener: TcpListener,
    mut gate: Gate,
    tls: Option<(CertificateManager, SpiffeId)>,
    timeouts: Timeouts,
) -> ReceiverStream<io::Result<Connection>> {
    let (tx, rx) = mpsc::channel(BACKLOG);
    tokio::spawn(async move {
        loop {
            let ((tcp, peer), permit) = tokio::select! {
                accepted = gate.accept(|| listener.accept()) => accepted,
                _ = tx.closed() => return,
            };
            let accepted_at = Instant::now();
            let Some((manager, id)) = &tls else {
                let info = tcp_info(&tcp);
                let conn = Connection::new(tcp, info, permit, accepted_at, timeouts);
                if tx.send(Ok(conn)).await.is_err() {
                    return;
                }
                continue;
            };
            let (tx, manager, id) = (tx.clone(), manager.clone(), id.clone());
            tokio::spawn(async move {
                let info = tcp_info(&tcp);
                let handshake = crate::tls::handshake(tcp, &manager, &id);
                match tokio::time::timeout(timeouts.handshake, handshake).await {
                    Ok(Ok(tls)) => {
                        let conn = Connection::new(tls, info, permit, accepted_at, timeouts);
                        drop(tx.send(Ok(conn)).await);
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

fn tcp_info(tcp: &TcpStream) -> TcpConnectInfo {
    let _ = tcp.set_nodelay(true);
    tcp.connect_info()
}

/// Whether `addr` is a loopback peer (IPv4-mapped IPv6 included).
pub(crate) fn is_loopback(addr: SocketAddr) -> bool {
    match addr {
        SocketAddr::V4(v4) => v4.ip().is_loopback(),
        SocketAddr::V6(v6) => {
            v6.ip().is_loopback() || v6.ip().to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

// === impl Connection ===

impl Connection {
    fn new(
        io: impl AsyncRead + AsyncWrite + Send + 'static,
        info: TcpConnectInfo,
        permit: Permit,
        accepted_at: Instant,
        timeouts: Timeouts,
    ) -> Self {
        Self {
            io: Box::pin(io),
            activity: Arc::new(Activity {
                calls: AtomicUsize::new(0),
                called: AtomicBool::new(false),
                idle_since: Mutex::new(accepted_at),
                reader: Mutex::new(None),
            }),
            timeouts,
            deadline: Box::pin(tokio::time::sleep_until(accepted_at + timeouts.handshake)),
            info,
            _permit: permit,
        }
    }

    /// True once the connection has held no call for too long. Polls the
    /// timer only while there is no call, and leaves a waker so that the
    /// end of the last call restarts it.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let activity = &self.activity;
        {
            let mut reader = activity
                .reader
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *reader = Some(cx.waker().clone());
            }
        }
        if activity.calls.load(Ordering::Acquire) > 0 {
            return false;
        }
        let limit = match activity.called.load(Ordering::Acquire) {
            true => self.timeouts.idle,
            false => self.timeouts.handshake,
        };
        let since = *activity
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let deadline = since + limit;
        if self.deadline.deadline() != deadline {
            self.deadline.as_mut().reset(deadline);
        }
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote", &self.info.remote_addr)
            .field("calls", &self.activity.calls.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnectionInfo {
            tcp: self.info.clone(),
            activity: self.activity.clone(),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.expired(cx) {
            let called = this.activity.called.load(Ordering::Relaxed);
            tracing::debug!(
                remote = ?this.info.remote_addr,
                reason = if called { "idle" } else { "no call after the handshake timeout" },
                "closing an xDS connection"
            );
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no gRPC call on this connection for too long",
            )));
        }
        this.io.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io.as_mut().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io.as_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

// === impl Activity ===

impl Activity {
    fn start_call(self: &Arc<Self>) -> CallGuard {
        self.called.store(true, Ordering::Release);
        self.calls.fetch_add(1, Ordering::AcqRel);
        CallGuard(self.clone())
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.calls.fetch_sub(1, Ordering::AcqRel) == 1 {
            *activity
                .idle_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Instant::now();
            let reader = activity
                .reader
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(reader) = reader {
                reader.wake();
            }
        }
    }
}

// === impl CallsLayer ===

impl<S> tower::Layer<S> for CallsLayer {
    type Service = Calls<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Calls { inner }
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Calls<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<CallBody<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let info = req.extensions().get::<ConnectionInfo>().cloned();
        let call = info.map(|info| {
            // What tonic's `Request::remote_addr` and the debug guard read.
            req.extensions_mut().insert(info.tcp.clone());
            info.activity.start_call()
        });
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| CallBody {
                body: Box::pin(body),
                _call: call,
            }))
        })
    }
}

// === impl CallBody ===

impl<B: Body> Body for CallBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.get_mut().body.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
#[path = "connections/tests.rs"]
mod tests;
