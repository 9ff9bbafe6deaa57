//! What the client reports about itself: connection state and, per type, what
//! it holds and what it last acknowledged or rejected. Published on every
//! change; see [`ClientHandle::status`](crate::ClientHandle::status).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use crate::Error;

/// A snapshot of the client's state.
#[derive(Clone, Debug)]
pub struct ClientStatus {
    /// The stream's state.
    pub connection: ConnectionState,
    /// Per watched type URL.
    pub types: BTreeMap<&'static str, TypeStatus>,
}

/// Where the client is in its connect / stream / back off cycle.
#[derive(Clone, Debug)]
pub enum ConnectionState {
    /// Dialing the server and opening the stream.
    Connecting {
        /// Failed attempts since the last stream that received a response.
        attempt: u32,
    },
    /// The stream is open.
    Connected,
    /// The last attempt failed; waiting before the next one.
    BackingOff {
        /// Failed attempts since the last stream that received a response.
        attempt: u32,
        /// How long this wait is.
        retry_in: Duration,
        /// Why the last attempt or stream failed.
        last_error: Arc<Error>,
    },
    /// [`ClientHandle::shutdown`](crate::ClientHandle::shutdown) was called;
    /// the run loop has ended.
    Stopped,
}

/// The state of one watched type URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeStatus {
    /// Whether the watch subscribes to every resource of the type.
    pub wildcard: bool,
    /// How many explicit names are subscribed.
    pub subscribed_names: usize,
    /// How many resources are held.
    pub resources: usize,
    /// Whether any response for this type has been applied since the client
    /// started. Stays true across reconnects: the held resources are still
    /// the latest the client knows, which is what a proxy should serve.
    pub synced: bool,
    /// Nonce of the last ACKed response.
    pub acked_nonce: Option<String>,
    /// `system_version_info` of the last ACKed response.
    pub acked_version: Option<String>,
    /// The last NACK sent, if any (kept after later ACKs, for diagnosis).
    pub last_nack: Option<Nack>,
    /// Responses ACKed since the client started.
    pub acks: u64,
    /// Responses NACKed since the client started.
    pub nacks: u64,
}

/// A rejected response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    /// The response's nonce.
    pub nonce: String,
    /// The response's `system_version_info`.
    pub version: String,
    /// The NACK's `error_detail.message`.
    pub reason: String,
}

// === impl ClientStatus ===

impl ClientStatus {
    pub(crate) fn new(types: BTreeMap<&'static str, TypeStatus>) -> Self {
        Self {
            connection: ConnectionState::Connecting { attempt: 0 },
            types,
        }
    }

    /// Whether the stream is open.
    pub fn is_connected(&self) -> bool {
        matches!(self.connection, ConnectionState::Connected)
    }

    /// Whether every watched type that subscribes to anything has applied at
    /// least one response: the signal a proxy's readiness waits for.
    pub fn is_synced(&self) -> bool {
        self.types
            .values()
            .all(|t| t.synced || (!t.wildcard && t.subscribed_names == 0))
    }
}
