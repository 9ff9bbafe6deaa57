//! Errors: why the client could not talk to the server, and why a resource was
//! rejected (the text of a NACK).

use braid_api::convert::ConvertError;

/// Why the client failed to build, connect or keep its stream.
///
/// Stream errors are not fatal: [`Client::run`](crate::Client::run) backs off
/// and reconnects, and reports the last one in
/// [`ConnectionState::BackingOff`](crate::ConnectionState::BackingOff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server URI does not parse.
    #[error(
        "invalid xds server uri {uri:?}: {source}; use a uri such as http://braid-control:15010"
    )]
    InvalidUri {
        /// The URI as given.
        uri: String,
        /// Why it does not parse.
        #[source]
        source: tonic::transport::Error,
    },
    /// The TLS configuration for the control plane cannot be built.
    #[error("cannot set up TLS to the control plane: {0}")]
    Tls(String),
    /// A proxy token cannot be sent as gRPC metadata.
    #[error(
        "the proxy token is not printable ASCII: use the token exactly as listed in its braid.dev/proxy-token Secret"
    )]
    InvalidToken,
    /// Two watches were registered for one type URL.
    #[error("type url {type_url} is watched twice: register one handler per type")]
    DuplicateWatch {
        /// The type URL.
        type_url: &'static str,
    },
    /// A subscription change named a type URL the client does not watch.
    #[error("type url {type_url:?} is not watched: add it with ClientBuilder::watch before build")]
    NotWatched {
        /// The type URL as given.
        type_url: String,
    },
    /// The TCP/HTTP2 connection to the server failed.
    #[error(
        "cannot connect to xds server {uri}: {source}; check the address and that braid-control is running"
    )]
    Connect {
        /// The server URI.
        uri: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The server refused or aborted the stream with a gRPC status.
    #[error("xds stream failed: {0}")]
    Stream(#[source] tonic::Status),
    /// The server ended the stream without an error.
    #[error("xds server closed the stream; reconnecting")]
    StreamClosed,
    /// The client's run loop has ended, so the handle can no longer reach it.
    #[error("xds client has stopped: start a new client to change subscriptions")]
    Stopped,
}

/// One resource of a response that was not applied.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The resource name as sent by the server.
    pub name: String,
    /// Why it was rejected.
    pub error: ResourceError,
}

/// Why a resource could not be applied; the per-resource part of a NACK.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// The resource has no name, so it cannot be cached or removed.
    #[error("resource has an empty name")]
    EmptyName,
    /// The resource carries no `Any` body.
    #[error("resource has no body")]
    MissingBody,
    /// The `Any` holds a different type than the response announced.
    #[error("body type url {actual:?} does not match the response type url {expected:?}")]
    TypeMismatch {
        /// The response's type URL.
        expected: String,
        /// The body's type URL.
        actual: String,
    },
    /// The body is not a valid encoding of the expected message.
    #[error("cannot decode body: {0}")]
    Decode(#[source] prost::DecodeError),
    /// The message decoded but does not convert to the domain model.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// The same name appears more than once in one response.
    #[error("name appears more than once in the response")]
    Duplicate,
}

// === impl Rejected ===

impl Rejected {
    /// The NACK message for a response: every rejected resource with its
    /// reason, so an operator can fix the source without reading client logs.
    pub(crate) fn nack_message(rejected: &[Rejected], total: usize) -> String {
        let reasons: Vec<String> = rejected.iter().map(ToString::to_string).collect();
        format!(
            "rejected {} of {} resources: {}",
            rejected.len(),
            total,
            reasons.join("; ")
        )
    }
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.name, self.error)
    }
}
