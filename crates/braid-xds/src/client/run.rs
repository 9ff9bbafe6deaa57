//! The run loop: connect, open the stream, announce every type, then turn
//! responses into ACK/NACKs and commands into subscription requests until the
//! stream fails; back off; repeat until shutdown.
//!
//! Every wait races the shutdown signal, and no lock is held across an
//! `.await`: the loop owns all protocol state; stores are only locked inside
//! synchronous apply calls.

use std::sync::Arc;

use braid_api::envoy::{
    config::core::v3 as core,
    service::discovery::v3::{
        self as xds, aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
    },
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;

use braid_model::text::escaped;

use super::Client;
use crate::{
    ConnectionState, Error, LOGGED_FIELD_BYTES, handle::Command, type_state::reject_unwatched,
};

/// Why one connection ended.
enum Exit {
    Shutdown,
    Failed(Error),
}

/// The request half of an open stream.
///
/// Unbounded because the loop must never stall on it: what goes in is one
/// initial request per type, one (N)ACK per server response and the caller's
/// subscription changes, all paced by the server or the caller.
struct Outbox {
    tx: mpsc::UnboundedSender<xds::DeltaDiscoveryRequest>,
    /// Attached to the first request of the stream, whichever type it is for.
    node: Option<core::Node>,
}

// === impl Client ===

impl Client {
    /// Runs until [`ClientHandle::shutdown`](crate::ClientHandle::shutdown):
    /// connects, streams, and reconnects with backoff after every failure.
    /// Returns after closing the stream. Dropping the future instead also
    /// stops the client, without the final
    /// [`ConnectionState::Stopped`] status.
    pub async fn run(mut self) {
        loop {
            let error = match self.connect_and_serve().await {
                Exit::Shutdown => break,
                Exit::Failed(error) => error,
            };
            for state in self.types.values_mut() {
                state.on_disconnect();
            }
            let retry_in = self.attempts.fail();
            tracing::warn!(uri = %self.uri, %error, ?retry_in, "xds stream failed; backing off");
            self.set_connection(ConnectionState::BackingOff {
                attempt: self.attempts.failures(),
                retry_in,
                last_error: Arc::new(error),
            });
            if !self.back_off(retry_in).await {
                break;
            }
        }
        tracing::debug!(uri = %self.uri, "xds client stopped");
        self.set_connection(ConnectionState::Stopped);
    }

    /// One connection: dial, open the stream, serve it until it ends.
    /// The stream's opening request, carrying the bearer token if any.
    fn stream_request(
        &self,
        rx: mpsc::UnboundedReceiver<xds::DeltaDiscoveryRequest>,
    ) -> tonic::Request<UnboundedReceiverStream<xds::DeltaDiscoveryRequest>> {
        let mut request = tonic::Request::new(UnboundedReceiverStream::new(rx));
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }

    async fn connect_and_serve(&mut self) -> Exit {
        self.set_connection(ConnectionState::Connecting {
            attempt: self.attempts.failures(),
        });
        let endpoint = self.endpoint.clone();
        let connect = async {
            match &self.tls {
                None => endpoint.connect().await,
                Some(config) => {
                    let connector = crate::channel::connector(config.clone());
                    endpoint.connect_with_connector(connector).await
                }
            }
        };
        let channel = tokio::select! {
            _ = stopped(&mut self.shutdown) => return Exit::Shutdown,
            connected = connect => match connected {
                Ok(channel) => channel,
                Err(source) => return Exit::Failed(Error::Connect { uri: self.uri.clone(), source }),
            },
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let mut outbox = Outbox {
            tx,
            node: Some(self.node.clone()),
        };
        // Queued before the call: a server may wait for the first request
        // before it answers with response headers.
        for state in self.types.values_mut() {
            if let Some(request) = state.on_connect() {
                outbox.send(request);
            }
        }
        let mut client = AggregatedDiscoveryServiceClient::new(channel)
            .max_decoding_message_size(self.max_message_size);
        let request = self.stream_request(rx);
        let mut responses = tokio::select! {
            _ = stopped(&mut self.shutdown) => return Exit::Shutdown,
            opened = client.delta_aggregated_resources(request) => {
                match opened {
                    Ok(response) => response.into_inner(),
                    Err(status) => return Exit::Failed(Error::Stream(status)),
                }
            }
        };
        tracing::info!(uri = %self.uri, "xds stream open");
        self.set_connection(ConnectionState::Connected);
        loop {
            tokio::select! {
                _ = stopped(&mut self.shutdown) => return Exit::Shutdown,
                Some(command) = self.commands.recv() => self.on_command(command, Some(&mut outbox)),
                message = responses.message() => match message {
                    Ok(Some(response)) => {
                        self.attempts.reset();
                        let ack = self.on_response(response);
                        outbox.send(ack);
                    }
                    Ok(None) => return Exit::Failed(Error::StreamClosed),
                    Err(status) => return Exit::Failed(Error::Stream(status)),
                },
            }
        }
    }

    /// Waits out a backoff, still taking subscription changes (they shape
    /// the next stream's initial requests). False when shut down meanwhile.
    async fn back_off(&mut self, delay: std::time::Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = stopped(&mut self.shutdown) => return false,
                () = &mut sleep => return true,
                Some(command) = self.commands.recv() => self.on_command(command, None),
            }
        }
    }

    fn on_command(&mut self, command: Command, outbox: Option<&mut Outbox>) {
        let request = match command {
            Command::Subscribe { type_url, names } => self
                .types
                .get_mut(type_url)
                .and_then(|state| state.subscribe(names)),
            Command::Unsubscribe { type_url, names } => self
                .types
                .get_mut(type_url)
                .and_then(|state| state.unsubscribe(names)),
        };
        self.publish_types();
        if let (Some(request), Some(outbox)) = (request, outbox) {
            outbox.send(request);
        }
    }

    fn on_response(&mut self, response: xds::DeltaDiscoveryResponse) -> xds::DeltaDiscoveryRequest {
        tracing::debug!(
            type_url = %escaped(&response.type_url).truncated(LOGGED_FIELD_BYTES),
            nonce = %escaped(&response.nonce).truncated(LOGGED_FIELD_BYTES),
            version = %escaped(&response.system_version_info).truncated(LOGGED_FIELD_BYTES),
            resources = response.resources.len(),
            removed = response.removed_resources.len(),
            "xds response"
        );
        let request = match self.types.get_mut(response.type_url.as_str()) {
            Some(state) => state.on_response(response),
            None => reject_unwatched(&response),
        };
        self.publish_types();
        request
    }

    fn set_connection(&self, connection: ConnectionState) {
        self.status
            .send_modify(|status| status.connection = connection);
    }

    fn publish_types(&self) {
        self.status.send_modify(|status| {
            for (url, state) in &self.types {
                status.types.insert(url, state.status().clone());
            }
        });
    }
}

/// Resolves once shutdown is requested (or every handle, and so every way to
/// request it, is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // Err means the sender is gone: nobody can ask any more, so stop too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

// === impl Outbox ===

impl Outbox {
    fn send(&mut self, mut request: xds::DeltaDiscoveryRequest) {
        if let Some(node) = self.node.take() {
            request.node = Some(node);
        }
        // A send only fails once the stream is gone; the response side then
        // reports why, so there is nothing to add here.
        if self.tx.send(request).is_err() {
            tracing::debug!("xds request dropped: the stream has closed");
        }
    }
}
