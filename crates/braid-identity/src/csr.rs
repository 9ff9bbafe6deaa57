//! The workload side of issuance: a fresh key and a request for a certificate.

use std::fmt;

use rcgen::{CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};
use rustls::pki_types::{
    CertificateDer, CertificateSigningRequestDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};

use crate::{CertificateError, SpiffeId, WorkloadCertificate, cert};

/// A new ECDSA P-256 private key and a PKCS#10 certificate signing request
/// for it, naming the identity it asks for.
///
/// The key never leaves the workload; the CSR goes to the CA, which decides
/// the identity itself and ignores what the CSR asks for (the SAN in it only
/// helps a human reading it). Combine the issued chain with the key using
/// [`CertificateRequest::into_certificate`].
pub struct CertificateRequest {
    /// The CSR, DER encoded.
    pub csr: CertificateSigningRequestDer<'static>,
    /// The private key the CSR is signed with, PKCS#8.
    pub private_key: PrivateKeyDer<'static>,
}

// === impl CertificateRequest ===

impl CertificateRequest {
    /// Generates a key and a CSR carrying `id` as its URI SAN.
    pub fn generate(id: &SpiffeId) -> Result<Self, CertificateError> {
        let fail = |e: rcgen::Error| {
            CertificateError::new("certificate request", format!("could not generate it: {e}"))
        };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(fail)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(id.as_str().try_into().map_err(fail)?)];
        let csr = params.serialize_request(&key).map_err(fail)?;
        Ok(Self {
            csr: csr.der().clone(),
            private_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// The CSR as PEM (`CERTIFICATE REQUEST`).
    pub fn csr_pem(&self) -> String {
        cert::pem_block("CERTIFICATE REQUEST", &self.csr)
    }

    /// The workload certificate made of the chain the CA issued for this
    /// request (leaf first) and this request's key.
    pub fn into_certificate(
        self,
        chain: Vec<CertificateDer<'static>>,
    ) -> Result<WorkloadCertificate, CertificateError> {
        WorkloadCertificate::new(chain, self.private_key)
    }
}

impl fmt::Debug for CertificateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateRequest")
            .field("csr_len", &self.csr.len())
            .finish_non_exhaustive()
    }
}
