//! A workload's own certificate: what it presents in every handshake.

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    sign::CertifiedKey,
};

use crate::{CertificateError, SpiffeId, cert, cert::CertInfo, tls};

/// A certificate chain for one [`SpiffeId`] and its private key.
///
/// The chain is leaf first, followed by any intermediates (never the root).
/// Construction checks that the leaf names exactly one SPIFFE ID and that the
/// key belongs to it; it does not check that the chain is trusted — the peer
/// does that, against its [`TrustBundle`](crate::TrustBundle).
pub struct WorkloadCertificate {
    spiffe_id: SpiffeId,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    not_before: SystemTime,
    not_after: SystemTime,
}

// === impl WorkloadCertificate ===

impl WorkloadCertificate {
    /// Pairs `chain` (leaf first) with the leaf's private key `key`.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, CertificateError> {
        let leaf = chain
            .first()
            .ok_or_else(|| CertificateError::new("workload certificate", "the chain is empty"))?;
        let info = CertInfo::parse(leaf)
            .map_err(|reason| CertificateError::new("workload certificate", reason))?;
        let spiffe_id = info
            .spiffe_id()
            .map_err(|e| CertificateError::new("workload certificate", e.to_string()))?;
        // Loads the key the way rustls will, and compares public keys.
        CertifiedKey::from_der(chain.clone(), key.clone_key(), &tls::provider()).map_err(|e| {
            CertificateError::new(
                "workload certificate",
                format!("the private key cannot be used with the leaf certificate: {e}"),
            )
        })?;
        Ok(Self {
            spiffe_id,
            chain,
            key,
            not_before: info.not_before,
            not_after: info.not_after,
        })
    }

    /// Reads the chain (`CERTIFICATE` blocks, leaf first) and the key (one
    /// PKCS#8, SEC1 or PKCS#1 block) from PEM.
    pub fn from_pem(
        chain_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Result<Self, CertificateError> {
        let chain = cert::certs_from_pem(chain_pem.as_ref(), "the certificate chain")
            .map_err(|reason| CertificateError::new("workload certificate", reason))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_ref()).map_err(|e| {
            CertificateError::new(
                "workload private key",
                format!("expected one PEM private key block: {e}"),
            )
        })?;
        Self::new(chain, key)
    }

    /// The identity this certificate proves.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        // `new` refuses an empty chain.
        &self.chain[0]
    }

    /// The leaf's private key.
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// The start of the leaf's validity.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// The end of the leaf's validity (the same as [`Self::expires_at`]).
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// When the leaf expires; exported as a metric and used to plan renewal.
    pub fn expires_at(&self) -> SystemTime {
        self.not_after
    }

    /// The whole validity period of the leaf.
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }

    /// How long the leaf is still valid from now; zero once expired.
    pub fn remaining(&self) -> Duration {
        self.remaining_at(SystemTime::now())
    }

    /// How long the leaf is still valid from `now`; zero once expired.
    pub fn remaining_at(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or_default()
    }

    /// Whether the leaf has expired at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        now >= self.not_after
    }

    /// The middle of the validity period: the point where renewal is due
    /// (a manager adds jitter around it).
    pub fn half_life(&self) -> SystemTime {
        self.not_before + self.lifetime() / 2
    }

    /// The chain as PEM, leaf first.
    pub fn chain_pem(&self) -> String {
        cert::certs_to_pem(&self.chain)
    }
}

impl Clone for WorkloadCertificate {
    fn clone(&self) -> Self {
        Self {
            spiffe_id: self.spiffe_id.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            not_before: self.not_before,
            not_after: self.not_after,
        }
    }
}

impl fmt::Debug for WorkloadCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No chain bytes and never the key.
        f.debug_struct("WorkloadCertificate")
            .field("spiffe_id", &self.spiffe_id)
            .field("chain_len", &self.chain.len())
            .field("not_before", &cert::fmt_time(self.not_before))
            .field("not_after", &cert::fmt_time(self.not_after))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
