//! What can go wrong opening a tunnel, and what the caller can do about it.

use std::{io, net::SocketAddr, time::Duration};

use braid_identity::{SpiffeId, tls::IdentityMismatch, tls::TlsError};
use http::StatusCode;

/// Why [`Pool::connect`](super::Pool::connect) could not open a tunnel.
///
/// No byte of the caller's data has been sent when this is returned;
/// [`Error::is_retry_safe`] says whether trying again (possibly through
/// another proxy) can help, [`Error::source_side`] which side failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The source certificate or trust bundle could not be made into a TLS
    /// configuration.
    #[error("could not build the TLS client configuration for {source_id}: {source}")]
    Tls {
        /// The identity the tunnel would have been opened as.
        source_id: SpiffeId,
        /// Why.
        source: TlsError,
    },
    /// The TCP connection to the proxy failed.
    #[error("could not connect to the HBONE proxy {proxy}: {source}")]
    Connect {
        /// The proxy's address.
        proxy: SocketAddr,
        /// The socket error.
        source: io::Error,
    },
    /// The proxy presented another identity than the expected one.
    #[error(
        "refused the HBONE proxy {proxy}: {mismatch}; check the destination's identity in \
         the configuration, or whether {proxy} is the right proxy"
    )]
    WrongIdentity {
        /// The proxy's address.
        proxy: SocketAddr,
        /// Both identities: expected and presented.
        mismatch: IdentityMismatch,
    },
    /// The TLS handshake failed for another reason: an untrusted chain,
    /// or the proxy refused this side's certificate.
    #[error("the TLS handshake with the HBONE proxy {proxy} failed: {source}")]
    Handshake {
        /// The proxy's address.
        proxy: SocketAddr,
        /// The TLS error, as tokio-rustls reports it.
        source: io::Error,
    },
    /// The proxy did not answer in time.
    #[error("timed out after {after:?} {during} the HBONE proxy {proxy}")]
    Timeout {
        /// The proxy's address.
        proxy: SocketAddr,
        /// What was going on: `connecting to` or `waiting for a CONNECT response from`.
        during: &'static str,
        /// The limit that passed.
        after: Duration,
    },
    /// The HTTP/2 connection or stream failed before the tunnel opened.
    #[error("HTTP/2 with the HBONE proxy {proxy} failed: {source}")]
    Http2 {
        /// The proxy's address.
        proxy: SocketAddr,
        /// The HTTP/2 error.
        source: h2::Error,
    },
    /// The proxy answered the `CONNECT` with an error status.
    #[error(
        "the HBONE proxy {proxy} refused the tunnel to {target} with {status}{}",
        reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
    )]
    Refused {
        /// The proxy's address.
        proxy: SocketAddr,
        /// The target of the `CONNECT`.
        target: SocketAddr,
        /// The response status.
        status: StatusCode,
        /// The proxy's explanation, from the reason header.
        reason: Option<String>,
    },
}

/// Which side of the proxy an error comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorSource {
    /// The peer this proxy connects to (an HBONE proxy or a target).
    Upstream,
    /// The peer that connected to this proxy.
    Downstream,
    /// This proxy's own configuration or state.
    Internal,
}

// === impl Error ===

impl Error {
    /// Which side failed.
    pub fn source_side(&self) -> ErrorSource {
        match self {
            Error::Tls { .. } => ErrorSource::Internal,
            _ => ErrorSource::Upstream,
        }
    }

    /// Whether trying again can succeed without risk: nothing reached the
    /// target, and the failure is not one that repeats by construction
    /// (configuration, identity, policy, a malformed request).
    pub fn is_retry_safe(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } | Error::Http2 { .. } => true,
            Error::Refused { status, .. } => matches!(
                *status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ),
            Error::Tls { .. } | Error::WrongIdentity { .. } | Error::Handshake { .. } => false,
        }
    }

    /// The HTTP status the proxy answered with, for [`Error::Refused`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Classifies a failure of the TLS handshake or of the first HTTP/2
    /// exchange (TLS 1.3 reports a refused client certificate only then).
    pub(crate) fn handshake(proxy: SocketAddr, source: io::Error) -> Self {
        match IdentityMismatch::in_io_error(&source) {
            Some(mismatch) => Error::WrongIdentity {
                proxy,
                mismatch: mismatch.clone(),
            },
            None => Error::Handshake { proxy, source },
        }
    }
}
