//! The node-local hand-off of ambient pods from the node agent to the
//! ztunnel.
//!
//! Transport: a Unix `SOCK_SEQPACKET` socket that the ztunnel listens on
//! ([`HandoffListener`]) and the agent connects to ([`HandoffClient`]).
//! Packets keep their boundaries, so each packet is exactly one UTF-8 JSON
//! object of at most [`MAX_PACKET`] bytes, tagged by `"type"`:
//!
//! | direction | message | fds |
//! |---|---|---|
//! | agent → ztunnel | `{"type":"hello","version":1}` (first, once) | 0 |
//! | agent → ztunnel | `{"type":"add_pod","uid":"…","workload":"<ns>/<pod>"}` | exactly 1: the pod's network namespace |
//! | agent → ztunnel | `{"type":"remove_pod","uid":"…"}` | 0 |
//! | agent → ztunnel | `{"type":"snapshot_sent"}` | 0 |
//! | ztunnel → agent | `{"type":"ack","error":null\|"…"}`, one per message above, in order | 0 |
//!
//! On every (re)connection the agent sends `hello`, then `add_pod` for every
//! pod it knows, then `snapshot_sent`: the ztunnel may then forget pods that
//! were not re-sent. An `add_pod` for a uid the ztunnel already has replaces
//! it (the runtime retries ADDs, and replays repeat pods).
//!
//! Parsing is strict: unknown types or fields, a missing or extra fd and
//! oversized packets are answered with an `ack` carrying the error (extra
//! fds are closed) and the connection stays usable; only I/O errors, a
//! closed peer or an unsupported version end it.

mod client;
mod server;
mod socket;
mod wire;

#[cfg(test)]
mod tests;

use std::{io, os::fd::OwnedFd, path::PathBuf, time::Duration};

pub use client::HandoffClient;
pub use server::{HandoffConnection, HandoffListener};

/// The protocol version this crate speaks (sent in `hello`).
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest packet either side accepts, in bytes.
pub const MAX_PACKET: usize = 16 * 1024;

/// How long the agent waits for each `ack` by default.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// A pod event the ztunnel receives; answer each with
/// [`HandoffConnection::ack`] before asking for the next one.
#[derive(Debug)]
pub enum PodEvent {
    /// Capture this pod: open listeners inside `netns`.
    Add {
        /// Kubernetes pod UID (or container id outside Kubernetes).
        uid: String,
        /// `<namespace>/<pod name>`, the pod's Workload resource name.
        workload: String,
        /// The pod's network namespace.
        netns: OwnedFd,
    },
    /// Stop capturing this pod.
    Remove {
        /// The uid given in the matching `Add`.
        uid: String,
    },
    /// The agent has re-sent every pod it knows since connecting: pods not
    /// re-sent on this connection are gone.
    SnapshotSent,
}

/// What went wrong on a hand-off socket.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    /// The listening socket could not be created.
    #[error(
        "cannot listen on handoff socket {}: {source}; check that its directory exists and is writable",
        path.display()
    )]
    Bind {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// The ztunnel's socket could not be reached.
    #[error("cannot connect to the ztunnel handoff socket {}: {source}; is the ztunnel running?", path.display())]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("handoff socket {op} failed: {source}")]
    Io {
        /// `send`, `receive` or `accept`.
        op: &'static str,
        /// Cause.
        source: io::Error,
    },
    /// The peer closed the connection.
    #[error("the handoff peer closed the connection")]
    Closed,
    /// A packet exceeded [`MAX_PACKET`].
    #[error("handoff packet larger than {MAX_PACKET} bytes")]
    Oversized,
    /// A packet was not a valid message.
    #[error("malformed handoff message: {0}")]
    Malformed(String),
    /// A message carried the wrong number of fds.
    #[error("{message} must carry {expected} fd(s), got {got}")]
    FdCount {
        /// Message type.
        message: &'static str,
        /// How many it must carry.
        expected: usize,
        /// How many arrived (extra ones were closed).
        got: usize,
    },
    /// The peer speaks another protocol version.
    #[error("unsupported handoff protocol version {0}: this side speaks {PROTOCOL_VERSION}")]
    UnsupportedVersion(u32),
    /// The ztunnel answered a message with an error.
    #[error("ztunnel rejected {what}: {reason}")]
    Rejected {
        /// What was sent, e.g. `add_pod shop/web-0`.
        what: String,
        /// The ztunnel's error text.
        reason: String,
    },
    /// No `ack` arrived in time.
    #[error("no ack from the ztunnel for {what} within {timeout:?}; the connection is dropped")]
    Timeout {
        /// What was sent.
        what: String,
        /// How long the agent waited.
        timeout: Duration,
    },
    /// [`HandoffConnection::next`] was called before the previous event was
    /// acknowledged, or [`HandoffConnection::ack`] with nothing to ack.
    #[error("handoff misuse: {0}")]
    Misuse(&'static str),
}

/// A `Result` with a [`HandoffError`].
pub type Result<T, E = HandoffError> = std::result::Result<T, E>;

// === impl HandoffError ===

impl HandoffError {
    /// Whether the connection is unusable after this error (reconnect);
    /// otherwise the offending message was answered and the next may follow.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Bind { .. }
                | Self::Connect { .. }
                | Self::Io { .. }
                | Self::Closed
                | Self::UnsupportedVersion(_)
                | Self::Timeout { .. }
        )
    }
}
