//! Where the manager gets certificates from: a trait the caller implements,
//! so the manager itself does no network I/O.

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};

use crate::{Ca, IssuedCert, SpiffeId, TrustBundle, ca::CaError};

/// The future [`CertificateSource::sign`] returns.
pub type SignFuture<'a> =
    Pin<Box<dyn Future<Output = Result<IssuedChain, SourceError>> + Send + 'a>>;

/// Something that signs certificate requests: the control plane's
/// certificate service over gRPC, or a [`LocalCa`] in the same process.
///
/// The future is boxed so a manager can hold any source as
/// `Arc<dyn CertificateSource>`.
pub trait CertificateSource: Send + Sync + 'static {
    /// Asks for a certificate for `id` whose key is the one `csr` is signed
    /// with. Returns the chain (leaf first) and the roots that currently
    /// verify it.
    fn sign(&self, csr: CertificateSigningRequestDer<'static>, id: SpiffeId) -> SignFuture<'_>;
}

/// What a [`CertificateSource`] issued.
#[derive(Clone, Debug)]
pub struct IssuedChain {
    /// The leaf first, then any intermediates up to (not including) the root.
    pub chain: Vec<CertificateDer<'static>>,
    /// The roots peers verify chains against. During a root rotation it
    /// holds both roots; the manager always exposes the newest bundle it
    /// received.
    pub trust_bundle: TrustBundle,
}

/// Why a [`CertificateSource`] did not issue a certificate, and so whether
/// asking again soon makes sense.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The CA decided not to issue: the caller may not have the identity,
    /// or the request is unusable. Asking again soon gets the same answer,
    /// so the manager waits its longest backoff before retrying.
    #[error("the certificate authority refused to sign for {id}: {reason}")]
    Refused {
        /// The identity asked for.
        id: SpiffeId,
        /// Why, as the CA said it.
        reason: String,
    },
    /// The CA could not be reached or failed to answer; retrying may work.
    #[error("the certificate authority is unavailable: {reason}")]
    Unavailable {
        /// What went wrong.
        reason: String,
    },
}

/// A [`CertificateSource`] that signs with a [`Ca`] in the same process:
/// how the control plane gets its own serving certificate, and how tests
/// issue certificates without a server.
#[derive(Clone)]
pub struct LocalCa {
    ca: Arc<Ca>,
    lifetime: Duration,
}

// === impl SourceError ===

impl SourceError {
    /// The CA refused to sign for `id`, for `reason`.
    pub fn refused(id: &SpiffeId, reason: impl Into<String>) -> Self {
        Self::Refused {
            id: id.clone(),
            reason: reason.into(),
        }
    }

    /// The CA is unavailable, for `reason`.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable {
            reason: reason.into(),
        }
    }

    /// Whether retrying after a short backoff may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

// === impl IssuedChain ===

impl IssuedChain {
    /// Reads a chain (leaf first) and a trust bundle as a remote CA sends
    /// them, in PEM.
    pub fn from_pem(
        chain_pem: &str,
        trust_bundle_pem: &str,
    ) -> Result<Self, crate::CertificateError> {
        let chain = crate::cert::certs_from_pem(chain_pem.as_bytes(), "the certificate chain")
            .map_err(|reason| crate::CertificateError::new("issued certificate chain", reason))?;
        Ok(Self {
            chain,
            trust_bundle: TrustBundle::from_pem(trust_bundle_pem)?,
        })
    }
}

impl From<IssuedCert> for IssuedChain {
    fn from(issued: IssuedCert) -> Self {
        Self {
            chain: issued.chain,
            trust_bundle: issued.trust_bundle,
        }
    }
}

// === impl LocalCa ===

impl LocalCa {
    /// Signs with `ca`, issuing certificates valid for `lifetime`.
    pub fn new(ca: Arc<Ca>, lifetime: Duration) -> Self {
        Self { ca, lifetime }
    }

    /// The CA signing the certificates.
    pub fn ca(&self) -> &Arc<Ca> {
        &self.ca
    }
}

impl CertificateSource for LocalCa {
    fn sign(&self, csr: CertificateSigningRequestDer<'static>, id: SpiffeId) -> SignFuture<'_> {
        Box::pin(async move {
            match self.ca.sign(&csr, &id, self.lifetime) {
                Ok(issued) => Ok(issued.into()),
                // Local failures to generate or sign may be transient;
                // everything else needs the request or the CA changed.
                Err(e @ (CaError::Crypto { .. } | CaError::Io { .. })) => {
                    Err(SourceError::unavailable(e.to_string()))
                }
                Err(e) => Err(SourceError::refused(&id, e.to_string())),
            }
        })
    }
}

impl fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCa")
            .field("ca", &self.ca)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}
