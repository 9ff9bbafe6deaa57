//! The accepting side: TLS, the client's identity, then one task per
//! `CONNECT` that asks the [`Connector`] for an upstream and splices bytes.
//!
//! Errors become HTTP statuses here and nowhere else: `405` for another
//! method, `400` for a bad authority, the [`Refusal`](super::Refusal)'s
//! status otherwise.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use braid_identity::{SpiffeId, TrustBundle, WorkloadCertificate, peer_identity, tls};
use bytes::Bytes;
use h2::{Ping, PingPong, RecvStream, server::SendResponse};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
    time::timeout,
};
use tokio_rustls::TlsAcceptor;

use super::{Connector, HboneStream, REASON_HEADER, Settings, parse_authority};

/// Counts of a [`Server`]'s connections, cheap to clone and read.
#[derive(Clone, Debug, Default)]
pub struct ServerCounters {
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

/// Accepts HBONE connections and serves their `CONNECT` streams.
pub struct Server<C> {
    tls: TlsSource,
    connector: Arc<C>,
    settings: Settings,
    counters: ServerCounters,
}

/// The server's certificate: fixed, or followed as the certificate manager
/// renews it. A renewal applies to new connections; open ones keep the
/// certificate they were established with, so no stream is dropped.
enum TlsSource {
    Fixed(TlsAcceptor),
    Rotating {
        certs: watch::Receiver<Arc<WorkloadCertificate>>,
        bundle: TrustBundle,
        /// The acceptor for the newest certificate seen, rebuilt on change.
        cache: Mutex<(Arc<WorkloadCertificate>, TlsAcceptor)>,
    },
}

/// Decrements the open-connection count when a connection task ends.
struct OpenGuard(Arc<AtomicUsize>);

// === impl ServerCounters ===

impl ServerCounters {
    /// Connections accepted (TCP) since the server started.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections currently open.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

// === impl TlsSource ===

impl TlsSource {
    fn acceptor(&self) -> Result<TlsAcceptor, tls::TlsError> {
        match self {
            Self::Fixed(acceptor) => Ok(acceptor.clone()),
            Self::Rotating {
                certs,
                bundle,
                cache,
            } => {
                let cert = certs.borrow().clone();
                let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
                if !Arc::ptr_eq(&cache.0, &cert) {
                    let acceptor = TlsAcceptor::from(tls::server_config(&cert, bundle)?);
                    *cache = (cert, acceptor);
                }
                Ok(cache.1.clone())
            }
        }
    }
}

// === impl Server ===

impl<C: Connector> Server<C> {
    /// A server presenting `cert`, accepting clients whose certificates
    /// chain to `bundle`, handing each tunnel to `connector`.
    pub fn new(
        cert: &WorkloadCertificate,
        bundle: &TrustBundle,
        connector: C,
        settings: Settings,
    ) -> Result<Self, tls::TlsError> {
        Ok(Self {
            tls: TlsSource::Fixed(TlsAcceptor::from(tls::server_config(cert, bundle)?)),
            connector: Arc::new(connector),
            settings,
            counters: ServerCounters::default(),
        })
    }

    /// A server presenting whatever certificate `certs` holds now (e.g. from
    /// `CertificateManager::watch`), so renewals need no restart.
    pub fn rotating(
        certs: watch::Receiver<Arc<WorkloadCertificate>>,
        bundle: TrustBundle,
        connector: C,
        settings: Settings,
    ) -> Result<Self, tls::TlsError> {
        let cert = certs.borrow().clone();
        let acceptor = TlsAcceptor::from(tls::server_config(&cert, &bundle)?);
        Ok(Self {
            tls: TlsSource::Rotating {
                certs,
                bundle,
                cache: Mutex::new((cert, acceptor)),
            },
            connector: Arc::new(connector),
            settings,
            counters: ServerCounters::default(),
        })
    }

    /// The server's connection counts (keep a clone before [`Self::serve`]).
    pub fn counters(&self) -> ServerCounters {
        self.counters.clone()
    }

    /// Serves connections from `listener` until the future is dropped, which
    /// closes every connection it accepted.
    pub async fn serve(self, listener: TcpListener) {
        let this = Arc::new(self);
        let mut connections = JoinSet::new();
        // Backoff on accept errors (out of fds: never spin) and a cap on
        // open connections, closing the excess at once.
        let mut gate = braid_listen::Gate::new("HBONE").with_limit(this.settings.max_connections);
        loop {
            tokio::select! {
                ((tcp, remote), permit) = gate.accept(|| listener.accept()) => {
                    this.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    this.counters.open.fetch_add(1, Ordering::Relaxed);
                    let guard = OpenGuard(this.counters.open.clone());
                    let serving = this.clone().serve_connection(tcp, remote, guard);
                    connections.spawn(async move {
                        let _permit = permit;
                        serving.await
                    });
                }
                Some(_) = connections.join_next() => {}
            }
        }
    }

    async fn serve_connection(self: Arc<Self>, tcp: TcpStream, remote: SocketAddr, _: OpenGuard) {
        let _ = tcp.set_nodelay(true);
        let limit = self.settings.connect_timeout;
        let acceptor = match self.tls.acceptor() {
            Ok(acceptor) => acceptor,
            Err(error) => {
                tracing::error!(%remote, %error, side = "internal", "no usable HBONE server certificate");
                return;
            }
        };
        let tls = match timeout(
            limit,
            acceptor.accept(tokio::io::BufReader::with_capacity(
                super::SOCKET_READ_BUFFER,
                tcp,
            )),
        )
        .await
        {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                tracing::warn!(%remote, %error, side = "downstream", "HBONE TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::warn!(%remote, ?limit, side = "downstream", "HBONE TLS handshake timed out");
                return;
            }
        };
        let certs = tls.get_ref().1.peer_certificates().unwrap_or_default();
        let peer = match peer_identity(certs) {
            Ok(peer) => Arc::new(peer),
            Err(error) => {
                tracing::warn!(%remote, %error, side = "downstream", "HBONE client has no identity");
                return;
            }
        };
        let s = &self.settings;
        let handshake = h2::server::Builder::new()
            .initial_window_size(s.stream_window)
            .initial_connection_window_size(s.connection_window)
            .max_frame_size(s.max_frame_size)
            .max_concurrent_streams(s.max_concurrent_streams)
            .handshake::<_, Bytes>(tls);
        let mut conn = match timeout(limit, handshake).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(error)) => {
                tracing::debug!(%remote, %peer, %error, "HBONE HTTP/2 handshake failed");
                return;
            }
            Err(_) => return,
        };
        tracing::debug!(%remote, %peer, "HBONE connection open");
        let keepalive = unanswered_ping(conn.ping_pong(), &self.settings);
        tokio::pin!(keepalive);
        loop {
            tokio::select! {
                next = conn.accept() => match next {
                    Some(Ok((request, respond))) => {
                        tokio::spawn(self.clone().serve_stream(request, respond, peer.clone()));
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%remote, %peer, %error, "HBONE connection failed");
                        break;
                    }
                    None => break,
                },
                // `accept` keeps driving the connection, so pings get answered.
                reason = &mut keepalive => {
                    tracing::debug!(%remote, %peer, %reason, "HBONE client is gone");
                    break;
                }
            }
        }
    }

    async fn serve_stream(
        self: Arc<Self>,
        request: Request<RecvStream>,
        respond: SendResponse<Bytes>,
        peer: Arc<SpiffeId>,
    ) {
        // Boxed: the request and the connector's future are only needed
        // until the tunnel is open, and would otherwise stay part of the
        // task for as long as the tunnel lives, idle or not.
        let Some((upstream, tunnel, target)) =
            Box::pin(self.open_tunnel(request, respond, &peer)).await
        else {
            return;
        };
        match super::splice(upstream, tunnel).await {
            Ok((to_client, from_client)) => {
                tracing::debug!(%peer, %target, from_client, to_client, "HBONE tunnel done")
            }
            // Dropping the tunnel resets the stream, so the client sees it too.
            Err(error) => tracing::debug!(%peer, %target, %error, "HBONE tunnel aborted"),
        }
    }

    /// Checks a stream's request, connects its target and answers `200`;
    /// or answers why not and returns `None`.
    async fn open_tunnel(
        &self,
        request: Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
        peer: &SpiffeId,
    ) -> Option<(C::Stream, HboneStream, SocketAddr)> {
        if request.method() != Method::CONNECT {
            let reason = format!(
                "{} is not served here: HBONE takes CONNECT",
                request.method()
            );
            reply(&mut respond, StatusCode::METHOD_NOT_ALLOWED, &reason);
            return None;
        }
        let target = match parse_authority(request.uri()) {
            Ok(target) => target,
            Err(error) => {
                reply(&mut respond, StatusCode::BAD_REQUEST, &error.to_string());
                return None;
            }
        };
        let upstream = match self.connector.connect(peer, target).await {
            Ok(upstream) => upstream,
            Err(refusal) => {
                tracing::debug!(%peer, %target, %refusal, "HBONE tunnel refused");
                reply(&mut respond, refusal.status(), &refusal.to_string());
                return None;
            }
        };
        let send = match respond.send_response(Response::new(()), false) {
            Ok(send) => send,
            Err(error) => {
                tracing::debug!(%peer, %target, %error, "HBONE client went away");
                return None;
            }
        };
        let tunnel = HboneStream::new(send, request.into_body(), None);
        Some((upstream, tunnel, target))
    }
}

/// Pings the client every `keepalive_interval`; returns once one goes
/// unanswered, so a vanished client does not hold its streams forever.
async fn unanswered_ping(ping_pong: Option<PingPong>, settings: &Settings) -> String {
    let Some(mut ping_pong) = ping_pong else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(settings.keepalive_interval).await;
        let limit = settings.keepalive_timeout;
        match timeout(limit, ping_pong.ping(Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return format!("keep-alive ping failed: {e}"),
            Err(_) => return format!("no answer to a keep-alive ping within {limit:?}"),
        }
    }
}

/// Answers a stream with an error `status` and `reason`, ending it.
fn reply(respond: &mut SendResponse<Bytes>, status: StatusCode, reason: &str) {
    let mut response = Response::new(());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(REASON_HEADER, header_value(reason));
    if let Err(error) = respond.send_response(response, true) {
        tracing::debug!(%error, "could not answer an HBONE stream");
    }
}

/// `text` as a header value: visible ASCII only, at most 512 bytes.
fn header_value(text: &str) -> HeaderValue {
    let clean: String = text
        .chars()
        .take(512)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::try_from(clean).unwrap_or_else(|_| HeaderValue::from_static("refused"))
}
