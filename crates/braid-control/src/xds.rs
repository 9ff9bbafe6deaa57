//! The Delta ADS server (`envoy.service.discovery.v3.AggregatedDiscoveryService`).
//!
//! One task per stream: it reads requests and snapshot changes, runs the
//! [`stream::StreamState`] machine and writes responses. The state sits in the
//! [`Registry`] so `proxy-status` can read it; its lock is never held across
//! an await.
//!
//! The port needs no token by default, so nothing a client sends may cost
//! unbounded memory or log: the stream machine bounds what a stream keeps
//! ([`stream::Refusal`]), [`MAX_STREAMS_PER_CONNECTION`] bounds streams per
//! connection, [`frames::MAX_REQUEST_BYTES`] (4 MiB) bounds one message and
//! [`frames::Frames`] keeps no large buffer once a message is handled,
//! warnings a client can trigger are rate-limited ([`throttle`]) and every
//! peer string is logged through [`braid_model::text::Escaped`]. A request
//! stream that cannot be read ends with RESOURCE_EXHAUSTED or
//! INVALID_ARGUMENT, never with OK.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use braid_api::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};
use braid_model::text::escaped;
use dashmap::DashMap;
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::{StreamExt as _, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use crate::{auth::Authenticator, metrics::Metrics, snapshot::Snapshot, source::token::Principal};

pub mod frames;
mod service;
pub mod stream;
pub mod throttle;

use frames::{FrameError, Frames};
pub use service::AdsService;
use stream::{Refusal, StreamState};
use throttle::Warnings;

/// Responses buffered per stream before the sender waits for the proxy.
const STREAM_BUFFER: usize = 16;

/// Concurrent HTTP/2 streams one client connection may open on the gRPC port
/// (set on the server in `runtime.rs`). A proxy needs one ADS stream and the
/// odd certificate or debug call; without a limit one connection could hold
/// hyper's default of 200 streams, each with its own state and buffers.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 32;

/// Bytes of a type URL (or other free-form peer field) written to a log line.
const LOGGED_FIELD_BYTES: usize = 256;

/// Every open stream, by a process-unique id.
#[derive(Debug, Default)]
pub struct Registry {
    streams: DashMap<u64, Arc<Mutex<StreamState>>>,
    next_id: AtomicU64,
}

/// The ADS service implementation; serve it through [`AdsService`].
#[derive(Clone, Debug)]
pub struct AdsServer {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    warnings: Arc<Warnings>,
    auth: Option<Authenticator>,
    require_token: bool,
}

// === impl Registry ===

impl Registry {
    /// Calls `f` with each stream's state, in stream order.
    pub fn for_each(&self, mut f: impl FnMut(&StreamState)) {
        let mut ids: Vec<u64> = self.streams.iter().map(|e| *e.key()).collect();
        ids.sort_unstable();
        for id in ids {
            let Some(state) = self.streams.get(&id).map(|e| e.value().clone()) else {
                continue;
            };
            let state = state.lock().unwrap_or_else(|e| e.into_inner());
            f(&state);
        }
    }
}

// === impl AdsServer ===

impl AdsServer {
    /// A server publishing `snapshots`.
    pub fn new(
        snapshots: watch::Receiver<Arc<Snapshot>>,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            snapshots,
            registry,
            metrics,
            warnings: Arc::default(),
            auth: None,
            require_token: false,
        }
    }

    /// Checks the bearer token a stream presents with `auth` (an unknown or
    /// rejected token is refused); with `require_token`, a stream without
    /// one is refused too.
    pub fn with_auth(mut self, auth: Authenticator, require_token: bool) -> Self {
        self.auth = Some(auth);
        self.require_token = require_token;
        self
    }

    /// Who opened the stream, by its token; `Ok(None)` when it sent none and
    /// none is required.
    async fn authenticate<T>(&self, request: &Request<T>) -> Result<Option<Principal>, Status> {
        let token = crate::auth::bearer(request)?;
        match (token, &self.auth) {
            (Some(token), Some(auth)) => auth.principal(token).await.map(Some).map_err(|refusal| {
                if let Some(suppressed) = self.warnings.refused.admit() {
                    tracing::warn!(reason = %refusal, suppressed, "refused an xDS stream");
                }
                Status::unauthenticated(refusal.to_string())
            }),
            (None, _) if self.require_token => Err(Status::unauthenticated(
                "missing token: this control plane requires `authorization: Bearer <token>` on the xDS stream (the proxy's token file)",
            )),
            _ => Ok(None),
        }
    }

    /// Opens a Delta ADS stream reading `requests` (the handler [`AdsService`]
    /// routes to); `request` has the call's metadata and extensions.
    async fn delta(
        &self,
        request: Request<()>,
        requests: Frames,
    ) -> Result<Response<ResponseStream>, Status> {
        if let Some(principal) = self.authenticate(&request).await? {
            tracing::debug!(%principal, "xDS stream authenticated");
        }
        let peer = request
            .remote_addr()
            .map(|a: SocketAddr| a.to_string())
            .unwrap_or_default();
        let id = self.registry.next_id.fetch_add(1, Relaxed);
        let state = Arc::new(Mutex::new(StreamState::new(peer)));
        self.registry.streams.insert(id, state.clone());
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let task = StreamTask {
            id,
            state,
            snapshots: self.snapshots.clone(),
            tx,
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            warnings: self.warnings.clone(),
        };
        tokio::spawn(task.run(requests));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// The responses of one stream, as tonic encodes them.
type ResponseStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

struct StreamTask {
    id: u64,
    state: Arc<Mutex<StreamState>>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    warnings: Arc<Warnings>,
}

impl StreamTask {
    /// Serves the stream until either side ends it. `requests` is no field:
    /// the body it reads is not `Sync`, and `self` is borrowed across awaits.
    async fn run(mut self, mut requests: Frames) {
        self.metrics.connected.fetch_add(1, Relaxed);
        // Snapshots before the first request are covered by its full diff.
        self.snapshots.mark_unchanged();
        loop {
            let responses = tokio::select! {
                request = requests.next() => match request {
                    Some(Ok(request)) => match self.on_request(request) {
                        Ok(responses) => responses,
                        Err(refusal) => {
                            self.end(refusal_status(&refusal)).await;
                            break;
                        }
                    },
                    Some(Err(error)) => {
                        match request_error(&error) {
                            // Ending without a status would tell the proxy OK.
                            Some(status) => self.end(status).await,
                            None => {
                                tracing::debug!(stream = self.id, %error, "xDS stream ended with an error");
                            }
                        }
                        break;
                    }
                    None => break,
                },
                changed = self.snapshots.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let snapshot = self.snapshots.borrow_and_update().clone();
                    self.lock().on_snapshot(&snapshot)
                }
            };
            if !self.send(responses).await {
                break;
            }
        }
        self.registry.streams.remove(&self.id);
        self.metrics.connected.fetch_sub(1, Relaxed);
        tracing::debug!(stream = self.id, "xDS stream closed");
    }

    /// Ends the stream with `status` (the proxy reads it in the trailers).
    async fn end(&self, status: Status) {
        if let Some(suppressed) = self.warnings.refused.admit() {
            let (node, peer) = {
                let state = self.lock();
                (state.node_id.clone(), state.peer.clone())
            };
            tracing::warn!(
                stream = self.id,
                node = %escaped(&node),
                %peer,
                code = ?status.code(),
                message = %escaped(status.message()).truncated(LOGGED_FIELD_BYTES),
                suppressed,
                "ending an xDS stream: bad request"
            );
        }
        let _ = self.tx.send(Err(status)).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StreamState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn on_request(
        &mut self,
        request: DeltaDiscoveryRequest,
    ) -> Result<Vec<DeltaDiscoveryResponse>, Refusal> {
        let snapshot = self.snapshots.borrow().clone();
        let mut state = self.lock();
        let outcome = state.on_request(request, &snapshot)?;
        if outcome.acked {
            self.metrics.acks.fetch_add(1, Relaxed);
        }
        if let Some(reason) = &outcome.nack {
            self.metrics.nacks.fetch_add(1, Relaxed);
            if let Some(suppressed) = self.warnings.nack.admit() {
                tracing::warn!(node = %escaped(&state.node_id), reason = %escaped(reason), suppressed, "proxy rejected configuration (NACK)");
            }
        }
        if let Some(type_url) = &outcome.unknown_type
            && let Some(suppressed) = self.warnings.unknown_type.admit()
        {
            tracing::warn!(
                node = %escaped(&state.node_id),
                type_url = %escaped(type_url).truncated(LOGGED_FIELD_BYTES),
                suppressed,
                "ignoring request for a type this control plane does not serve"
            );
        }
        Ok(outcome.responses)
    }

    async fn send(&self, responses: Vec<DeltaDiscoveryResponse>) -> bool {
        for response in responses {
            self.metrics.pushes.fetch_add(1, Relaxed);
            self.metrics
                .resources_sent
                .fetch_add(response.resources.len() as u64, Relaxed);
            if self.tx.send(Ok(response)).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// The status for a request the stream machine refused.
fn refusal_status(refusal: &Refusal) -> Status {
    match refusal {
        Refusal::TooManyNames { .. } => Status::resource_exhausted(refusal.to_string()),
        Refusal::NodeIdTooLong { .. } | Refusal::NameTooLong { .. } => {
            Status::invalid_argument(refusal.to_string())
        }
    }
}

/// What the proxy is told when its request stream cannot be read, or
/// `None` when the connection itself failed (a proxy went away: nobody is
/// left to tell). Everything else is the client's doing.
fn request_error(error: &FrameError) -> Option<Status> {
    match error {
        FrameError::TooLarge { .. } => Some(Status::resource_exhausted(format!(
            "xDS request too large: {error}"
        ))),
        FrameError::Compressed { .. } | FrameError::Decode(_) | FrameError::Truncated { .. } => {
            Some(Status::invalid_argument(format!(
                "cannot decode the xDS request (a DeltaDiscoveryRequest): {error}"
            )))
        }
        FrameError::Transport(_) => None,
    }
}
