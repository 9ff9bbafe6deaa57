//! Braid's certificate authority: a root it created itself, or an
//! intermediate an operator provides, that signs short-lived workload
//! certificates.
//!
//! The CA only signs. Deciding *whether* a caller may have an identity
//! (tokens, node checks) is the certificate service's job, done before
//! [`Ca::sign`] is called.

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use rcgen::{Issuer, KeyPair};
use rustls::pki_types::CertificateDer;

use crate::{SpiffeId, TrustBundle, TrustDomain, cert::CertInfo};

mod error;
mod files;
mod issue;

pub use error::CaError;

/// How far back a new certificate's validity starts, so a peer whose clock
/// is a little behind still accepts it.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Validity of a root certificate the CA creates itself.
pub const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// A certificate authority for one trust domain.
pub struct Ca {
    trust_domain: TrustDomain,
    issuer: Issuer<'static, KeyPair>,
    /// The CA's own certificate.
    certificate: CertificateDer<'static>,
    /// Certificates between a leaf and the root: the CA's own certificate and
    /// the intermediates above it; empty when the CA is the root.
    chain: Vec<CertificateDer<'static>>,
    bundle: TrustBundle,
    /// The earliest expiry among the CA's own certificate and its chain: no
    /// leaf outlives it.
    not_after: SystemTime,
}

/// A certificate the CA issued.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// The leaf first, then the intermediates up to (not including) the root.
    pub chain: Vec<CertificateDer<'static>>,
    /// The roots a peer verifies the chain against.
    pub trust_bundle: TrustBundle,
    /// Start of the leaf's validity.
    pub not_before: SystemTime,
    /// End of the leaf's validity.
    pub not_after: SystemTime,
}

// === impl IssuedCert ===

impl IssuedCert {
    /// The chain as PEM, leaf first (what the certificate service returns).
    pub fn chain_pem(&self) -> String {
        crate::cert::certs_to_pem(&self.chain)
    }
}

// === impl Ca ===

impl Ca {
    /// The self-signed root CA kept in `dir`: `root-cert.pem` and
    /// `root-key.pem`, created on first use (the directory with mode 0700,
    /// the key with mode 0600) and reused afterwards.
    ///
    /// Refuses a key file that group or others can access, a key that does
    /// not belong to the certificate, and a directory holding only one of the
    /// two files. Two processes must not create the same directory at once.
    pub fn load_or_create(dir: &Path, trust_domain: &TrustDomain) -> Result<Self, CaError> {
        let files = files::RootFiles::in_dir(dir);
        let (cert_pem, key_pem) = match files.read()? {
            Some(pems) => pems,
            None => {
                let pems = issue::new_root(trust_domain)?;
                files.create(dir, &pems.0, &pems.1)?;
                tracing::info!(dir = %dir.display(), %trust_domain, "created a new root CA");
                pems
            }
        };
        let cert_what = files.cert.display().to_string();
        let certificate = single_cert(&cert_pem, &cert_what)?;
        let key = parse_key(&key_pem, &files.key.display().to_string())?;
        let bundle = TrustBundle::new([certificate.clone()]).map_err(|e| CaError::Invalid {
            what: cert_what.clone(),
            reason: e.to_string(),
        })?;
        Self::assemble(
            trust_domain,
            (certificate, &cert_what),
            key,
            Vec::new(),
            bundle,
        )
    }

    /// A CA signing with an operator's intermediate: its certificate and key
    /// (PEM), and `chain_pem`, the certificates above it in order, ending
    /// with the operator's self-signed root. Workloads trust that root.
    pub fn from_intermediate(
        trust_domain: &TrustDomain,
        cert_pem: &str,
        key_pem: &str,
        chain_pem: &str,
    ) -> Result<Self, CaError> {
        let cert_what = "intermediate CA certificate";
        let certificate = single_cert(cert_pem, cert_what)?;
        let key = parse_key(key_pem, "intermediate CA key")?;
        let mut above = crate::cert::certs_from_pem(chain_pem.as_bytes(), "the chain")
            .map_err(|reason| invalid("intermediate CA chain", reason))?;
        // A chain file that starts with the intermediate itself is common.
        if above.first() == Some(&certificate) {
            above.remove(0);
        }
        let Some(root) = above.pop() else {
            return Err(invalid(
                "intermediate CA chain",
                "it holds no certificate above the intermediate: end it with the root",
            ));
        };
        let root_info =
            CertInfo::parse(&root).map_err(|reason| invalid("intermediate CA chain", reason))?;
        if !root_info.self_issued {
            return Err(invalid(
                "intermediate CA chain",
                "its last certificate is not a self-signed root: end the chain with the root \
                 workloads should trust",
            ));
        }
        let bundle = TrustBundle::new([root])
            .map_err(|e| invalid("intermediate CA chain", e.to_string()))?;
        let mut chain = vec![certificate.clone()];
        chain.extend(above);
        Self::assemble(trust_domain, (certificate, cert_what), key, chain, bundle)
    }

    /// Checks the CA certificate against its key, then issues and verifies a
    /// probe certificate, so a broken setup fails at start-up rather than at
    /// the first handshake.
    fn assemble(
        trust_domain: &TrustDomain,
        (certificate, what): (CertificateDer<'static>, &str),
        key: KeyPair,
        chain: Vec<CertificateDer<'static>>,
        bundle: TrustBundle,
    ) -> Result<Self, CaError> {
        let info = CertInfo::parse(&certificate).map_err(|reason| invalid(what, reason))?;
        if !info.can_sign_certs {
            return Err(invalid(
                what,
                "it is not a CA certificate (basicConstraints CA:true and keyCertSign)",
            ));
        }
        if info.spki != rcgen::PublicKeyData::subject_public_key_info(&key) {
            return Err(invalid(what, "the private key does not belong to it"));
        }
        let mut not_after = info.not_after;
        for cert in &chain {
            let info = CertInfo::parse(cert).map_err(|reason| invalid(what, reason))?;
            not_after = not_after.min(info.not_after);
        }
        if SystemTime::now() >= not_after {
            return Err(CaError::Expired {
                at: crate::cert::fmt_time(not_after),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&certificate, key).map_err(|e| invalid(what, e))?;
        let ca = Self {
            trust_domain: trust_domain.clone(),
            issuer,
            certificate,
            chain,
            bundle,
            not_after,
        };
        issue::self_check(&ca)?;
        Ok(ca)
    }

    /// Issues a certificate for `id`, valid from [`CLOCK_SKEW`] ago until
    /// `lifetime` from now (cut short at the CA's own expiry).
    ///
    /// `csr` is a PKCS#10 request, DER or PEM. Only its public key is used,
    /// after checking the request is signed by the matching private key:
    /// whatever names or extensions it asks for are ignored, and the leaf
    /// carries exactly one URI SAN, `id`. The caller must already have
    /// decided that the requester may have `id`.
    pub fn sign(
        &self,
        csr: &[u8],
        id: &SpiffeId,
        lifetime: Duration,
    ) -> Result<IssuedCert, CaError> {
        if lifetime.is_zero() {
            return Err(CaError::ZeroLifetime { id: id.clone() });
        }
        let now = SystemTime::now();
        if now >= self.not_after {
            return Err(CaError::Expired {
                at: crate::cert::fmt_time(self.not_after),
            });
        }
        let not_after = (now + lifetime).min(self.not_after);
        self.sign_between(csr, id, now - CLOCK_SKEW, not_after)
    }

    /// The roots workloads trust for this CA's certificates.
    pub fn trust_bundle(&self) -> &TrustBundle {
        &self.bundle
    }

    /// The trust domain the CA issues identities in.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The CA's own certificate (the root, or the operator's intermediate).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// When the CA can no longer issue: the earliest expiry of its own
    /// certificate and the chain above it.
    pub fn expires_at(&self) -> SystemTime {
        self.not_after
    }
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain)
            .field("chain_len", &self.chain.len())
            .field("expires_at", &crate::cert::fmt_time(self.not_after))
            .finish_non_exhaustive()
    }
}

fn single_cert(pem: &str, what: &str) -> Result<CertificateDer<'static>, CaError> {
    let mut certs = crate::cert::certs_from_pem(pem.as_bytes(), what)
        .map_err(|reason| invalid(what, reason))?;
    if certs.len() != 1 {
        return Err(invalid(
            what,
            format!("expected one certificate, found {}", certs.len()),
        ));
    }
    Ok(certs.remove(0))
}

fn parse_key(pem: &str, what: &str) -> Result<KeyPair, CaError> {
    KeyPair::from_pem(pem).map_err(|e| {
        invalid(
            what,
            format!("{e}: expected an unencrypted PKCS#8, SEC1 or PKCS#1 private key in PEM"),
        )
    })
}

fn invalid(what: &str, reason: impl ToString) -> CaError {
    CaError::Invalid {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
