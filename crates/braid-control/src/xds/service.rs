//! [`AdsService`]: the ADS server as tonic routes it, with the request body
//! handed to [`Frames`] instead of tonic's decoder.
//!
//! The generated `AggregatedDiscoveryServiceServer` still does everything
//! else (headers, the `grpc-encoding` check, encoding responses, trailers
//! and statuses). For the Delta method this service only moves the body into
//! the request's extensions and gives the generated server an empty one; the
//! handler takes it back out. tonic keeps extensions from `http::Request` to
//! `tonic::Request` (`Request::from_http`).

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use braid_api::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest,
    aggregated_discovery_service_server::{
        AggregatedDiscoveryService, AggregatedDiscoveryServiceServer, SERVICE_NAME,
    },
};
use tonic::{
    Request, Response, Status, Streaming, body::Body, codegen::BoxFuture, server::NamedService,
};
use tower::Service;

use super::{AdsServer, ResponseStream, frames::Frames};

/// The Delta ADS method's path.
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// The ADS server as a tower service, for `Server::add_service`.
#[derive(Clone, Debug)]
pub struct AdsService {
    inner: AggregatedDiscoveryServiceServer<Handler>,
}

/// The generated trait's implementation: reads the body [`AdsService`] set
/// aside. Private, so that only `AdsService` wraps it.
#[derive(Debug)]
struct Handler(AdsServer);

/// A request body on its way through the generated server. `Body` is not
/// `Sync` and extensions must be, hence the mutex; it is taken once.
#[derive(Clone, Debug)]
struct SetAside(Arc<Mutex<Option<Body>>>);

// === impl AdsService ===

impl AdsService {
    /// Serves `ads`.
    pub fn new(ads: AdsServer) -> Self {
        Self {
            inner: AggregatedDiscoveryServiceServer::new(Handler(ads)),
        }
    }
}

impl Service<http::Request<Body>> for AdsService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    // The generated server's own future type.
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<http::Request<Body>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != DELTA_PATH {
            return self.inner.call(request);
        }
        let (mut parts, body) = request.into_parts();
        parts
            .extensions
            .insert(SetAside(Arc::new(Mutex::new(Some(body)))));
        self.inner
            .call(http::Request::from_parts(parts, Body::empty()))
    }
}

impl NamedService for AdsService {
    const NAME: &'static str = SERVICE_NAME;
}

// === impl Handler ===

#[tonic::async_trait]
impl AggregatedDiscoveryService for Handler {
    type DeltaAggregatedResourcesStream = ResponseStream;

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        // tonic's `Streaming` reads the empty body: dropped unused.
        let (metadata, mut extensions, _) = request.into_parts();
        let body = extensions
            .remove::<SetAside>()
            .and_then(|set_aside| set_aside.0.lock().unwrap_or_else(|e| e.into_inner()).take())
            .ok_or_else(|| Status::internal("the ADS request body was not set aside"))?;
        let frames = Frames::new(body, super::frames::MAX_REQUEST_BYTES);
        self.0
            .delta(Request::from_parts(metadata, extensions, ()), frames)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_path_names_the_generated_method() {
        assert_eq!(
            DELTA_PATH,
            format!("/{SERVICE_NAME}/DeltaAggregatedResources")
        );
    }
}
