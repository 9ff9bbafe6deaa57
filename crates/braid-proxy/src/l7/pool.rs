//! Upstream HTTP connections kept for reuse, per (destination, how it is
//! reached, HTTP version).
//!
//! HTTP/1.1: idle keep-alive connections wait in a short list; a connection
//! goes back on it once its response has been read to the end (hyper's
//! `ready()`), and stale or closed ones are dropped. HTTP/2: one connection
//! per key carries every request as its own stream. A request that hyper
//! hands back unsent (the server closed a pooled connection just then) is
//! retried once on a fresh connection, so a keep-alive race never reaches
//! the client.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use dashmap::DashMap;
use http::{Request, Response};
use hyper::{
    body::Incoming,
    client::conn::{http1, http2},
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Semaphore;

use super::body::RequestBody;
use crate::{
    detect::Protocol,
    upstream::{PodContext, Route, UpstreamError, UpstreamIo, Via},
};

/// Idle HTTP/1.1 connections kept per key, at most.
const MAX_IDLE: usize = 16;

/// An idle HTTP/1.1 connection older than this is closed, not reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What pooled connections are keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    target: std::net::SocketAddr,
    via: Via,
}

/// An idle HTTP/1.1 connection and since when it has been idle.
type Idle = (http1::SendRequest<RequestBody>, Instant);

/// One pod's pooled upstream connections; cheap to clone.
#[derive(Clone)]
pub(crate) struct Senders {
    http1: Arc<DashMap<Key, Vec<Idle>>>,
    http2: Arc<DashMap<Key, http2::SendRequest<RequestBody>>>,
    /// Bounds the pod's mirrored requests in flight.
    mirrors: Arc<Semaphore>,
}

// === impl Senders ===

impl Default for Senders {
    fn default() -> Self {
        Self {
            http1: Arc::default(),
            http2: Arc::default(),
            mirrors: Arc::new(Semaphore::new(super::mirror::MAX_IN_FLIGHT)),
        }
    }
}

impl Senders {
    /// The pod's budget of mirrored requests in flight.
    pub(crate) fn mirror_limit(&self) -> &Arc<Semaphore> {
        &self.mirrors
    }

    /// Sends `request` to `route` over a pooled (or new) connection of
    /// `version`, which must be HTTP/1 or HTTP/2.
    pub(crate) async fn send(
        &self,
        pod: &PodContext,
        route: &Route,
        version: Protocol,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let key = Key {
            target: route.target,
            via: route.via.clone(),
        };
        if version == Protocol::Http2 {
            return self.send_http2(pod, route, key, request).await;
        }
        let request = match self.checkout(&key) {
            Some(mut sender) => match sender.try_send_request(request).await {
                Ok(response) => {
                    self.checkin_when_ready(key, sender);
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    // Never written: safe to send again on a new connection.
                    Some(request) => request,
                    None => return Err(http_error(route, error.into_error())),
                },
            },
            None => request,
        };
        let mut sender = handshake_http1(route, route.dial(pod).await?).await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http_error(route, e))?;
        self.checkin_when_ready(key, sender);
        Ok(response)
    }

    /// Hands a connection dialled before the protocol was known to the pool,
    /// so it carries the first requests instead of being wasted.
    pub(crate) async fn adopt(&self, route: &Route, version: Protocol, io: UpstreamIo) {
        let key = Key {
            target: route.target,
            via: route.via.clone(),
        };
        if version == Protocol::Http2 {
            if let Ok(sender) = handshake_http2(route, io).await {
                self.http2.insert(key, sender);
            }
        } else if let Ok(sender) = handshake_http1(route, io).await {
            self.checkin(key, sender);
        }
    }

    async fn send_http2(
        &self,
        pod: &PodContext,
        route: &Route,
        key: Key,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let pooled = self
            .http2
            .get(&key)
            .map(|s| s.clone())
            .filter(|s| !s.is_closed());
        let request = match pooled {
            Some(mut sender) => {
                let ready = sender.ready().await.is_ok();
                match sender.try_send_request(request).await {
                    Ok(response) => return Ok(response),
                    Err(mut error) => match error.take_message() {
                        Some(request) if !ready || sender.is_closed() => request,
                        _ => return Err(http_error(route, error.into_error())),
                    },
                }
            }
            None => request,
        };
        let mut sender = handshake_http2(route, route.dial(pod).await?).await?;
        self.http2.insert(key, sender.clone());
        sender
            .send_request(request)
            .await
            .map_err(|e| http_error(route, e))
    }

    /// An idle HTTP/1.1 connection that can take a request now.
    fn checkout(&self, key: &Key) -> Option<http1::SendRequest<RequestBody>> {
        let mut idle = self.http1.get_mut(key)?;
        while let Some((sender, since)) = idle.pop() {
            if sender.is_ready() && since.elapsed() < IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        None
    }

    fn checkin(&self, key: Key, sender: http1::SendRequest<RequestBody>) {
        let mut idle = self.http1.entry(key).or_default();
        idle.retain(|(s, since)| !s.is_closed() && since.elapsed() < IDLE_TIMEOUT);
        if idle.len() < MAX_IDLE {
            idle.push((sender, Instant::now()));
        }
    }

    /// Returns `sender` to the pool once its response has been read to the
    /// end; a connection the server closes instead is simply dropped.
    fn checkin_when_ready(&self, key: Key, mut sender: http1::SendRequest<RequestBody>) {
        let pool = self.clone();
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                pool.checkin(key, sender);
            }
        });
    }

    /// A fresh HTTP/1.1 connection for one upgraded exchange (WebSocket):
    /// never pooled, since after `101` it carries the upgraded protocol.
    pub(crate) async fn upgradable(
        pod: &PodContext,
        route: &Route,
    ) -> Result<http1::SendRequest<RequestBody>, UpstreamError> {
        handshake_http1(route, route.dial(pod).await?).await
    }
}

/// Every HTTP/1.1 connection allows upgrades: only the one a `101` answers
/// is ever upgraded, and it is never pooled.
async fn handshake_http1(
    route: &Route,
    io: UpstreamIo,
) -> Result<http1::SendRequest<RequestBody>, UpstreamError> {
    let (sender, connection) =
        http1::handshake(TokioIo::new(io))
            .await
            .map_err(|source| UpstreamError::Handshake {
                version: "HTTP/1.1",
                target: route.target,
                source,
            })?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "upstream HTTP/1.1 connection ended");
        }
    });
    Ok(sender)
}

async fn handshake_http2(
    route: &Route,
    io: UpstreamIo,
) -> Result<http2::SendRequest<RequestBody>, UpstreamError> {
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .map_err(|source| UpstreamError::Handshake {
            version: "HTTP/2",
            target: route.target,
            source,
        })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "upstream HTTP/2 connection ended");
        }
    });
    Ok(sender)
}

/// A request `route`'s upstream failed.
fn http_error(route: &Route, source: hyper::Error) -> UpstreamError {
    UpstreamError::Http {
        target: route.target,
        source,
    }
}
