//! Workload identity for the Braid mesh: SPIFFE IDs, the certificate
//! authority that issues them, and the rustls configurations that prove them
//! on every connection.
//!
//! * [`SpiffeId`] — `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`,
//!   strictly parsed; [`TrustDomain`] its first part.
//! * [`ca::Ca`] — a root created (and kept) in a directory, or an operator's
//!   intermediate; signs a CSR for an identity the caller has already
//!   authorized. [`CertificateRequest`] is the workload side: a fresh key and
//!   a CSR.
//! * [`WorkloadCertificate`] — a chain and key for one identity, with its
//!   validity; [`TrustBundle`] — the roots a workload trusts (more than one
//!   during a root rotation).
//! * [`tls`] — TLS 1.3 server and client configurations (aws-lc-rs, ALPN
//!   `h2`): the client requires the server to be the expected identity, the
//!   server requires a client certificate from the bundle and hands the
//!   client's identity to authorization via [`tls::peer_identity`].
//!
//! * [`manager`] — the [`CertificateManager`]: fetches a certificate per
//!   identity on first use, caches it, renews it at half-life with jitter and
//!   backs off when the CA fails, from a [`CertificateSource`] the caller
//!   provides.
//!
//! What this crate is not: it does no networking and knows nothing of the
//! control plane. The gRPC certificate service (authenticating callers and
//! deciding which identities they may have) and its client, which implements
//! [`CertificateSource`], live elsewhere and build on these types. This is
//! the only crate that uses rustls directly.

mod bundle;
pub mod ca;
mod cert;
mod csr;
pub mod manager;
mod spiffe;
pub mod tls;
mod workload;

#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
#[cfg(test)]
mod testing;

pub use bundle::{CertificateError, TrustBundle};
pub use ca::{Ca, IssuedCert};
pub use cert::{IdentityError, peer_identity};
pub use csr::CertificateRequest;
pub use manager::{
    CertStatus, CertificateManager, CertificateSource, FetchError, IssuedChain, LocalCa,
    ManagerConfig, SignFuture, SourceError,
};
/// rustls itself, so callers name its types (`pki_types`, configs) without
/// depending on it directly: this crate is the one that uses rustls.
pub use rustls;
pub use spiffe::{Problem, SpiffeId, SpiffeIdError, TrustDomain, TrustDomainError};
pub use workload::WorkloadCertificate;
