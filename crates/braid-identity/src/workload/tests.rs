use std::time::Duration;

use super::*;
use crate::{
    CertificateRequest,
    testing::{id, issue, new_ca, self_signed, uri},
};

#[test]
fn issued_certificate_carries_identity_chain_and_validity() {
    let test = new_ca();
    let api = id("shop", "api");
    let cert = issue(&test.ca, &api);
    assert_eq!(cert.spiffe_id(), &api);
    assert_eq!(cert.chain().len(), 1);
    assert_eq!(cert.leaf(), &cert.chain()[0]);
    assert_eq!(cert.expires_at(), cert.not_after());
    // An hour, backdated by the clock-skew allowance.
    let lifetime = cert.lifetime();
    assert!(lifetime >= Duration::from_secs(3600) + crate::ca::CLOCK_SKEW - Duration::from_secs(2));
    let remaining = cert.remaining();
    assert!(remaining > Duration::from_secs(3590) && remaining <= Duration::from_secs(3600));
    assert!(cert.half_life() > cert.not_before() && cert.half_life() < cert.not_after());
    assert!(!cert.is_expired_at(SystemTime::now()));
    assert!(cert.is_expired_at(cert.not_after()));
    assert_eq!(
        cert.remaining_at(cert.not_after() + Duration::from_secs(1)),
        Duration::ZERO
    );
}

#[test]
fn pem_round_trips_and_debug_hides_the_key() {
    let test = new_ca();
    let api = id("shop", "api");
    let request = CertificateRequest::generate(&api).unwrap();
    let issued = test
        .ca
        .sign(&request.csr, &api, Duration::from_secs(600))
        .unwrap();
    let PrivateKeyDer::Pkcs8(key) = &request.private_key else {
        panic!("PKCS#8 key expected");
    };
    let key_pem = cert::pem_block("PRIVATE KEY", key.secret_pkcs8_der());
    let cert = WorkloadCertificate::from_pem(cert::certs_to_pem(&issued.chain), &key_pem).unwrap();
    assert_eq!(cert.spiffe_id(), &api);
    assert_eq!(cert.chain(), &issued.chain[..]);
    assert_eq!(cert.chain_pem(), cert::certs_to_pem(&issued.chain));
    let debug = format!("{cert:?}");
    assert!(
        debug.contains("spiffe://cluster.local/ns/shop/sa/api"),
        "{debug}"
    );
    assert!(!debug.contains("key"), "{debug}");
}

#[test]
fn key_must_belong_to_the_leaf() {
    let test = new_ca();
    let api = id("shop", "api");
    let issued_for = CertificateRequest::generate(&api).unwrap();
    let issued = test
        .ca
        .sign(&issued_for.csr, &api, Duration::from_secs(600))
        .unwrap();
    let other = CertificateRequest::generate(&api).unwrap();
    let err = other.into_certificate(issued.chain).unwrap_err();
    assert!(
        err.to_string().contains("private key cannot be used"),
        "{err}"
    );
}

#[test]
fn leaf_must_name_one_identity() {
    let (cert, key) = self_signed(vec![]);
    let err = WorkloadCertificate::new(vec![cert], key).unwrap_err();
    assert!(
        err.to_string().contains("no URI subject alternative name"),
        "{err}"
    );
    let (cert, key) = self_signed(vec![uri("spiffe://td/ns/a/sa/b")]);
    WorkloadCertificate::new(vec![cert], key).unwrap();
    let (_, key) = self_signed(vec![]);
    let err = WorkloadCertificate::new(vec![], key).unwrap_err();
    assert!(err.to_string().contains("chain is empty"), "{err}");
}
