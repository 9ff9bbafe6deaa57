//! What can go wrong starting the CA or signing with it.

use std::path::PathBuf;

use crate::{SpiffeId, TrustDomain};

/// Why the CA could not start or could not sign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// Reading, writing or creating a file or directory failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `create`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error from the operating system.
        source: std::io::Error,
    },
    /// The root key file can be read or written by other users.
    #[error(
        "the CA key {} is accessible by group or others (mode {mode:03o}): run `chmod 600 {}`",
        path.display(), path.display()
    )]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Only one of the root certificate and key exists.
    #[error(
        "found {} but not {}: restore the missing file, or remove {} to create a new root \
         (every workload then needs new certificates)",
        present.display(), missing.display(), present.display()
    )]
    Incomplete {
        /// The file that exists.
        present: PathBuf,
        /// The file that does not.
        missing: PathBuf,
    },
    /// A CA certificate, key or chain is unusable.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being read: a path, or a description of the input.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA could not issue a certificate that verifies against its own
    /// trust bundle.
    #[error(
        "the CA cannot issue certificates that chain to its root: {0}; check that the chain \
         lists the issuers of the CA certificate, in order, up to the root"
    )]
    SelfCheck(String),
    /// The certificate signing request is unusable.
    #[error("invalid certificate signing request: {0}")]
    Csr(String),
    /// The identity is not in the CA's trust domain.
    #[error("cannot sign {id}: this CA issues identities in trust domain \"{trust_domain}\" only")]
    ForeignTrustDomain {
        /// The identity asked for.
        id: SpiffeId,
        /// The CA's trust domain.
        trust_domain: TrustDomain,
    },
    /// A certificate with no validity was asked for.
    #[error("cannot sign {id}: the lifetime must be longer than zero")]
    ZeroLifetime {
        /// The identity asked for.
        id: SpiffeId,
    },
    /// The CA certificate (or one above it) has expired.
    #[error("the CA certificate expired at {at}: replace the CA certificate")]
    Expired {
        /// When it expired (RFC 3339).
        at: String,
    },
    /// Generating a key or signing failed.
    #[error("could not {action}: {reason}")]
    Crypto {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        reason: String,
    },
}
