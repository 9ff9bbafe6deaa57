//! The per-stream Delta xDS state machine: what each connected proxy
//! subscribed to, which resource versions it holds, and which responses it
//! has (N)ACKed. Pure: requests and snapshots in, responses out.
//!
//! Anyone who reaches the xDS port can open a stream, so what one stream may
//! make us keep is bounded here: a NACK reason is stored truncated to
//! [`MAX_NACK_REASON_BYTES`], a node id longer than [`MAX_NODE_ID_BYTES`] or a
//! resource name longer than [`MAX_NAME_BYTES`] is refused, and so is a stream
//! that subscribes to more than [`MAX_NAMED_SUBSCRIPTIONS`] names (a
//! [`Refusal`] ends it, and its state goes with it).

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    sync::Arc,
    time::SystemTime,
};

use braid_api::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as WireResource,
};
use braid_model::text;
use serde::Serialize;

use crate::snapshot::{Resource, ResourceType, Snapshot};

/// Responses awaiting an ACK that a stream remembers; older ones are
/// forgotten (an ACK for them is then ignored as stale).
const MAX_INFLIGHT: usize = 32;

/// Resource bytes per response before it is split: well under the 4 MiB
/// default message limit of gRPC clients (grpc-go, grpc-java), so standard
/// xDS clients need no tuning.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The wildcard resource name.
const WILDCARD: &str = "*";

/// Bytes of a NACK reason a stream keeps (and `proxy-status` shows): enough
/// for any real reason (braid-xds names each rejected resource and field),
/// and 50 streams of 3 MiB reasons then cost kilobytes, not megabytes.
pub const MAX_NACK_REASON_BYTES: usize = 1024;

/// Longest node id accepted. Ids like `sidecar~<ip>~<pod>.<ns>~<ns>.svc.<domain>`
/// stay well under it; a longer one is refused rather than cut, since a cut
/// id could name another proxy.
pub const MAX_NODE_ID_BYTES: usize = 512;

/// Bytes of the client's `user_agent_name` kept, for display only.
pub const MAX_USER_AGENT_BYTES: usize = 128;

/// Longest resource name accepted in a subscription: names are
/// `<namespace>/<name>` (63 + 1 + 253 bytes at most in Kubernetes), so a
/// longer one can never match and would only cost memory.
pub const MAX_NAME_BYTES: usize = 512;

/// Named subscriptions one stream may hold, all types together. Braid's
/// proxies subscribe by wildcard; `braidctl x watch --name` names a few.
pub const MAX_NAMED_SUBSCRIPTIONS: usize = 10_000;

/// One proxy's stream.
#[derive(Debug)]
pub struct StreamState {
    /// The node id the proxy sent (first request of the stream).
    pub node_id: String,
    /// The client's `user_agent_name`.
    pub user_agent: String,
    /// Remote address.
    pub peer: String,
    /// When the stream opened.
    pub connected_at: SystemTime,
    types: HashMap<ResourceType, TypeState>,
    next_nonce: u64,
}

/// What happened to one request, for metrics and logs.
#[derive(Debug, Default, PartialEq)]
pub struct RequestOutcome {
    /// Responses to send (several when a large answer is split).
    pub responses: Vec<DeltaDiscoveryResponse>,
    /// The request ACKed a response.
    pub acked: bool,
    /// The request NACKed a response, for this reason (as stored: truncated
    /// to [`MAX_NACK_REASON_BYTES`], not yet escaped).
    pub nack: Option<String>,
    /// The request was for this type URL, which this control plane does not
    /// serve; it was ignored.
    pub unknown_type: Option<String>,
}

/// Why a request ends its stream: it asks for more than one stream may hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The node id is over [`MAX_NODE_ID_BYTES`].
    #[error("node id of {len} bytes is longer than the {max} bytes allowed")]
    NodeIdTooLong {
        /// Its length.
        len: usize,
        /// [`MAX_NODE_ID_BYTES`].
        max: usize,
    },
    /// A subscribed name is over [`MAX_NAME_BYTES`].
    #[error(
        "resource name of {len} bytes subscribed for {type_url} is longer than the {max} bytes allowed (names are <namespace>/<name>)"
    )]
    NameTooLong {
        /// The type subscribed to.
        type_url: &'static str,
        /// The name's length.
        len: usize,
        /// [`MAX_NAME_BYTES`].
        max: usize,
    },
    /// The stream would hold more than [`MAX_NAMED_SUBSCRIPTIONS`] names.
    #[error(
        "more than {max} named subscriptions on one stream (subscribing to {type_url}); subscribe to \"*\" (wildcard) instead"
    )]
    TooManyNames {
        /// The type of the name that went over.
        type_url: &'static str,
        /// [`MAX_NAMED_SUBSCRIPTIONS`].
        max: usize,
    },
}

/// How a request answered an in-flight response.
enum Answer {
    Ack,
    /// With the reason, truncated.
    Nack(String),
}

#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    /// name -> version the proxy holds, as far as we know.
    sent: HashMap<String, String>,
    /// Snapshot version this type was last brought up to.
    synced: u64,
    inflight: VecDeque<(String, u64)>,
    acked_version: Option<u64>,
    sent_version: Option<u64>,
    last_nack: Option<Nack>,
    /// The newest answered response was a NACK.
    nacked: bool,
}

/// A rejected response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Nack {
    /// Nonce of the rejected response.
    pub nonce: String,
    /// Snapshot version of the rejected response.
    pub version: u64,
    /// The proxy's reason.
    pub reason: String,
    /// When it arrived.
    pub at: SystemTime,
}

/// Sync state of one type on one stream, for `proxy-status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TypeStatus {
    /// The type URL.
    pub type_url: &'static str,
    /// Snapshot version of the last ACKed response.
    pub acked_version: Option<u64>,
    /// Snapshot version of the last response sent.
    pub sent_version: Option<u64>,
    /// Everything subscribed is sent and ACKed at the newest snapshot.
    pub in_sync: bool,
    /// Resources the proxy holds.
    pub resources: usize,
    /// Wildcard subscription.
    pub wildcard: bool,
    /// The last NACK, if any.
    pub last_nack: Option<Nack>,
}

// === impl StreamState ===

impl StreamState {
    /// A new stream from `peer`.
    pub fn new(peer: String) -> Self {
        Self {
            node_id: String::new(),
            user_agent: String::new(),
            peer,
            connected_at: SystemTime::now(),
            types: HashMap::new(),
            next_nonce: 0,
        }
    }

    /// Handles one request against the current snapshot. A [`Refusal`]
    /// means the stream must end (the state may then be partly updated).
    pub fn on_request(
        &mut self,
        mut req: DeltaDiscoveryRequest,
        snapshot: &Snapshot,
    ) -> Result<RequestOutcome, Refusal> {
        let mut outcome = RequestOutcome::default();
        if let Some(node) = &req.node
            && self.node_id.is_empty()
        {
            if node.id.len() > MAX_NODE_ID_BYTES {
                return Err(Refusal::NodeIdTooLong {
                    len: node.id.len(),
                    max: MAX_NODE_ID_BYTES,
                });
            }
            self.node_id.clone_from(&node.id);
            self.user_agent = text::truncated(&node.user_agent_name, MAX_USER_AGENT_BYTES).into();
        }
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            outcome.unknown_type = Some(std::mem::take(&mut req.type_url));
            return Ok(outcome);
        };
        // Names held on the other types count against the same budget.
        let others: usize = self
            .types
            .iter()
            .filter(|(t, _)| **t != ty)
            .map(|(_, s)| s.names.len())
            .sum();
        let first = !self.types.contains_key(&ty);
        let state = self.types.entry(ty).or_default();
        if !req.response_nonce.is_empty() {
            match state.answer(&req) {
                Some(Answer::Ack) => outcome.acked = true,
                Some(Answer::Nack(reason)) => outcome.nack = Some(reason),
                None => {}
            }
        }
        let mut full = first;
        let mut forced = BTreeSet::new();
        if first {
            // Reconnect: the proxy already holds these; only differences are sent.
            state.sent = req.initial_resource_versions.into_iter().collect();
            // Legacy wildcard: a first request that names nothing means "everything".
            if req.resource_names_subscribe.is_empty() && req.resource_names_unsubscribe.is_empty()
            {
                state.wildcard = true;
            }
        }
        for name in req.resource_names_subscribe {
            if name == WILDCARD {
                full |= !state.wildcard;
                state.wildcard = true;
            } else {
                if name.len() > MAX_NAME_BYTES {
                    return Err(Refusal::NameTooLong {
                        type_url: ty.type_url(),
                        len: name.len(),
                        max: MAX_NAME_BYTES,
                    });
                }
                if others + state.names.len() >= MAX_NAMED_SUBSCRIPTIONS
                    && !state.names.contains(&name)
                {
                    return Err(Refusal::TooManyNames {
                        type_url: ty.type_url(),
                        max: MAX_NAMED_SUBSCRIPTIONS,
                    });
                }
                state.names.insert(name.clone());
                // The protocol requires answering every named subscription,
                // even when the proxy seems to hold the current version.
                if !first {
                    state.sent.remove(&name);
                }
                forced.insert(name);
            }
        }
        for name in req.resource_names_unsubscribe {
            if name == WILDCARD {
                state.wildcard = false;
            } else {
                state.names.remove(&name);
            }
        }
        state
            .sent
            .retain(|name, _| state.wildcard || state.names.contains(name));
        let response = if full {
            let names: Vec<String> = snapshot
                .resources(ty)
                .keys()
                .cloned()
                .chain(state.sent.keys().cloned())
                .chain(forced)
                .collect();
            state.diff(ty, snapshot, names, true)
        } else if !forced.is_empty() {
            state.diff(ty, snapshot, forced, true)
        } else {
            None
        };
        if first || full {
            state.synced = snapshot.version;
        }
        if let Some(r) = response {
            outcome.responses = self.stamp(ty, r, snapshot.version);
        }
        Ok(outcome)
    }

    /// The responses a new snapshot calls for (per type, one unless split).
    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DeltaDiscoveryResponse> {
        let mut out = Vec::new();
        let mut types: Vec<ResourceType> = self.types.keys().copied().collect();
        types.sort();
        for ty in types {
            let Some(state) = self.types.get_mut(&ty) else {
                continue;
            };
            if state.synced >= snapshot.version {
                continue;
            }
            let names: Vec<String> = match snapshot.changed_since(ty, state.synced) {
                Some(names) => names.into_iter().collect(),
                None => snapshot
                    .resources(ty)
                    .keys()
                    .cloned()
                    .chain(state.sent.keys().cloned())
                    .collect(),
            };
            state.synced = snapshot.version;
            if let Some(r) = state.diff(ty, snapshot, names, false) {
                out.extend(self.stamp(ty, r, snapshot.version));
            }
        }
        out
    }

    /// The sync state of every type this stream requested.
    pub fn status(&self, current_version: u64) -> Vec<TypeStatus> {
        let mut out: Vec<TypeStatus> = self
            .types
            .iter()
            .map(|(ty, s)| TypeStatus {
                type_url: ty.type_url(),
                acked_version: s.acked_version,
                sent_version: s.sent_version,
                in_sync: s.inflight.is_empty() && !s.nacked && s.synced >= current_version,
                resources: s.sent.len(),
                wildcard: s.wildcard,
                last_nack: s.last_nack.clone(),
            })
            .collect();
        out.sort_by_key(|s| s.type_url);
        out
    }

    /// Splits `response` into messages of at most [`MAX_RESPONSE_BYTES`] and
    /// gives each a nonce; every part is (N)ACKed on its own.
    fn stamp(
        &mut self,
        ty: ResourceType,
        response: DeltaDiscoveryResponse,
        version: u64,
    ) -> Vec<DeltaDiscoveryResponse> {
        let mut parts = split(response);
        for part in &mut parts {
            self.next_nonce += 1;
            part.nonce = self.next_nonce.to_string();
            part.system_version_info = version.to_string();
            if let Some(state) = self.types.get_mut(&ty) {
                state.inflight.push_back((part.nonce.clone(), version));
                if state.inflight.len() > MAX_INFLIGHT {
                    state.inflight.pop_front();
                }
                state.sent_version = Some(version);
            }
        }
        parts
    }
}

/// Splits a response so no part exceeds [`MAX_RESPONSE_BYTES`] (a part with a
/// single larger resource is still sent). Removals ride in the last part.
fn split(mut response: DeltaDiscoveryResponse) -> Vec<DeltaDiscoveryResponse> {
    let size = |r: &WireResource| {
        r.resource.as_ref().map_or(0, |a| a.value.len()) + r.name.len() + r.version.len()
    };
    if response.resources.iter().map(size).sum::<usize>() <= MAX_RESPONSE_BYTES {
        return vec![response];
    }
    let removed = std::mem::take(&mut response.removed_resources);
    let mut parts = Vec::new();
    let mut current = DeltaDiscoveryResponse {
        type_url: response.type_url.clone(),
        ..Default::default()
    };
    let mut bytes = 0;
    for resource in std::mem::take(&mut response.resources) {
        let n = size(&resource);
        if bytes + n > MAX_RESPONSE_BYTES && !current.resources.is_empty() {
            let next = DeltaDiscoveryResponse {
                type_url: response.type_url.clone(),
                ..Default::default()
            };
            parts.push(std::mem::replace(&mut current, next));
            bytes = 0;
        }
        bytes += n;
        current.resources.push(resource);
    }
    current.removed_resources = removed;
    parts.push(current);
    parts
}

// === impl TypeState ===

impl TypeState {
    fn subscribed(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// Records an ACK or a NACK; `None` for a stale nonce (nothing kept).
    fn answer(&mut self, req: &DeltaDiscoveryRequest) -> Option<Answer> {
        let pos = self
            .inflight
            .iter()
            .position(|(n, _)| *n == req.response_nonce)?;
        let (nonce, version) = self.inflight.drain(..=pos).next_back()?;
        match &req.error_detail {
            Some(status) => {
                // Only the bounded prefix is copied: the request, with the
                // whole reason, is dropped once it is handled.
                let reason = text::truncated(&status.message, MAX_NACK_REASON_BYTES).into_owned();
                self.last_nack = Some(Nack {
                    nonce,
                    version,
                    reason: reason.clone(),
                    at: SystemTime::now(),
                });
                self.nacked = true;
                Some(Answer::Nack(reason))
            }
            None => {
                self.acked_version = Some(version);
                self.nacked = false;
                Some(Answer::Ack)
            }
        }
    }

    /// Builds a response for `names`: resources whose version the proxy lacks,
    /// and removals for names it holds that are gone. With `always`, an empty
    /// response is still returned (the proxy is waiting for an answer).
    fn diff(
        &mut self,
        ty: ResourceType,
        snapshot: &Snapshot,
        names: impl IntoIterator<Item = String>,
        always: bool,
    ) -> Option<DeltaDiscoveryResponse> {
        let resources = snapshot.resources(ty);
        let mut response = DeltaDiscoveryResponse {
            type_url: ty.type_url().to_string(),
            ..Default::default()
        };
        let mut seen = BTreeSet::new();
        for name in names {
            if !seen.insert(name.clone()) || !self.subscribed(&name) {
                continue;
            }
            match resources.get(&name) {
                Some(resource) => {
                    if self.sent.get(&name) != Some(&resource.version) {
                        self.sent.insert(name, resource.version.clone());
                        response.resources.push(to_wire(resource));
                    }
                }
                None => {
                    // Tell the proxy about removals, and answer a named
                    // subscription for something that does not exist.
                    if self.sent.remove(&name).is_some() || (always && !self.wildcard) {
                        response.removed_resources.push(name);
                    }
                }
            }
        }
        (always || !response.resources.is_empty() || !response.removed_resources.is_empty())
            .then_some(response)
    }
}

fn to_wire(resource: &Arc<Resource>) -> WireResource {
    WireResource {
        name: resource.name.clone(),
        version: resource.version.clone(),
        resource: Some(resource.body.clone()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
