//! The set of root certificates a workload trusts.

use std::sync::Arc;

use rustls::{RootCertStore, pki_types::CertificateDer};

use crate::cert::{self, CertInfo};

/// The root certificates whose descendants are trusted: usually one, two
/// while a root is being rotated (certificates from the old and the new root
/// are both accepted until every workload has a certificate from the new one).
///
/// Every root is a CA certificate; duplicates are dropped, order is kept.
#[derive(Clone, Debug)]
pub struct TrustBundle {
    roots: Vec<CertificateDer<'static>>,
    /// The same roots, parsed once for webpki.
    store: Arc<RootCertStore>,
}

/// Why certificates or keys could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct CertificateError {
    what: &'static str,
    reason: String,
}

// === impl TrustBundle ===

impl TrustBundle {
    /// A bundle of `roots` (DER), each of which must be a CA certificate.
    pub fn new(
        roots: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<Self, CertificateError> {
        let mut unique: Vec<CertificateDer<'static>> = Vec::new();
        for root in roots {
            if !unique.contains(&root) {
                unique.push(root);
            }
        }
        if unique.is_empty() {
            return Err(CertificateError::new(
                "trust bundle",
                "it holds no root certificate",
            ));
        }
        let mut store = RootCertStore::empty();
        for (i, root) in unique.iter().enumerate() {
            let info = CertInfo::parse(root).map_err(|reason| {
                CertificateError::new("trust bundle", format!("root certificate {i}: {reason}"))
            })?;
            if !info.can_sign_certs {
                return Err(CertificateError::new(
                    "trust bundle",
                    format!(
                        "root certificate {i} is not a CA certificate (basicConstraints CA:true \
                         and keyCertSign): a trust bundle holds CA certificates only"
                    ),
                ));
            }
            store.add(root.clone()).map_err(|e| {
                CertificateError::new("trust bundle", format!("root certificate {i}: {e}"))
            })?;
        }
        Ok(Self {
            roots: unique,
            store: Arc::new(store),
        })
    }

    /// Reads every `CERTIFICATE` block of `pem` as a root.
    pub fn from_pem(pem: impl AsRef<[u8]>) -> Result<Self, CertificateError> {
        let roots = cert::certs_from_pem(pem.as_ref(), "the input")
            .map_err(|reason| CertificateError::new("trust bundle", reason))?;
        Self::new(roots)
    }

    /// The roots, DER encoded, in the order they were given.
    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    /// The roots as PEM, one `CERTIFICATE` block each.
    pub fn to_pem(&self) -> String {
        cert::certs_to_pem(&self.roots)
    }

    /// Whether `root` is one of the roots.
    pub fn contains(&self, root: &CertificateDer<'_>) -> bool {
        self.roots.iter().any(|r| r.as_ref() == root.as_ref())
    }

    /// The roots of both bundles (this one's first): what to trust while
    /// rotating from `self` to `other`.
    pub fn merge(&self, other: &TrustBundle) -> TrustBundle {
        let mut roots = self.roots.clone();
        let mut store = (*self.store).clone();
        for root in &other.roots {
            if !self.contains(root) {
                roots.push(root.clone());
                // Already parsed once when `other` was built.
                let _ = store.add(root.clone());
            }
        }
        Self {
            roots,
            store: Arc::new(store),
        }
    }

    /// The roots as webpki trust anchors.
    pub(crate) fn root_store(&self) -> Arc<RootCertStore> {
        self.store.clone()
    }
}

impl PartialEq for TrustBundle {
    fn eq(&self, other: &Self) -> bool {
        self.roots == other.roots
    }
}

impl Eq for TrustBundle {}

// === impl CertificateError ===

impl CertificateError {
    pub(crate) fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self {
            what,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests;
