//! Building certificates: the root, workload leaves, and the start-up probe.

use std::{borrow::Cow, time::SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use rustls::pki_types::{CertificateSigningRequestDer, UnixTime, pem::PemObject};
use x509_parser::{
    certification_request::X509CertificationRequest, oid_registry::OID_PKCS1_RSAENCRYPTION,
    prelude::FromDer,
};

use super::{CLOCK_SKEW, Ca, CaError, IssuedCert, ROOT_LIFETIME};
use crate::{CertificateRequest, SpiffeId, TrustDomain, cert::CertInfo, tls};

/// Common name of a root the CA creates itself, before a random suffix.
const ROOT_COMMON_NAME: &str = "Braid root CA";

/// A new self-signed root for `trust_domain`: (certificate PEM, key PEM).
pub(super) fn new_root(trust_domain: &TrustDomain) -> Result<(String, String), CaError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| crypto("generate the root key", e))?;
    let now = SystemTime::now();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, trust_domain.as_str());
    // A random suffix tells roots apart in logs and lets chain building
    // find the right issuer by name while two roots are trusted at once.
    let suffix: u32 = rand::random();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("{ROOT_COMMON_NAME} {suffix:08x}"),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (now - CLOCK_SKEW).into();
    params.not_after = (now + ROOT_LIFETIME).into();
    params.serial_number = Some(random_serial());
    let cert = params
        .self_signed(&key)
        .map_err(|e| crypto("sign the root certificate", e))?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl Ca {
    /// Issues a leaf for `id` valid from `not_before` to `not_after`, with no
    /// checks on the period (tests use it for expired certificates).
    pub(crate) fn sign_between(
        &self,
        csr: &[u8],
        id: &SpiffeId,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<IssuedCert, CaError> {
        if !id.is_in(&self.trust_domain) {
            return Err(CaError::ForeignTrustDomain {
                id: id.clone(),
                trust_domain: self.trust_domain.clone(),
            });
        }
        let (public_key, is_rsa) = csr_public_key(csr)?;
        let mut params = CertificateParams::default();
        // An empty subject makes rcgen mark the SAN critical, as RFC 5280 asks.
        params.distinguished_name = DistinguishedName::new();
        let uri = id
            .as_str()
            .try_into()
            .map_err(|e| crypto("encode the identity", e))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if is_rsa {
            // Only RSA key exchange needs it; TLS 1.3 has none, but older
            // verifiers expect it on RSA certificates.
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let leaf = params
            .signed_by(&public_key, &self.issuer)
            .map_err(|e| crypto("sign the certificate", e))?;
        let leaf = leaf.der().clone();
        // Read back what was encoded: X.509 keeps whole seconds only.
        let info = CertInfo::parse(&leaf).map_err(|e| crypto("read the new certificate", e))?;
        let mut chain = vec![leaf];
        chain.extend(self.chain.iter().cloned());
        Ok(IssuedCert {
            chain,
            trust_bundle: self.bundle.clone(),
            not_before: info.not_before,
            not_after: info.not_after,
        })
    }
}

/// Issues a certificate for a probe identity and verifies it against the
/// CA's own trust bundle the way a peer would.
pub(super) fn self_check(ca: &Ca) -> Result<(), CaError> {
    let probe = SpiffeId::new(ca.trust_domain.as_str(), "braid-system", "ca-self-check")
        .map_err(|e| CaError::SelfCheck(e.to_string()))?;
    let request =
        CertificateRequest::generate(&probe).map_err(|e| CaError::SelfCheck(e.to_string()))?;
    let now = SystemTime::now();
    let issued = ca.sign_between(&request.csr, &probe, now - CLOCK_SKEW, ca.not_after)?;
    tls::verify_chain(&issued.chain, &ca.bundle, UnixTime::now())
        .map_err(|e| CaError::SelfCheck(e.to_string()))
}

/// The public key of a CSR whose signature verifies, and whether it is an
/// RSA key; nothing else of the CSR is used.
fn csr_public_key(csr: &[u8]) -> Result<(SubjectPublicKeyInfo, bool), CaError> {
    let der: Cow<'_, [u8]> = if csr.trim_ascii_start().starts_with(b"-----BEGIN") {
        let der = CertificateSigningRequestDer::from_pem_slice(csr)
            .map_err(|e| CaError::Csr(format!("not a PEM CERTIFICATE REQUEST: {e}")))?;
        Cow::Owned(der.as_ref().to_vec())
    } else {
        Cow::Borrowed(csr)
    };
    let (rest, request) = X509CertificationRequest::from_der(&der)
        .map_err(|e| CaError::Csr(format!("not a PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(CaError::Csr("trailing bytes after the request".to_string()));
    }
    request.verify_signature().map_err(|e| {
        CaError::Csr(format!(
            "its signature does not verify with the key it carries ({e})"
        ))
    })?;
    let spki = &request.certification_request_info.subject_pki;
    let is_rsa = spki.algorithm.algorithm == OID_PKCS1_RSAENCRYPTION;
    let key = SubjectPublicKeyInfo::from_der(spki.raw)
        .map_err(|e| CaError::Csr(format!("unsupported public key: {e}")))?;
    Ok((key, is_rsa))
}

/// 16 bytes, 126 of them random bits: positive, no leading zero byte.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn crypto(action: &'static str, e: impl ToString) -> CaError {
    CaError::Crypto {
        action,
        reason: e.to_string(),
    }
}
