//! The client: HTTP/2 connections to HBONE proxies, shared by every tunnel
//! with the same source identity, proxy and expected proxy identity.
//!
//! A tunnel takes a free stream slot on a live connection; only when every
//! connection for its key is full (our limit or the server's) is a new one
//! dialled, one dial per key at a time so a burst of tunnels does not open
//! a burst of connections. A warm connection costs a new tunnel one
//! `CONNECT` round trip and no handshake.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use braid_identity::{SpiffeId, TrustBundle, WorkloadCertificate};
use h2::Reason;
use http::{Method, Request, StatusCode, Uri};
use tokio::time::timeout;

use super::{
    Dial, DirectDial, Error, HboneStream, REASON_HEADER, Settings,
    connection::{self, Checkout, Conn},
};

/// Pooled HBONE client connections; cheap to clone (clones share the pool).
///
/// Dropping the last clone closes each connection once its streams end.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// What connections are shared by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub(super) source: SpiffeId,
    /// Which certificate of `source` (a hash of its leaf): after a renewal
    /// new tunnels go on new connections presenting the new certificate,
    /// and connections with the old one drain and idle out.
    pub(super) certificate: u64,
    /// Where connections are dialled from ([`Dial::origin`]): tunnels of
    /// different pods never share a connection.
    pub(super) origin: u64,
    pub(super) proxy: SocketAddr,
    pub(super) expected: SpiffeId,
}

pub(super) struct Inner {
    bundle: TrustBundle,
    settings: Settings,
    entries: Mutex<HashMap<Key, Entry>>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Entry {
    conns: Vec<Conn>,
    /// Held while dialling a connection for this key.
    dialing: Arc<tokio::sync::Mutex<()>>,
}

// === impl Pool ===

impl Pool {
    /// An empty pool trusting proxies whose certificates chain to `bundle`.
    pub fn new(bundle: TrustBundle, settings: Settings) -> Self {
        Self {
            inner: Arc::new(Inner {
                bundle,
                settings,
                entries: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// Opens a tunnel to `target` through the HBONE proxy at `proxy`, which
    /// must prove to be `expected`, presenting `source` as this side.
    ///
    /// Reuses a pooled connection with a free stream when there is one. A
    /// pooled connection that turns out to be dead is evicted and the tunnel
    /// tried once more on a new one.
    ///
    /// Connections are shared by `source`'s identity and certificate: after
    /// a renewal, tunnels opened with the new certificate go on connections
    /// that present it, while those already open on the old one carry on.
    pub async fn connect(
        &self,
        source: &WorkloadCertificate,
        proxy: SocketAddr,
        expected: &SpiffeId,
        target: SocketAddr,
    ) -> Result<HboneStream, Error> {
        self.connect_from(&DirectDial, source, proxy, expected, target)
            .await
    }

    /// [`connect`](Self::connect), with connections dialled by `dial` (for
    /// example from inside a pod's network namespace, so the tunnel leaves
    /// with the pod's address).
    pub async fn connect_from(
        &self,
        dial: &dyn Dial,
        source: &WorkloadCertificate,
        proxy: SocketAddr,
        expected: &SpiffeId,
        target: SocketAddr,
    ) -> Result<HboneStream, Error> {
        // Boxed: opening is a large future (timeouts, the `CONNECT`
        // exchange) that would otherwise stay part of the caller's task for
        // as long as the tunnel lives, idle or not.
        Box::pin(self.open_tunnel(dial, source, proxy, expected, target)).await
    }

    async fn open_tunnel(
        &self,
        dial: &dyn Dial,
        source: &WorkloadCertificate,
        proxy: SocketAddr,
        expected: &SpiffeId,
        target: SocketAddr,
    ) -> Result<HboneStream, Error> {
        let key = Key {
            source: source.spiffe_id().clone(),
            certificate: leaf_hash(source),
            origin: dial.origin(),
            proxy,
            expected: expected.clone(),
        };
        let (checkout, reused) = self.checkout(&key, dial, source).await?;
        match self.open(checkout, proxy, target).await {
            Err(Error::Http2 { source: e, .. }) if reused && stale(&e) => {
                tracing::debug!(%proxy, error = %e, "pooled HBONE connection is dead; redialling");
                let (checkout, _) = self.checkout(&key, dial, source).await?;
                self.open(checkout, proxy, target).await
            }
            opened => opened,
        }
    }

    /// Live pooled connections, over all keys.
    pub fn connections(&self) -> usize {
        let entries = self.inner.entries();
        entries
            .values()
            .flat_map(|entry| &entry.conns)
            .filter(|conn| !conn.state.is_closed())
            .count()
    }

    /// A stream slot on a connection for `key`, dialling one if needed; and
    /// whether the connection was already pooled.
    async fn checkout(
        &self,
        key: &Key,
        dial: &dyn Dial,
        source: &WorkloadCertificate,
    ) -> Result<(Checkout, bool), Error> {
        if let Some(checkout) = self.inner.claim(key) {
            return Ok((checkout, true));
        }
        let dialing = self
            .inner
            .entries()
            .entry(key.clone())
            .or_default()
            .dialing
            .clone();
        // Boxed: dialling (TCP, TLS and HTTP/2 handshakes) is a large future
        // that most tunnels never run (they reuse a pooled connection);
        // inline, it would make every tunnel's opening that large.
        let dialled = Box::pin(self.dial_in_turn(key, dial, source, &dialing)).await;
        drop(dialing);
        if dialled.is_err() {
            // Do not keep an entry per unreachable proxy.
            self.inner.forget_if_unused(key);
        }
        dialled
    }

    /// Waits for this key's turn to dial (one dial per key at a time), then
    /// uses a connection another waiter dialled meanwhile, or dials one.
    async fn dial_in_turn(
        &self,
        key: &Key,
        dial: &dyn Dial,
        source: &WorkloadCertificate,
        dialing: &tokio::sync::Mutex<()>,
    ) -> Result<(Checkout, bool), Error> {
        let inner = &self.inner;
        // A waiter gives up after the connect timeout rather than queueing
        // behind a string of failing dials.
        let limit = inner.settings.connect_timeout;
        let _turn = timeout(limit, dialing.lock())
            .await
            .map_err(|_| Error::Timeout {
                proxy: key.proxy,
                during: "waiting for a connection to",
                after: limit,
            })?;
        if let Some(checkout) = inner.claim(key) {
            return Ok((checkout, true));
        }
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let weak = Arc::downgrade(inner);
        let conn =
            connection::dial(key, dial, source, &inner.bundle, &inner.settings, weak, id).await?;
        let mut entries = inner.entries();
        let checkout = conn.try_checkout(inner.max_streams().max(1));
        entries.entry(key.clone()).or_default().conns.push(conn);
        drop(entries);
        match checkout {
            Some(checkout) => Ok((checkout, false)),
            // The server allows no stream at all, or closed at once.
            None => Err(Error::Http2 {
                proxy: key.proxy,
                source: Reason::REFUSED_STREAM.into(),
            }),
        }
    }

    /// Sends the `CONNECT` and waits for the proxy's answer.
    async fn open(
        &self,
        checkout: Checkout,
        proxy: SocketAddr,
        target: SocketAddr,
    ) -> Result<HboneStream, Error> {
        let limit = self.inner.settings.connect_timeout;
        let h2 = |source| Error::Http2 { proxy, source };
        let Checkout { send, slot, state } = checkout;
        let exchange = async {
            let mut send = send.ready().await.map_err(h2)?;
            let mut request = Request::new(());
            *request.method_mut() = Method::CONNECT;
            *request.uri_mut() = authority_uri(target);
            let (response, stream) = send.send_request(request, false).map_err(h2)?;
            let response = response.await.map_err(h2)?;
            if response.status() != StatusCode::OK {
                let reason = response
                    .headers()
                    .get(REASON_HEADER)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                return Err(Error::Refused {
                    proxy,
                    target,
                    status: response.status(),
                    reason,
                });
            }
            Ok(HboneStream::new(stream, response.into_body(), Some(slot)))
        };
        let opened = timeout(limit, exchange).await.map_err(|_| Error::Timeout {
            proxy,
            during: "waiting for a CONNECT response from",
            after: limit,
        })?;
        if let Err(Error::Http2 { source, .. }) = &opened
            && (source.is_go_away() || source.is_io())
        {
            state.close();
        }
        opened
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

// === impl Inner ===

impl Inner {
    fn entries(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        // The map stays consistent even if a holder panicked.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn max_streams(&self) -> usize {
        self.settings.max_concurrent_streams as usize
    }

    /// A free slot on a live pooled connection for `key`.
    fn claim(&self, key: &Key) -> Option<Checkout> {
        let max = self.max_streams();
        let mut entries = self.entries();
        let entry = entries.get_mut(key)?;
        entry.conns.retain(|conn| !conn.state.is_closed());
        entry.conns.iter().find_map(|conn| conn.try_checkout(max))
    }

    /// Removes `key`'s entry if it has no connection and nobody is dialling.
    fn forget_if_unused(&self, key: &Key) {
        let mut entries = self.entries();
        if let Some(entry) = entries.get(key)
            && entry.conns.is_empty()
            && Arc::strong_count(&entry.dialing) == 1
        {
            entries.remove(key);
        }
    }

    /// Takes connection `id` out of the pool (only if it has no stream,
    /// with `only_if_idle`); returns whether it is out.
    pub(super) fn evict(&self, key: &Key, id: u64, only_if_idle: bool) -> bool {
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(key) else {
            return true;
        };
        if let Some(at) = entry.conns.iter().position(|conn| conn.id == id) {
            if only_if_idle && entry.conns[at].state.in_flight() > 0 {
                return false;
            }
            entry.conns.swap_remove(at).state.close();
        }
        drop(entries);
        self.forget_if_unused(key);
        true
    }
}

/// Whether an HTTP/2 error on a pooled connection means the connection,
/// not the tunnel, failed (so a new connection may succeed).
fn stale(e: &h2::Error) -> bool {
    e.is_go_away() || e.is_io() || e.reason() == Some(Reason::REFUSED_STREAM)
}

/// Tells certificates apart for pooling; not a security check (the TLS
/// handshake presents the certificate itself).
fn leaf_hash(source: &WorkloadCertificate) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    source.leaf().as_ref().hash(&mut hasher);
    hasher.finish()
}

/// `ip:port` as an authority-form URI, the `CONNECT` target.
fn authority_uri(target: SocketAddr) -> Uri {
    let authority = http::uri::Authority::try_from(target.to_string())
        .unwrap_or_else(|_| http::uri::Authority::from_static("0.0.0.0:0"));
    Uri::from(authority)
}
