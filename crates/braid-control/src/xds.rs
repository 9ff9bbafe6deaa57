//! The Delta ADS server (`envoy.service.discovery.v3.AggregatedDiscoveryService`).
//!
//! One task per stream: it reads requests and snapshot changes, runs the
//! [`stream::StreamState`] machine and writes responses. The state sits in the
//! [`Registry`] so `proxy-status` can read it; its lock is never held across
//! an await.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use braid_api::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
    aggregated_discovery_service_server::AggregatedDiscoveryService,
};
use dashmap::DashMap;
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::{StreamExt as _, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use crate::{auth::Authenticator, metrics::Metrics, snapshot::Snapshot, source::token::Principal};

pub mod stream;

use stream::StreamState;

/// Responses buffered per stream before the sender waits for the proxy.
const STREAM_BUFFER: usize = 16;

/// Every open stream, by a process-unique id.
#[derive(Debug, Default)]
pub struct Registry {
    streams: DashMap<u64, Arc<Mutex<StreamState>>>,
    next_id: AtomicU64,
}

/// The ADS service implementation.
#[derive(Clone, Debug)]
pub struct AdsServer {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
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
                tracing::warn!(reason = %refusal, "refused an xDS stream");
                Status::unauthenticated(refusal.to_string())
            }),
            (None, _) if self.require_token => Err(Status::unauthenticated(
                "missing token: this control plane requires `authorization: Bearer <token>` on the xDS stream (the proxy's token file)",
            )),
            _ => Ok(None),
        }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type DeltaAggregatedResourcesStream = ResponseStream;

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        if let Some(principal) = self.authenticate(&request).await? {
            tracing::debug!(%principal, "xDS stream authenticated");
        }
        let peer = request
            .remote_addr()
            .map(|a: SocketAddr| a.to_string())
            .unwrap_or_default();
        let requests = request.into_inner();
        let id = self.registry.next_id.fetch_add(1, Relaxed);
        let state = Arc::new(Mutex::new(StreamState::new(peer)));
        self.registry.streams.insert(id, state.clone());
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let task = StreamTask {
            id,
            state,
            requests,
            snapshots: self.snapshots.clone(),
            tx,
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
        };
        tokio::spawn(task.run());
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct StreamTask {
    id: u64,
    state: Arc<Mutex<StreamState>>,
    requests: Streaming<DeltaDiscoveryRequest>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

impl StreamTask {
    async fn run(mut self) {
        self.metrics.connected.fetch_add(1, Relaxed);
        // Snapshots before the first request are covered by its full diff.
        self.snapshots.mark_unchanged();
        loop {
            let responses = tokio::select! {
                request = self.requests.next() => match request {
                    Some(Ok(request)) => self.on_request(request),
                    Some(Err(status)) => {
                        tracing::debug!(stream = self.id, %status, "xDS stream ended with an error");
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

    fn lock(&self) -> std::sync::MutexGuard<'_, StreamState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn on_request(&mut self, request: DeltaDiscoveryRequest) -> Vec<DeltaDiscoveryResponse> {
        let snapshot = self.snapshots.borrow().clone();
        let reason = request.error_detail.as_ref().map(|s| s.message.clone());
        let mut state = self.lock();
        let outcome = state.on_request(request, &snapshot);
        if outcome.acked {
            self.metrics.acks.fetch_add(1, Relaxed);
        }
        if outcome.nacked {
            self.metrics.nacks.fetch_add(1, Relaxed);
            tracing::warn!(node = %state.node_id, reason = reason.as_deref().unwrap_or(""), "proxy rejected configuration (NACK)");
        }
        outcome.responses
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
