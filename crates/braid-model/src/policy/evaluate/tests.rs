//! Table-driven tests of [`authorize`], one table per clause.

use std::collections::BTreeMap;

use super::*;

const WEB: &str = "spiffe://cluster.local/ns/shop/sa/web";
const LEGACY: &str = "spiffe://cluster.local/ns/legacy/sa/default";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn policy(
    namespace: &str,
    name: &str,
    selector: Option<&[(&str, &str)]>,
    action: Action,
    rules: Vec<Rule>,
) -> AuthorizationPolicy {
    AuthorizationPolicy {
        name: name.into(),
        namespace: namespace.into(),
        selector: selector.map(labels),
        action,
        rules,
    }
}

fn from_principals(principals: &[&str]) -> Rule {
    Rule {
        source_principals: principals.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }
}

fn from_namespaces(namespaces: &[&str]) -> Rule {
    Rule {
        source_namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    }
}

fn to_ports(ports: &[u16]) -> Rule {
    Rule {
        destination_ports: ports.to_vec(),
        ..Default::default()
    }
}

/// Decides a connection from `principal` (`None`: plaintext) to port
/// `port` of a `shop` workload labelled `app: web`.
fn decide<'p>(
    policies: &'p [AuthorizationPolicy],
    principal: Option<&str>,
    port: u16,
) -> Decision<'p> {
    let workload_labels = labels(&[("app", "web"), ("tier", "front")]);
    let conn = ConnectionAttrs {
        source: principal.map(|p| Peer::from_spiffe_id(p).expect("test principal is a SPIFFE ID")),
        destination_port: port,
        destination: DestinationWorkload {
            namespace: "shop",
            labels: &workload_labels,
        },
    };
    authorize(policies, &conn)
}

fn deny_by(name: &str) -> Decision<'_> {
    Decision::Deny(DenyReason::DenyPolicy {
        namespace: "shop",
        name,
    })
}

const NO_ALLOW: Decision<'static> = Decision::Deny(DenyReason::NoAllowMatched);

#[test]
fn no_applicable_policy_allows() {
    let cases: Vec<(&str, Vec<AuthorizationPolicy>)> = vec![
        ("no policies", vec![]),
        (
            "policy in another namespace",
            vec![policy("other", "lock", None, Action::Allow, vec![])],
        ),
        (
            "selector does not match",
            vec![policy(
                "shop",
                "lock",
                Some(&[("app", "db")]),
                Action::Allow,
                vec![],
            )],
        ),
        (
            "selector label missing on the workload",
            vec![policy(
                "shop",
                "lock",
                Some(&[("app", "web"), ("version", "v2")]),
                Action::Allow,
                vec![],
            )],
        ),
    ];
    for (what, policies) in cases {
        assert_eq!(
            decide(&policies, Some(WEB), 8080),
            Decision::Allow,
            "{what}"
        );
        assert_eq!(
            decide(&policies, None, 8080),
            Decision::Allow,
            "{what} (plaintext)"
        );
    }
}

#[test]
fn which_policies_apply() {
    let lock = |selector: Option<&[(&str, &str)]>| {
        vec![policy("shop", "lock", selector, Action::Allow, vec![])]
    };
    let cases: Vec<(&str, Vec<AuthorizationPolicy>, bool)> = vec![
        ("namespace-wide", lock(None), true),
        ("empty selector", lock(Some(&[])), true),
        ("one matching label", lock(Some(&[("app", "web")])), true),
        (
            "all labels match",
            lock(Some(&[("app", "web"), ("tier", "front")])),
            true,
        ),
        ("value differs", lock(Some(&[("app", "Web")])), false),
        (
            "one of two labels differs",
            lock(Some(&[("app", "web"), ("tier", "back")])),
            false,
        ),
    ];
    for (what, policies, applies) in cases {
        let expected = if applies { NO_ALLOW } else { Decision::Allow };
        assert_eq!(decide(&policies, Some(WEB), 8080), expected, "{what}");
    }
}

#[test]
fn allow_without_rules_denies_everything() {
    for policies in [
        vec![policy("shop", "lock", None, Action::Allow, vec![])],
        vec![policy(
            "shop",
            "lock",
            Some(&[("app", "web")]),
            Action::Allow,
            vec![],
        )],
    ] {
        assert_eq!(decide(&policies, Some(WEB), 8080), NO_ALLOW);
        assert_eq!(decide(&policies, None, 8080), NO_ALLOW);
    }
}

#[test]
fn allow_is_exclusive_once_any_applies() {
    let policies = vec![
        policy(
            "shop",
            "from-web",
            None,
            Action::Allow,
            vec![from_principals(&[WEB])],
        ),
        // Matches LEGACY, but applies to another workload: no help.
        policy(
            "shop",
            "db-from-legacy",
            Some(&[("app", "db")]),
            Action::Allow,
            vec![from_principals(&[LEGACY])],
        ),
    ];
    let cases = [
        ("matching ALLOW rule", Some(WEB), Decision::Allow),
        ("no ALLOW rule matches", Some(LEGACY), NO_ALLOW),
        ("plaintext", None, NO_ALLOW),
    ];
    for (what, principal, expected) in cases {
        assert_eq!(decide(&policies, principal, 8080), expected, "{what}");
    }
}

#[test]
fn any_matching_allow_policy_is_enough() {
    let policies = vec![
        policy("shop", "lock", None, Action::Allow, vec![]),
        policy(
            "shop",
            "from-legacy",
            None,
            Action::Allow,
            vec![from_namespaces(&["legacy"])],
        ),
    ];
    assert_eq!(decide(&policies, Some(LEGACY), 8080), Decision::Allow);
    assert_eq!(decide(&policies, Some(WEB), 8080), NO_ALLOW);
}

#[test]
fn deny_wins_over_allow_in_any_order() {
    let allow_all = policy(
        "shop",
        "allow-all",
        None,
        Action::Allow,
        vec![Rule::default()],
    );
    let deny_legacy = policy(
        "shop",
        "deny-legacy",
        None,
        Action::Deny,
        vec![from_namespaces(&["legacy"])],
    );
    for policies in [
        vec![allow_all.clone(), deny_legacy.clone()],
        vec![deny_legacy.clone(), allow_all.clone()],
    ] {
        assert_eq!(
            decide(&policies, Some(LEGACY), 8080),
            deny_by("deny-legacy")
        );
        assert_eq!(decide(&policies, Some(WEB), 8080), Decision::Allow);
    }
}

#[test]
fn deny_without_allow_denies_only_what_it_matches() {
    let policies = vec![policy(
        "shop",
        "deny-admin-port",
        Some(&[("app", "web")]),
        Action::Deny,
        vec![to_ports(&[9090])],
    )];
    let cases = [
        (Some(WEB), 9090, deny_by("deny-admin-port")),
        (None, 9090, deny_by("deny-admin-port")),
        (Some(WEB), 8080, Decision::Allow),
        (None, 8080, Decision::Allow),
    ];
    for (principal, port, expected) in cases {
        assert_eq!(
            decide(&policies, principal, port),
            expected,
            "{principal:?} {port}"
        );
    }
}

#[test]
fn deny_without_rules_matches_nothing() {
    let policies = vec![policy("shop", "deny-nothing", None, Action::Deny, vec![])];
    assert_eq!(decide(&policies, Some(LEGACY), 8080), Decision::Allow);
}

#[test]
fn rule_matches_when_every_non_empty_field_matches() {
    let full = Rule {
        source_principals: vec![WEB.into()],
        source_namespaces: vec!["shop".into()],
        destination_ports: vec![8080, 8443],
    };
    let wrong_namespace = Rule {
        source_namespaces: vec!["legacy".into()],
        ..full.clone()
    };
    let cases: Vec<(&str, Rule, Option<&str>, u16, bool)> = vec![
        ("empty rule", Rule::default(), Some(WEB), 1, true),
        ("empty rule, plaintext", Rule::default(), None, 1, true),
        ("all fields match", full.clone(), Some(WEB), 8443, true),
        ("port differs", full.clone(), Some(WEB), 9090, false),
        ("principal differs", full.clone(), Some(LEGACY), 8080, false),
        ("namespace differs", wrong_namespace, Some(WEB), 8080, false),
        ("ports only", to_ports(&[8080]), Some(LEGACY), 8080, true),
        ("ports only, plaintext", to_ports(&[8080]), None, 8080, true),
        (
            "namespaces only",
            from_namespaces(&["legacy", "shop"]),
            Some(WEB),
            1,
            true,
        ),
        (
            "namespaces only, no match",
            from_namespaces(&["legacy"]),
            Some(WEB),
            1,
            false,
        ),
    ];
    for (what, rule, principal, port, matches) in cases {
        let policies = vec![policy("shop", "p", None, Action::Allow, vec![rule])];
        let expected = if matches { Decision::Allow } else { NO_ALLOW };
        assert_eq!(decide(&policies, principal, port), expected, "{what}");
    }
}

#[test]
fn source_conditions_never_match_plaintext() {
    for rule in [
        from_principals(&["*"]),
        from_principals(&["*/sa/web"]),
        from_principals(&["spiffe://*"]),
        from_namespaces(&["shop"]),
    ] {
        let allow = vec![policy("shop", "p", None, Action::Allow, vec![rule.clone()])];
        assert_eq!(decide(&allow, None, 8080), NO_ALLOW, "ALLOW {rule:?}");
        // The flip side: a DENY on sources does not catch plaintext either;
        // a STRICT PeerAuthentication is what refuses plaintext.
        let deny = vec![policy("shop", "p", None, Action::Deny, vec![rule.clone()])];
        assert_eq!(decide(&deny, None, 8080), Decision::Allow, "DENY {rule:?}");
    }
}

#[test]
fn principal_patterns() {
    let cases = [
        (WEB, WEB, true),
        (WEB, "spiffe://cluster.local/ns/shop/sa/webx", false),
        ("*", WEB, true),
        ("*", LEGACY, true),
        ("spiffe://cluster.local/ns/shop/*", WEB, true),
        ("spiffe://cluster.local/ns/shop/*", LEGACY, false),
        ("spiffe://other.domain/*", WEB, false),
        ("*/sa/web", WEB, true),
        ("*/sa/web", "spiffe://cluster.local/ns/legacy/sa/web", true),
        (
            "*/sa/web",
            "spiffe://cluster.local/ns/shop/sa/web-admin",
            false,
        ),
        ("*/ns/shop/sa/web", WEB, true),
    ];
    for (pattern, principal, matches) in cases {
        assert_eq!(
            principal_matches(pattern, principal),
            matches,
            "{pattern} vs {principal}"
        );
        let policies = vec![policy(
            "shop",
            "p",
            None,
            Action::Allow,
            vec![from_principals(&[pattern])],
        )];
        let expected = if matches { Decision::Allow } else { NO_ALLOW };
        assert_eq!(
            decide(&policies, Some(principal), 8080),
            expected,
            "{pattern} vs {principal}"
        );
    }
}

#[test]
fn peer_from_spiffe_id() {
    let peer = Peer::from_spiffe_id(WEB).expect("valid");
    assert_eq!((peer.principal, peer.namespace), (WEB, "shop"));
    for bad in [
        "",
        "shop",
        "spiffe://cluster.local",
        "spiffe://cluster.local/ns/shop",
        "spiffe://cluster.local/ns//sa/web",
        "spiffe:///ns/shop/sa/web",
        "spiffe://cluster.local/ns/shop/sa/web/extra",
        "spiffe://cluster.local/sa/web/ns/shop",
    ] {
        assert_eq!(Peer::from_spiffe_id(bad), None, "{bad}");
    }
}

#[test]
fn deny_reasons_read_well() {
    assert_eq!(
        DenyReason::DenyPolicy {
            namespace: "shop",
            name: "deny-legacy"
        }
        .to_string(),
        "denied by DENY policy shop/deny-legacy"
    );
    assert_eq!(
        DenyReason::NoAllowMatched.to_string(),
        "no ALLOW policy matched"
    );
    assert!(Decision::Allow.is_allowed());
    assert!(!NO_ALLOW.is_allowed());
}
