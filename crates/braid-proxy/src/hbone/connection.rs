//! One pooled client connection: dial, TLS, HTTP/2, confirmation, and the
//! task that drives it (keep-alive pings, idle eviction) until it dies.

use std::{
    io,
    net::SocketAddr,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use braid_identity::{TrustBundle, WorkloadCertificate, tls};
use bytes::Bytes;
use h2::{
    Ping, PingPong,
    client::{Connection, SendRequest},
};
use tokio::{
    io::BufReader,
    net::TcpStream,
    time::{Instant, timeout},
};
use tokio_rustls::{TlsConnector, client::TlsStream, rustls::pki_types::ServerName};

use super::{
    Dial, Error, Settings,
    pool::{Inner, Key},
    stream::Slot,
};

/// A live connection as the pool keeps it.
pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) send: SendRequest<Bytes>,
    pub(super) state: Arc<ConnState>,
}

/// What the pool and the connection task share.
#[derive(Default)]
pub(super) struct ConnState {
    in_flight: Arc<AtomicUsize>,
    closed: AtomicBool,
}

/// A stream slot taken on a connection, ready to send a `CONNECT`.
pub(super) struct Checkout {
    pub(super) send: SendRequest<Bytes>,
    pub(super) slot: Slot,
    pub(super) state: Arc<ConnState>,
}

type H2Connection = Connection<TlsStream<BufReader<TcpStream>>, Bytes>;

// === impl Conn ===

impl Conn {
    /// Takes one stream slot, if the connection has one free: at most our
    /// own limit and the server's advertised `MAX_CONCURRENT_STREAMS`.
    pub(super) fn try_checkout(&self, max_streams: usize) -> Option<Checkout> {
        let limit = max_streams.min(self.send.current_max_send_streams());
        if self.state.is_closed() || self.state.in_flight() >= limit {
            return None;
        }
        Some(Checkout {
            send: self.send.clone(),
            slot: Slot::claim(&self.state.in_flight),
            state: self.state.clone(),
        })
    }
}

// === impl ConnState ===

impl ConnState {
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// Opens a connection for `key` presenting `source`, and spawns its task.
pub(super) async fn dial(
    key: &Key,
    dial: &dyn Dial,
    source: &WorkloadCertificate,
    bundle: &TrustBundle,
    settings: &Settings,
    pool: Weak<Inner>,
    id: u64,
) -> Result<Conn, Error> {
    let config =
        tls::client_config(source, bundle, key.expected.clone()).map_err(|e| Error::Tls {
            source_id: key.source.clone(),
            source: e,
        })?;
    let limit = settings.connect_timeout;
    let (send, conn, ping_pong) = timeout(limit, handshake(dial, config, key.proxy, settings))
        .await
        .map_err(|_| Error::Timeout {
            proxy: key.proxy,
            during: "connecting to",
            after: limit,
        })??;
    let state = Arc::new(ConnState::default());
    let (task_state, task_key) = (state.clone(), key.clone());
    tokio::spawn(drive(
        conn,
        ping_pong,
        task_state,
        pool,
        task_key,
        id,
        settings.clone(),
    ));
    tracing::debug!(proxy = %key.proxy, expected = %key.expected, id, "HBONE connection open");
    Ok(Conn { id, send, state })
}

/// Connects to `proxy`, retrying a refused connection with doubling pauses
/// (10 ms first) until `retry` has passed (see [`Settings::refused_retry`]);
/// any other error fails at once.
async fn connect_tcp(
    dial: &dyn Dial,
    proxy: SocketAddr,
    retry: Duration,
) -> Result<TcpStream, Error> {
    let give_up = Instant::now() + retry;
    let mut pause = Duration::from_millis(10);
    let mut attempts = 1u32;
    loop {
        match dial.connect(proxy).await {
            Ok(tcp) => {
                if attempts > 1 {
                    tracing::debug!(%proxy, attempts, "HBONE port accepted after refusals");
                }
                return Ok(tcp);
            }
            Err(source)
                if source.kind() == io::ErrorKind::ConnectionRefused
                    && Instant::now() + pause <= give_up =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
                attempts += 1;
            }
            Err(source) => return Err(Error::Connect { proxy, source }),
        }
    }
}

/// TCP, TLS and HTTP/2, then a ping round trip: TLS 1.3 tells a client
/// that the server refused its certificate only after the client's side of
/// the handshake is done, and the answer also brings the server's settings
/// (its stream limit) before the first stream is opened.
async fn handshake(
    dial: &dyn Dial,
    config: Arc<tokio_rustls::rustls::ClientConfig>,
    proxy: SocketAddr,
    s: &Settings,
) -> Result<(SendRequest<Bytes>, H2Connection, Option<PingPong>), Error> {
    let tcp = connect_tcp(dial, proxy, s.refused_retry).await?;
    let _ = tcp.set_nodelay(true);
    // The name is not verified (SPIFFE certificates carry none); the
    // expected identity is, by the configuration.
    let name = ServerName::IpAddress(proxy.ip().into());
    let tls = TlsConnector::from(config)
        .connect(
            name,
            BufReader::with_capacity(super::SOCKET_READ_BUFFER, tcp),
        )
        .await
        .map_err(|e| Error::handshake(proxy, e))?;
    let (send, mut conn) = h2::client::Builder::new()
        .initial_window_size(s.stream_window)
        .initial_connection_window_size(s.connection_window)
        .max_frame_size(s.max_frame_size)
        .initial_max_send_streams(s.max_concurrent_streams as usize)
        .enable_push(false)
        .handshake::<_, Bytes>(tls)
        .await
        .map_err(|e| h2_handshake_error(proxy, e))?;
    let mut ping_pong = conn.ping_pong();
    if let Some(pp) = ping_pong.as_mut() {
        tokio::select! {
            ended = &mut conn => {
                let error = match ended {
                    Ok(()) => io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the proxy closed the connection during the handshake",
                    ),
                    Err(e) => return Err(h2_handshake_error(proxy, e)),
                };
                return Err(Error::handshake(proxy, error));
            }
            pong = pp.ping(Ping::opaque()) => {
                pong.map_err(|e| h2_handshake_error(proxy, e))?;
            }
        }
    }
    Ok((send, conn, ping_pong))
}

/// An io failure during the first exchange is the TLS layer refusing us.
fn h2_handshake_error(proxy: SocketAddr, e: h2::Error) -> Error {
    match e.get_io().map(io::Error::kind) {
        Some(kind) => Error::Handshake {
            proxy,
            source: io::Error::new(kind, e),
        },
        None => Error::Http2 { proxy, source: e },
    }
}

/// The connection task: polls the connection and pings it until either
/// ends, then takes it out of the pool.
async fn drive(
    mut conn: H2Connection,
    ping_pong: Option<PingPong>,
    state: Arc<ConnState>,
    pool: Weak<Inner>,
    key: Key,
    id: u64,
    settings: Settings,
) {
    let outcome = tokio::select! {
        ended = &mut conn => match ended {
            Ok(()) => "closed".to_string(),
            Err(e) => format!("failed: {e}"),
        },
        reason = keepalive(ping_pong, &state, &pool, &key, id, &settings) => reason,
    };
    state.close();
    if let Some(pool) = pool.upgrade() {
        pool.evict(&key, id, false);
    }
    tracing::debug!(proxy = %key.proxy, id, %outcome, "HBONE connection ended");
}

/// Pings every `keepalive_interval`; returns why the connection should
/// end: an unanswered ping, or idleness past `idle_timeout`.
async fn keepalive(
    ping_pong: Option<PingPong>,
    state: &ConnState,
    pool: &Weak<Inner>,
    key: &Key,
    id: u64,
    settings: &Settings,
) -> String {
    let Some(mut ping_pong) = ping_pong else {
        return std::future::pending().await;
    };
    let mut idle_for = Duration::ZERO;
    loop {
        tokio::time::sleep(settings.keepalive_interval).await;
        if state.in_flight() == 0 {
            idle_for += settings.keepalive_interval;
            if idle_for >= settings.idle_timeout {
                // The pool re-checks under its lock that no stream was
                // claimed meanwhile.
                match pool.upgrade() {
                    Some(pool) if !pool.evict(key, id, true) => {}
                    _ => return format!("idle for {idle_for:?}"),
                }
            }
        } else {
            idle_for = Duration::ZERO;
        }
        let limit = settings.keepalive_timeout;
        match timeout(limit, ping_pong.ping(Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return format!("keep-alive ping failed: {e}"),
            Err(_) => return format!("no answer to a keep-alive ping within {limit:?}"),
        }
    }
}
