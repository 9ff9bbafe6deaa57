use super::*;
use crate::testing::{new_ca, self_signed};

#[test]
fn holds_several_roots_from_pem() {
    let (a, b) = (new_ca(), new_ca());
    let pem = format!(
        "{}{}",
        a.ca.trust_bundle().to_pem(),
        b.ca.trust_bundle().to_pem()
    );
    let bundle = TrustBundle::from_pem(&pem).unwrap();
    assert_eq!(bundle.roots().len(), 2);
    assert!(bundle.contains(a.ca.certificate()) && bundle.contains(b.ca.certificate()));
    assert_eq!(TrustBundle::from_pem(bundle.to_pem()).unwrap(), bundle);
    assert_eq!(bundle, a.ca.trust_bundle().merge(b.ca.trust_bundle()));
}

#[test]
fn drops_duplicates() {
    let a = new_ca();
    let root = a.ca.certificate().clone();
    let bundle = TrustBundle::new([root.clone(), root]).unwrap();
    assert_eq!(bundle.roots().len(), 1);
    assert_eq!(bundle.merge(&bundle.clone()).roots().len(), 1);
}

#[test]
fn refuses_empty_bundles_and_leaves() {
    let err = TrustBundle::new([]).unwrap_err();
    assert!(err.to_string().contains("no root certificate"), "{err}");
    let err = TrustBundle::from_pem("").unwrap_err();
    assert!(err.to_string().starts_with("invalid trust bundle"), "{err}");
    let (leaf, _) = self_signed(vec![]);
    let err = TrustBundle::new([leaf]).unwrap_err();
    assert!(err.to_string().contains("not a CA certificate"), "{err}");
}
