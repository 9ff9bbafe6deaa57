//! Why the manager has no valid certificate to hand out.

use crate::{CertificateError, SpiffeId};

use super::SourceError;

/// Why [`CertificateManager::fetch`](super::CertificateManager::fetch) has
/// no valid certificate for an identity.
///
/// While a certificate is still valid, failures to renew it are not returned
/// from `fetch`: they show in
/// [`CertificateManager::status`](super::CertificateManager::status).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The source did not issue a certificate.
    #[error("no valid certificate for {id}: {source}")]
    Source {
        /// The identity.
        id: SpiffeId,
        /// What the source said.
        source: SourceError,
    },
    /// The source issued a certificate the manager cannot use.
    #[error(
        "no valid certificate for {id}: the certificate authority issued an unusable one: {reason}"
    )]
    Invalid {
        /// The identity.
        id: SpiffeId,
        /// What is wrong with it.
        reason: String,
    },
    /// The manager could not create a key and signing request.
    #[error("no valid certificate for {id}: {source}")]
    Request {
        /// The identity.
        id: SpiffeId,
        /// What failed.
        source: CertificateError,
    },
    /// The identity was forgotten, or the manager shut down, while waiting.
    #[error(
        "no certificate for {id}: the certificate manager stopped managing it (forgotten or shut \
         down)"
    )]
    Stopped {
        /// The identity.
        id: SpiffeId,
    },
}

// === impl FetchError ===

impl FetchError {
    /// The identity the error is about.
    pub fn id(&self) -> &SpiffeId {
        match self {
            Self::Source { id, .. }
            | Self::Invalid { id, .. }
            | Self::Request { id, .. }
            | Self::Stopped { id } => id,
        }
    }

    /// Whether asking again after a short backoff may succeed: an
    /// unavailable source or a failed key generation, not a refusal or an
    /// unusable certificate.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Source { source, .. } => source.is_retryable(),
            Self::Request { .. } => true,
            Self::Invalid { .. } | Self::Stopped { .. } => false,
        }
    }
}
