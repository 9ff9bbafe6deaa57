//! Helpers shared by the unit tests: CAs in temporary directories and
//! certificates issued from them.

use std::time::{Duration, SystemTime};

use tempfile::TempDir;

use crate::{Ca, CertificateRequest, SpiffeId, TrustDomain, WorkloadCertificate};

pub(crate) const TRUST_DOMAIN: &str = "cluster.local";

/// A root CA kept in a temporary directory, removed on drop.
pub(crate) struct TestCa {
    pub(crate) ca: Ca,
    pub(crate) dir: TempDir,
}

pub(crate) fn trust_domain() -> TrustDomain {
    TRUST_DOMAIN.parse().expect("valid trust domain")
}

pub(crate) fn id(namespace: &str, service_account: &str) -> SpiffeId {
    SpiffeId::new(TRUST_DOMAIN, namespace, service_account).expect("valid identity")
}

/// A new root CA for [`TRUST_DOMAIN`].
pub(crate) fn new_ca() -> TestCa {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = Ca::load_or_create(&dir.path().join("ca"), &trust_domain()).expect("new CA");
    TestCa { ca, dir }
}

/// A certificate for `id`, valid for an hour.
pub(crate) fn issue(ca: &Ca, id: &SpiffeId) -> WorkloadCertificate {
    let request = CertificateRequest::generate(id).expect("CSR");
    let issued = ca
        .sign(&request.csr, id, Duration::from_secs(3600))
        .expect("signed");
    request.into_certificate(issued.chain).expect("certificate")
}

/// A certificate for `id` that expired a minute ago.
pub(crate) fn issue_expired(ca: &Ca, id: &SpiffeId) -> WorkloadCertificate {
    let request = CertificateRequest::generate(id).expect("CSR");
    let now = SystemTime::now();
    let issued = ca
        .sign_between(
            &request.csr,
            id,
            now - Duration::from_secs(7200),
            now - Duration::from_secs(60),
        )
        .expect("signed");
    request.into_certificate(issued.chain).expect("certificate")
}

/// A self-signed leaf with exactly `sans`, and its key: for checks that do
/// not look at the chain.
pub(crate) fn self_signed(
    sans: Vec<rcgen::SanType>,
) -> (
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = sans;
    let cert = params.self_signed(&key).expect("certificate");
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
    (cert.der().clone(), key.into())
}

/// A URI SAN.
pub(crate) fn uri(value: &str) -> rcgen::SanType {
    rcgen::SanType::URI(value.try_into().expect("IA5 string"))
}
