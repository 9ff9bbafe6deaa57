//! PKI for tests of callers: an operator's own root and an intermediate CA
//! below it, as an operator would hand to `braid-control --ca-cert`.
//! Compiled only for tests and with the `test-util` feature.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::CertificateDer;

/// An operator's root and an intermediate below it that expires in a day:
/// (root DER, root PEM, intermediate PEM, intermediate key PEM).
///
/// # Panics
///
/// If key generation or signing fails, which only a broken crypto provider
/// causes; this is test code.
#[allow(clippy::unwrap_used)]
pub fn operator_pki(name: &str) -> (CertificateDer<'static>, String, String, String) {
    let ca_params = |cn: &str, lifetime: Duration| {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = (SystemTime::now() - Duration::from_secs(3600)).into();
        params.not_after = (SystemTime::now() + lifetime).into();
        params
    };
    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let root_params = ca_params(&format!("{name} root"), Duration::from_secs(86400 * 365));
    let root = root_params.self_signed(&root_key).unwrap();
    let issuer = rcgen::Issuer::new(root_params, root_key);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let intermediate = ca_params(&format!("{name} intermediate"), Duration::from_secs(86400))
        .signed_by(&key, &issuer)
        .unwrap();
    (
        root.der().clone(),
        root.pem(),
        intermediate.pem(),
        key.serialize_pem(),
    )
}
