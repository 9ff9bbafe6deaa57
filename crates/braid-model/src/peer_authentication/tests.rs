//! Table-driven tests of the precedence rules.

use super::*;
use MtlsMode::{Permissive, Strict};

const ROOT: &str = DEFAULT_ROOT_NAMESPACE;

fn pa(
    namespace: &str,
    name: &str,
    selector: Option<&[(&str, &str)]>,
    mode: MtlsMode,
) -> PeerAuthentication {
    PeerAuthentication {
        name: name.into(),
        namespace: namespace.into(),
        selector: selector.map(|s| {
            s.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
        mode,
    }
}

/// The winning policy's name for an `app: web` workload in `shop`.
fn winner(policies: &[PeerAuthentication]) -> Option<&str> {
    let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
    effective_peer_authentication(policies, "shop", &labels, ROOT).map(|p| p.name.as_str())
}

#[test]
fn precedence() {
    let web: &[(&str, &str)] = &[("app", "web")];
    let db: &[(&str, &str)] = &[("app", "db")];
    let cases: Vec<(&str, Vec<PeerAuthentication>, Option<&str>)> = vec![
        ("nothing applies", vec![], None),
        (
            "mesh-wide",
            vec![pa(ROOT, "mesh", None, Strict)],
            Some("mesh"),
        ),
        (
            "namespace beats mesh",
            vec![
                pa(ROOT, "mesh", None, Strict),
                pa("shop", "ns", None, Permissive),
            ],
            Some("ns"),
        ),
        (
            "workload beats namespace and mesh",
            vec![
                pa(ROOT, "a-mesh", None, Permissive),
                pa("shop", "b-ns", None, Permissive),
                pa("shop", "z-web", Some(web), Strict),
            ],
            Some("z-web"),
        ),
        (
            "a non-matching selector does not apply",
            vec![
                pa("shop", "ns", None, Strict),
                pa("shop", "db", Some(db), Permissive),
            ],
            Some("ns"),
        ),
        (
            "an empty selector is namespace-wide",
            vec![
                pa(ROOT, "mesh", None, Strict),
                pa("shop", "ns", Some(&[]), Permissive),
            ],
            Some("ns"),
        ),
        (
            "other namespaces do not apply",
            vec![
                pa("legacy", "ns", None, Strict),
                pa("legacy", "web", Some(web), Strict),
            ],
            None,
        ),
        (
            "a selector in the root namespace is not mesh-wide",
            vec![pa(ROOT, "web", Some(web), Strict)],
            None,
        ),
        (
            "first name wins among namespace-wide",
            vec![
                pa("shop", "b", None, Strict),
                pa("shop", "a", None, Permissive),
            ],
            Some("a"),
        ),
        (
            "first name wins among selected",
            vec![
                pa("shop", "web-2", Some(web), Strict),
                pa("shop", "web-1", Some(web), Permissive),
            ],
            Some("web-1"),
        ),
        (
            "first name wins among mesh-wide",
            vec![
                pa(ROOT, "mesh-b", None, Strict),
                pa(ROOT, "mesh-a", None, Permissive),
            ],
            Some("mesh-a"),
        ),
    ];
    for (what, policies, expected) in cases {
        assert_eq!(winner(&policies), expected, "{what}");
        // Order of the input never matters.
        let reversed: Vec<_> = policies.iter().rev().cloned().collect();
        assert_eq!(winner(&reversed), expected, "{what} (reversed)");
    }
}

#[test]
fn mode_defaults_to_permissive_and_follows_the_winner() {
    let labels = BTreeMap::new();
    let mode = |policies: &[PeerAuthentication], ns: &str| {
        effective_mtls_mode(policies, ns, &labels, ROOT)
    };
    assert_eq!(mode(&[], "shop"), Permissive);
    let mesh_strict = [pa(ROOT, "mesh", None, Strict)];
    assert_eq!(mode(&mesh_strict, "shop"), Strict);
    assert_eq!(
        mode(&mesh_strict, ROOT),
        Strict,
        "the root namespace itself"
    );
    let opt_out = [
        pa(ROOT, "mesh", None, Strict),
        pa("legacy", "ns", None, Permissive),
    ];
    assert_eq!(mode(&opt_out, "legacy"), Permissive);
    assert_eq!(mode(&opt_out, "shop"), Strict);
}

#[test]
fn root_namespace_is_a_parameter() {
    let labels = BTreeMap::new();
    let policies = [pa("mesh-config", "mesh", None, Strict)];
    assert_eq!(
        effective_mtls_mode(&policies, "shop", &labels, "mesh-config"),
        Strict
    );
    assert_eq!(
        effective_mtls_mode(&policies, "shop", &labels, ROOT),
        Permissive
    );
}

#[test]
fn plaintext_only_when_permissive() {
    assert!(Permissive.allows_plaintext());
    assert!(!Strict.allows_plaintext());
}
