use rcgen::SanType;

use super::*;
use crate::testing::{self_signed, uri};

fn identity_of(sans: Vec<SanType>) -> Result<SpiffeId, IdentityError> {
    let (cert, _) = self_signed(sans);
    peer_identity(&[cert])
}

#[test]
fn exactly_one_spiffe_uri_is_the_identity() {
    let id = identity_of(vec![uri("spiffe://td/ns/a/sa/b")]).unwrap();
    assert_eq!(id.as_str(), "spiffe://td/ns/a/sa/b");
    // DNS names next to it do not matter.
    let id = identity_of(vec![
        SanType::DnsName("a.example".try_into().unwrap()),
        uri("spiffe://td/ns/a/sa/b"),
    ])
    .unwrap();
    assert_eq!(id.namespace(), "a");
}

#[test]
fn certificates_without_exactly_one_valid_identity_are_refused() {
    assert_eq!(peer_identity(&[]), Err(IdentityError::NoCertificate));
    assert_eq!(identity_of(vec![]), Err(IdentityError::NoUri));
    assert_eq!(
        identity_of(vec![SanType::DnsName("a.example".try_into().unwrap())]),
        Err(IdentityError::NoUri)
    );
    let err = identity_of(vec![
        uri("spiffe://td/ns/a/sa/b"),
        uri("spiffe://td/ns/a/sa/c"),
    ])
    .unwrap_err();
    assert!(matches!(err, IdentityError::ManyUris(ref uris) if uris.len() == 2));
    assert!(err.to_string().contains("spiffe://td/ns/a/sa/c"), "{err}");
    let err = identity_of(vec![uri("spiffe://td/ns/a/sa/b/extra")]).unwrap_err();
    assert!(matches!(err, IdentityError::Invalid(_)), "{err}");
    let err = identity_of(vec![uri("https://td/ns/a/sa/b")]).unwrap_err();
    assert!(matches!(err, IdentityError::Invalid(_)), "{err}");
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
    assert!(matches!(
        peer_identity(&[garbage]),
        Err(IdentityError::Unparseable(_))
    ));
}

#[test]
fn pem_round_trips() {
    let (a, _) = self_signed(vec![]);
    let (b, _) = self_signed(vec![]);
    let pem = certs_to_pem([&a, &b]);
    assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----\n").count(), 2);
    assert_eq!(certs_from_pem(pem.as_bytes(), "test").unwrap(), vec![a, b]);
    let err = certs_from_pem(b"nothing here", "the bundle").unwrap_err();
    assert!(err.contains("the bundle contains no certificate"), "{err}");
}
