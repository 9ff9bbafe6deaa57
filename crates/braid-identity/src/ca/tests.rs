use std::{
    fs,
    os::unix::fs::PermissionsExt,
    time::{Duration, SystemTime},
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType,
};
use rustls::pki_types::UnixTime;
use x509_parser::{
    extensions::{GeneralName, ParsedExtension},
    prelude::{FromDer, X509Certificate},
};

use super::*;
use crate::{
    CertificateRequest,
    testing::{TRUST_DOMAIN, id, issue, new_ca, trust_domain},
    tls,
};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn root_is_created_private_and_reused() {
    let test = new_ca();
    let dir = test.dir.path().join("ca");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("root-key.pem")), 0o600);
    let cert_pem = fs::read(dir.join("root-cert.pem")).unwrap();
    let key_pem = fs::read(dir.join("root-key.pem")).unwrap();
    // No temporary files left behind.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);

    let again = Ca::load_or_create(&dir, &trust_domain()).unwrap();
    assert_eq!(again.certificate(), test.ca.certificate());
    assert_eq!(again.trust_bundle(), test.ca.trust_bundle());
    assert_eq!(fs::read(dir.join("root-cert.pem")).unwrap(), cert_pem);
    assert_eq!(fs::read(dir.join("root-key.pem")).unwrap(), key_pem);

    // Certificates from before the restart still verify against the bundle
    // after it, and the other way round.
    let before = issue(&test.ca, &id("shop", "api"));
    let after = issue(&again, &id("shop", "web"));
    for cert in [&before, &after] {
        tls::verify_chain(cert.chain(), again.trust_bundle(), UnixTime::now()).unwrap();
        tls::verify_chain(cert.chain(), test.ca.trust_bundle(), UnixTime::now()).unwrap();
    }
}

#[test]
fn root_certificate_is_a_long_lived_ca() {
    let test = new_ca();
    let (_, root) = X509Certificate::from_der(test.ca.certificate()).unwrap();
    assert!(root.is_ca());
    assert!(root.key_usage().unwrap().unwrap().value.key_cert_sign());
    assert_eq!(root.issuer(), root.subject());
    let lifetime = root.validity().not_after.timestamp() - root.validity().not_before.timestamp();
    assert!(lifetime > 9 * 365 * 24 * 3600, "{lifetime}");
    assert!(test.ca.trust_bundle().contains(test.ca.certificate()));
    assert_eq!(test.ca.trust_domain().as_str(), TRUST_DOMAIN);
}

#[test]
fn group_or_world_readable_key_is_refused() {
    let test = new_ca();
    let key = test.dir.path().join("ca/root-key.pem");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = Ca::load_or_create(&test.dir.path().join("ca"), &trust_domain()).unwrap_err();
    assert!(
        matches!(err, CaError::KeyPermissions { mode: 0o644, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("mode 644") && msg.contains("chmod 600"),
        "{msg}"
    );
}

#[test]
fn half_a_root_is_refused() {
    let test = new_ca();
    let dir = test.dir.path().join("ca");
    fs::remove_file(dir.join("root-cert.pem")).unwrap();
    let err = Ca::load_or_create(&dir, &trust_domain()).unwrap_err();
    assert!(matches!(err, CaError::Incomplete { .. }), "{err}");
    assert!(err.to_string().contains("root-key.pem"), "{err}");
}

#[test]
fn key_of_another_root_is_refused() {
    let one = new_ca();
    let other = new_ca();
    fs::copy(
        other.dir.path().join("ca/root-key.pem"),
        one.dir.path().join("ca/root-key.pem"),
    )
    .unwrap();
    let err = Ca::load_or_create(&one.dir.path().join("ca"), &trust_domain()).unwrap_err();
    assert!(
        err.to_string().contains("private key does not belong"),
        "{err}"
    );
}

#[test]
fn sign_ignores_what_the_csr_asks_for() {
    let test = new_ca();
    // A CSR that asks for a CA certificate, a DNS name and another identity.
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
    params.subject_alt_names.push(SanType::URI(
        "spiffe://cluster.local/ns/kube-system/sa/admin"
            .try_into()
            .unwrap(),
    ));
    params.distinguished_name.push(DnType::CommonName, "admin");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let csr = params.serialize_request(&key).unwrap();

    let wanted = id("shop", "api");
    let before = SystemTime::now();
    let issued = test
        .ca
        .sign(csr.der(), &wanted, Duration::from_secs(3600))
        .unwrap();
    assert_eq!(issued.chain.len(), 1, "a root CA adds no intermediates");
    assert_eq!(&issued.trust_bundle, test.ca.trust_bundle());

    let (_, leaf) = X509Certificate::from_der(&issued.chain[0]).unwrap();
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names,
        vec![GeneralName::URI(wanted.as_str())]
    );
    assert!(san.critical, "the subject is empty, so the SAN is critical");
    assert_eq!(leaf.subject().iter_attributes().count(), 0);
    assert!(!leaf.is_ca());
    let ku = leaf.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    // The leaf carries the CSR's key.
    assert_eq!(leaf.public_key().raw, key.subject_public_key_info());
    assert!(leaf.extensions().iter().any(|e| matches!(
        e.parsed_extension(),
        ParsedExtension::AuthorityKeyIdentifier(_)
    )));

    // Backdated for clock skew; expires after the lifetime.
    let backdate = before.duration_since(issued.not_before).unwrap();
    assert!(
        backdate >= CLOCK_SKEW - Duration::from_secs(2),
        "{backdate:?}"
    );
    let lifetime = issued.not_after.duration_since(before).unwrap();
    assert!(lifetime.abs_diff(Duration::from_secs(3600)) < Duration::from_secs(5));
}

#[test]
fn sign_takes_pem_and_refuses_a_forged_csr() {
    let test = new_ca();
    let wanted = id("shop", "api");
    let request = CertificateRequest::generate(&wanted).unwrap();
    let pem = request.csr_pem();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
    test.ca
        .sign(pem.as_bytes(), &wanted, Duration::from_secs(60))
        .unwrap();

    // Flip a bit of the signature: the requester does not hold the key.
    let mut forged = request.csr.to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let err = test
        .ca
        .sign(&forged, &wanted, Duration::from_secs(60))
        .unwrap_err();
    assert!(matches!(err, CaError::Csr(_)), "{err}");
    assert!(
        err.to_string().contains("signature does not verify"),
        "{err}"
    );

    let err = test
        .ca
        .sign(b"not a csr", &wanted, Duration::from_secs(60))
        .unwrap_err();
    assert!(matches!(err, CaError::Csr(_)), "{err}");
}

#[test]
fn sign_refuses_foreign_trust_domains_and_zero_lifetimes() {
    let test = new_ca();
    let foreign = SpiffeId::new("example.org", "shop", "api").unwrap();
    let request = CertificateRequest::generate(&foreign).unwrap();
    let err = test
        .ca
        .sign(&request.csr, &foreign, Duration::from_secs(60))
        .unwrap_err();
    assert!(matches!(err, CaError::ForeignTrustDomain { .. }), "{err}");
    assert!(err.to_string().contains("\"cluster.local\""), "{err}");

    let own = id("shop", "api");
    let err = test
        .ca
        .sign(&request.csr, &own, Duration::ZERO)
        .unwrap_err();
    assert!(matches!(err, CaError::ZeroLifetime { .. }), "{err}");
}

pub(crate) use crate::test_util::operator_pki;

#[test]
fn intermediate_issues_chains_to_the_operator_root() {
    let (root, root_pem, cert_pem, key_pem) = operator_pki("corp");
    let ca = Ca::from_intermediate(&trust_domain(), &cert_pem, &key_pem, &root_pem).unwrap();
    assert_eq!(ca.trust_bundle().roots(), [root]);

    let wanted = id("shop", "api");
    let request = CertificateRequest::generate(&wanted).unwrap();
    let issued = ca
        .sign(&request.csr, &wanted, Duration::from_secs(7 * 86400))
        .unwrap();
    assert_eq!(issued.chain.len(), 2, "leaf and intermediate");
    assert_eq!(&issued.chain[1], ca.certificate());
    tls::verify_chain(&issued.chain, &issued.trust_bundle, UnixTime::now()).unwrap();
    // The leaf does not outlive the intermediate.
    assert!(issued.not_after <= ca.expires_at());

    // The chain may start with the intermediate itself.
    let both = format!("{cert_pem}{root_pem}");
    Ca::from_intermediate(&trust_domain(), &cert_pem, &key_pem, &both).unwrap();
}

#[test]
fn broken_intermediate_setups_are_refused() {
    let (_, root_pem, cert_pem, key_pem) = operator_pki("corp");
    let (_, other_root_pem, _, other_key_pem) = operator_pki("other");
    let td = trust_domain();

    let err = Ca::from_intermediate(&td, &cert_pem, &key_pem, &other_root_pem).unwrap_err();
    assert!(matches!(err, CaError::SelfCheck(_)), "{err}");

    let err = Ca::from_intermediate(&td, &cert_pem, &other_key_pem, &root_pem).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");

    let err = Ca::from_intermediate(&td, &cert_pem, &key_pem, &cert_pem).unwrap_err();
    assert!(err.to_string().contains("end it with the root"), "{err}");

    let err = Ca::from_intermediate(&td, &cert_pem, &key_pem, "").unwrap_err();
    assert!(err.to_string().contains("no certificate"), "{err}");

    let err = Ca::from_intermediate(&td, &cert_pem, "garbage", &root_pem).unwrap_err();
    assert!(err.to_string().contains("intermediate CA key"), "{err}");
}

#[test]
fn shareable_across_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Ca>();
    assert_send_sync::<crate::WorkloadCertificate>();
    assert_send_sync::<crate::TrustBundle>();
    assert_send_sync::<CertificateRequest>();
}
