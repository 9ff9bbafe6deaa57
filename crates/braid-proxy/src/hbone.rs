//! HBONE: TCP tunnels as HTTP/2 `CONNECT` streams over mutual TLS 1.3.
//!
//! The wire format is Istio's: TLS 1.3 with ALPN `h2`, both sides presenting
//! SPIFFE certificates (URI SANs), then one HTTP/2 `CONNECT` stream per
//! tunnel whose `:authority` is the target's `ip:port`, sent to port
//! [`DEFAULT_PORT`] of the destination's proxy. A `200` response opens the
//! tunnel; the stream's DATA frames carry the bytes, `END_STREAM` is a TCP
//! half-close and `RST_STREAM` a reset.
//!
//! * [`Server`] accepts connections, learns the client's identity from its
//!   certificate, and asks a [`Connector`] to decide on and dial each
//!   target; [`DirectConnector`] just dials.
//! * [`Pool`] is the client: HTTP/2 connections shared per (source identity,
//!   proxy address, expected proxy identity), opening [`HboneStream`]s.
//!
//! Both sides use the same [`Settings`]: windows sized for bulk transfer,
//! stream limits, timeouts and keep-alive.

use std::time::Duration;

mod authority;
mod connection;
mod connector;
mod dial;
mod error;
mod pool;
mod server;
mod splice;
mod stream;

pub use authority::{AuthorityError, parse_authority};
pub use connector::{Connector, DirectConnector, Refusal};
pub use dial::{Dial, Dialing, DirectDial};
pub use error::{Error, ErrorSource};
pub use pool::Pool;
pub use server::{Server, ServerCounters};
pub use splice::splice;
pub use stream::HboneStream;

/// The port a proxy accepts HBONE on.
pub const DEFAULT_PORT: u16 = braid_model::catalog::ports::HBONE.number;

/// Bytes read from an HBONE connection's socket at once. TLS takes a few
/// KiB per read; buffering underneath turns that into one large read
/// syscall per many records.
const SOCKET_READ_BUFFER: usize = 128 * 1024;

/// The response header carrying why a tunnel was refused (on any status but
/// `200`), for operators reading client logs.
pub const REASON_HEADER: &str = "braid-refusal-reason";

/// Tuning shared by the HBONE server and client.
///
/// The defaults favour bulk throughput (large flow-control windows, 256 KiB
/// frames) over memory: a stream may have up to `stream_window` bytes in
/// flight, a connection up to `connection_window`. Windows are fixed (no
/// adaptive resizing), so throughput is predictable.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Settings {
    /// HTTP/2 flow-control window of each stream, in bytes.
    pub stream_window: u32,
    /// HTTP/2 flow-control window of each connection, in bytes.
    pub connection_window: u32,
    /// The largest HTTP/2 frame payload this side accepts, in bytes.
    pub max_frame_size: u32,
    /// Streams at once on one connection: what a server advertises, and the
    /// most a client opens on one connection before it dials another (it
    /// also respects the server's own limit).
    pub max_concurrent_streams: u32,
    /// Bounds a TLS and HTTP/2 handshake, and a `CONNECT` waiting for its
    /// response.
    pub connect_timeout: Duration,
    /// How often a client pings an established connection.
    pub keepalive_interval: Duration,
    /// How long a ping may stay unanswered before the connection is dropped.
    pub keepalive_timeout: Duration,
    /// How long a pooled connection without streams is kept.
    pub idle_timeout: Duration,
    /// How long a dial that the proxy's port refuses is retried (with
    /// backoff) before it fails. A pod that just became ambient is told to
    /// every proxy at the moment its node agent starts capturing it, so its
    /// `:15008` may refuse for a few milliseconds; retrying briefly turns
    /// that race into a short delay instead of a failed connection. Never
    /// falls back to plaintext.
    pub refused_retry: Duration,
    /// Connections a server keeps open at once; new ones beyond are closed
    /// at once (and logged), so peers cannot exhaust the proxy's file
    /// descriptors. 0: no cap.
    pub max_connections: usize,
}

// === impl Settings ===

impl Default for Settings {
    fn default() -> Self {
        Self {
            stream_window: 4 * 1024 * 1024,
            connection_window: 16 * 1024 * 1024,
            max_frame_size: 256 * 1024,
            max_concurrent_streams: 100,
            connect_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(20),
            keepalive_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            refused_retry: Duration::from_secs(1),
            max_connections: 4096,
        }
    }
}
