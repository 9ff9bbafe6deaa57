//! The protocol state of one type URL on the stream: what is subscribed,
//! whether the current stream has announced it, and turning each response
//! into exactly one ACK or NACK. Pure and synchronous; the stream loop does
//! the I/O.

use braid_api::{envoy::service::discovery::v3 as xds, google::rpc};
use braid_model::text::escaped;

use crate::{
    LOGGED_FIELD_BYTES, LOGGED_REASON_BYTES, Nack, Rejected, TypeStatus,
    subscription::{Subscribed, Subscription},
    watch::{ErasedWatch, RawDelta},
};

/// One watched type URL.
pub(crate) struct TypeState {
    type_url: &'static str,
    subscribed: Subscribed,
    watch: Box<dyn ErasedWatch>,
    /// A stream is open (requests built now can be sent).
    connected: bool,
    /// The open stream has carried this type's initial request. Until then a
    /// subscription change must be sent as a full initial request.
    announced: bool,
    status: TypeStatus,
}

// === impl TypeState ===

impl TypeState {
    pub(crate) fn new(
        type_url: &'static str,
        subscription: Subscription,
        watch: Box<dyn ErasedWatch>,
    ) -> Self {
        let mut state = Self {
            type_url,
            subscribed: Subscribed::new(subscription),
            watch,
            connected: false,
            announced: false,
            status: TypeStatus::default(),
        };
        state.refresh_status();
        state
    }

    pub(crate) fn status(&self) -> &TypeStatus {
        &self.status
    }

    /// A new stream is open; returns this type's initial request, or `None`
    /// when nothing is subscribed yet.
    pub(crate) fn on_connect(&mut self) -> Option<xds::DeltaDiscoveryRequest> {
        self.connected = true;
        self.announced = false;
        self.initial_request()
    }

    /// The stream ended; subscription changes are only recorded until the
    /// next one.
    pub(crate) fn on_disconnect(&mut self) {
        self.connected = false;
        self.announced = false;
    }

    /// Adds names; returns the request to send, if any.
    pub(crate) fn subscribe(&mut self, names: Vec<String>) -> Option<xds::DeltaDiscoveryRequest> {
        let added = self.subscribed.add(names);
        self.refresh_status();
        if !self.connected || added.is_empty() {
            return None;
        }
        if !self.announced {
            return self.initial_request();
        }
        Some(xds::DeltaDiscoveryRequest {
            type_url: self.type_url.to_string(),
            resource_names_subscribe: added,
            ..Default::default()
        })
    }

    /// Removes names and drops every held resource no longer wanted (the
    /// server sends no removal for an unsubscribed name); returns the request
    /// to send, if any.
    pub(crate) fn unsubscribe(&mut self, names: Vec<String>) -> Option<xds::DeltaDiscoveryRequest> {
        let removed = self.subscribed.remove(names);
        let unwanted = (self.watch.versions().into_keys())
            .filter(|name| !self.subscribed.wants(name))
            .collect();
        self.watch.forget(unwanted);
        self.refresh_status();
        if !self.connected || !self.announced || removed.is_empty() {
            return None;
        }
        Some(xds::DeltaDiscoveryRequest {
            type_url: self.type_url.to_string(),
            resource_names_unsubscribe: removed,
            ..Default::default()
        })
    }

    /// Applies a response and returns its ACK, or its NACK if any resource
    /// was rejected (the others are applied either way).
    pub(crate) fn on_response(
        &mut self,
        response: xds::DeltaDiscoveryResponse,
    ) -> xds::DeltaDiscoveryRequest {
        let total = response.resources.len();
        let raw = RawDelta {
            system_version_info: response.system_version_info.clone(),
            resources: response.resources,
            removed: response.removed_resources,
        };
        let rejected = self.watch.apply(raw, &self.subscribed);
        self.status.synced = true;
        let error_detail = if rejected.is_empty() {
            self.status.acks += 1;
            self.status.acked_nonce = Some(response.nonce.clone());
            self.status.acked_version = Some(response.system_version_info);
            None
        } else {
            let reason = Rejected::nack_message(&rejected, total);
            // The reason quotes the server's names and values: escaped, bounded.
            tracing::warn!(
                type_url = self.type_url,
                nonce = %escaped(&response.nonce).truncated(LOGGED_FIELD_BYTES),
                reason = %escaped(&reason).truncated(LOGGED_REASON_BYTES),
                "rejecting xds response"
            );
            self.status.nacks += 1;
            self.status.last_nack = Some(Nack {
                nonce: response.nonce.clone(),
                version: response.system_version_info,
                reason: reason.clone(),
            });
            Some(invalid_argument(reason))
        };
        self.refresh_status();
        xds::DeltaDiscoveryRequest {
            type_url: self.type_url.to_string(),
            response_nonce: response.nonce,
            error_detail,
            ..Default::default()
        }
    }

    fn initial_request(&mut self) -> Option<xds::DeltaDiscoveryRequest> {
        if self.subscribed.is_empty() {
            return None;
        }
        self.announced = true;
        Some(xds::DeltaDiscoveryRequest {
            type_url: self.type_url.to_string(),
            resource_names_subscribe: self.subscribed.initial_names(),
            initial_resource_versions: self.watch.versions(),
            ..Default::default()
        })
    }

    fn refresh_status(&mut self) {
        self.status.wildcard = self.subscribed.is_wildcard();
        self.status.subscribed_names = self.subscribed.name_count();
        self.status.resources = self.watch.len();
    }
}

/// The NACK for a response of a type URL nobody watches: the server should
/// not send it, and saying so beats silently ignoring it.
pub(crate) fn reject_unwatched(
    response: &xds::DeltaDiscoveryResponse,
) -> xds::DeltaDiscoveryRequest {
    tracing::warn!(type_url = %escaped(&response.type_url).truncated(LOGGED_FIELD_BYTES), "rejecting a response for a type url that is not watched");
    xds::DeltaDiscoveryRequest {
        type_url: response.type_url.clone(),
        response_nonce: response.nonce.clone(),
        error_detail: Some(invalid_argument(format!(
            "type url {:?} is not watched by this client",
            response.type_url
        ))),
        ..Default::default()
    }
}

fn invalid_argument(message: String) -> rpc::Status {
    rpc::Status {
        code: tonic::Code::InvalidArgument as i32,
        message,
        details: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
