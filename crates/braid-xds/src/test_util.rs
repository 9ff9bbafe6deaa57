//! A scripted, in-process fake ADS server for tests (feature `test-util`).
//!
//! It is a test fake, never a control plane: it answers nothing by itself.
//! A test takes each stream the client opens ([`FakeAds::next_stream`]),
//! reads the client's requests one by one and sends exactly the responses it
//! wants, so every step of the protocol is explicit in the test. Dropping a
//! [`FakeStream`] ends that stream cleanly; [`FakeStream::fail`] ends it with
//! a gRPC error. Waits are bounded by [`TIMEOUT`] and panic past it, so a
//! broken client fails a test instead of hanging it.

use std::{net::SocketAddr, time::Duration};

use braid_api::envoy::service::discovery::v3::{
    self as xds,
    aggregated_discovery_service_server::{
        AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
    },
};
use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle};
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use crate::Resource;

/// How long a fake waits for the client before panicking.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A fake ADS server on `127.0.0.1`, port chosen by the OS; stops on drop.
#[derive(Debug)]
pub struct FakeAds {
    addr: SocketAddr,
    streams: mpsc::UnboundedReceiver<FakeStream>,
    server: JoinHandle<()>,
}

/// One Delta ADS stream a client opened.
#[derive(Debug)]
pub struct FakeStream {
    requests: mpsc::UnboundedReceiver<xds::DeltaDiscoveryRequest>,
    responses: mpsc::UnboundedSender<Result<xds::DeltaDiscoveryResponse, Status>>,
}

/// The tonic service: hands each new stream to the test.
struct Service {
    streams: mpsc::UnboundedSender<FakeStream>,
}

// === impl FakeAds ===

impl FakeAds {
    /// Binds `127.0.0.1:0` and serves until dropped.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, streams) = mpsc::unbounded_channel();
        let service = AggregatedDiscoveryServiceServer::new(Service { streams: tx });
        let server = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "fake ads server failed");
            }
        });
        Ok(Self {
            addr,
            streams,
            server,
        })
    }

    /// The URI to give [`Client::builder`](crate::Client::builder).
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next stream a client opens; panics after [`TIMEOUT`].
    pub async fn next_stream(&mut self) -> FakeStream {
        match tokio::time::timeout(TIMEOUT, self.streams.recv()).await {
            Ok(Some(stream)) => stream,
            Ok(None) => panic!("fake ads server stopped"),
            Err(_) => panic!("no client opened a stream within {TIMEOUT:?}"),
        }
    }
}

impl Drop for FakeAds {
    fn drop(&mut self) {
        self.server.abort();
    }
}

// === impl FakeStream ===

impl FakeStream {
    /// The client's next request, or `None` once it closed its side; panics
    /// after [`TIMEOUT`].
    pub async fn recv(&mut self) -> Option<xds::DeltaDiscoveryRequest> {
        tokio::time::timeout(TIMEOUT, self.requests.recv())
            .await
            .unwrap_or_else(|_| panic!("client sent no request within {TIMEOUT:?}"))
    }

    /// The client's next request; panics if the stream ended or after
    /// [`TIMEOUT`].
    pub async fn expect_request(&mut self) -> xds::DeltaDiscoveryRequest {
        self.recv()
            .await
            .unwrap_or_else(|| panic!("client closed the stream instead of sending a request"))
    }

    /// Sends a response to the client.
    pub fn send(&self, response: xds::DeltaDiscoveryResponse) {
        // Fails only once the client is gone, which the next `recv` shows.
        let _ = self.responses.send(Ok(response));
    }

    /// Ends the stream with `status`, as a failing server would.
    pub fn fail(self, status: Status) {
        let _ = self.responses.send(Err(status));
    }
}

// === impl Service ===

#[tonic::async_trait]
impl AggregatedDiscoveryService for Service {
    type DeltaAggregatedResourcesStream =
        UnboundedReceiverStream<Result<xds::DeltaDiscoveryResponse, Status>>;

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<xds::DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let mut inbound = request.into_inner();
        let (requests_tx, requests) = mpsc::unbounded_channel();
        let (responses, responses_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(request)) = inbound.message().await {
                if requests_tx.send(request).is_err() {
                    break;
                }
            }
        });
        self.streams
            .send(FakeStream {
                requests,
                responses,
            })
            .map_err(|_| Status::unavailable("fake ads server is shutting down"))?;
        Ok(Response::new(UnboundedReceiverStream::new(responses_rx)))
    }
}

// === helpers ===

/// A wire resource of type `T` named `name` at `version`.
pub fn resource<T: Resource>(name: &str, version: &str, proto: &T::Proto) -> xds::Resource {
    xds::Resource {
        name: name.to_string(),
        version: version.to_string(),
        resource: Some(prost_types::Any {
            type_url: T::TYPE_URL.to_string(),
            value: prost::Message::encode_to_vec(proto),
        }),
        ..Default::default()
    }
}

/// A response for type `T` with nonce `nonce` (and `system_version_info`
/// `v-<nonce>`).
pub fn response<T: Resource>(
    nonce: &str,
    resources: Vec<xds::Resource>,
    removed: &[&str],
) -> xds::DeltaDiscoveryResponse {
    xds::DeltaDiscoveryResponse {
        system_version_info: format!("v-{nonce}"),
        resources,
        type_url: T::TYPE_URL.to_string(),
        removed_resources: removed.iter().map(|s| s.to_string()).collect(),
        nonce: nonce.to_string(),
        control_plane: None,
    }
}

/// A `http://127.0.0.1:<port>` URI where nothing listens (the port was bound
/// and released), for connection-failure tests.
pub async fn unreachable_uri() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(format!("http://{addr}"))
}
