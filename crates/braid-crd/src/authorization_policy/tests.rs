//! YAML/JSON → CRD → model, and the errors users see.

use std::collections::BTreeMap;

use braid_model::k8s::FieldError;

use super::*;

fn parse(yaml: &str) -> AuthorizationPolicy {
    serde_yaml_ng::from_str(yaml).expect("valid AuthorizationPolicy YAML")
}

fn to_model(yaml: &str) -> Result<braid_model::AuthorizationPolicy, FieldError> {
    braid_model::AuthorizationPolicy::try_from(&parse(yaml))
}

fn field_of(yaml: &str) -> String {
    to_model(yaml).expect_err("conversion should fail").field
}

/// A policy whose first rule's `to` is `ports`.
fn with_ports(ports: &str) -> String {
    format!("metadata: {{name: p}}\nspec:\n  rules:\n  - to: {{ports: {ports}}}\n")
}

/// A policy whose second rule's `from.principals` is `principals`.
fn with_principals(principals: &str) -> String {
    format!(
        "metadata: {{name: p}}\nspec:\n  rules:\n  - {{}}\n  - from: {{principals: {principals}}}\n"
    )
}

#[test]
fn full_policy_from_yaml() {
    let policy = to_model(
        r#"
apiVersion: braid.dev/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: web-ingress
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  action: DENY
  rules:
  - from:
      principals: ["spiffe://cluster.local/ns/shop/sa/web", "*/sa/admin"]
      namespaces: ["shop"]
    to:
      ports: [8080, 9090]
  - to:
      ports: [15020]
"#,
    )
    .expect("valid policy");
    let expected = braid_model::AuthorizationPolicy {
        name: "web-ingress".into(),
        namespace: "shop".into(),
        selector: Some(BTreeMap::from([("app".into(), "web".into())])),
        action: braid_model::Action::Deny,
        rules: vec![
            braid_model::Rule {
                source_principals: vec![
                    "spiffe://cluster.local/ns/shop/sa/web".into(),
                    "*/sa/admin".into(),
                ],
                source_namespaces: vec!["shop".into()],
                destination_ports: vec![8080, 9090],
            },
            braid_model::Rule {
                destination_ports: vec![15020],
                ..Default::default()
            },
        ],
    };
    assert_eq!(policy, expected);
}

#[test]
fn minimal_policy_defaults() {
    let policy = to_model("metadata: {name: deny-all}\nspec: {}\n").expect("valid");
    assert_eq!(policy.namespace, crate::DEFAULT_NAMESPACE);
    assert_eq!(policy.selector, None);
    assert_eq!(policy.action, braid_model::Action::Allow);
    assert!(policy.rules.is_empty(), "ALLOW without rules denies all");
}

#[test]
fn empty_selector_selects_namespace() {
    let policy = to_model("metadata: {name: p}\nspec: {selector: {}}\n").expect("valid");
    assert_eq!(policy.selector, None);
}

#[test]
fn empty_rule_matches_everything() {
    let policy = to_model("metadata: {name: p}\nspec: {rules: [{}]}\n").expect("valid");
    assert_eq!(policy.rules, [braid_model::Rule::default()]);
}

#[test]
fn json_round_trip() {
    let mut crd = AuthorizationPolicy::new(
        "web",
        AuthorizationPolicySpec {
            action: Action::Deny,
            rules: vec![Rule {
                from: Some(Source {
                    namespaces: vec!["shop".into()],
                    ..Default::default()
                }),
                to: None,
            }],
            ..Default::default()
        },
    );
    crd.metadata.namespace = Some("shop".into());
    let json = serde_json::to_value(&crd).expect("serialize");
    assert_eq!(json["apiVersion"], "braid.dev/v1alpha1");
    assert_eq!(json["kind"], "AuthorizationPolicy");
    assert_eq!(json["spec"]["action"], "DENY");
    assert_eq!(json["spec"].get("selector"), None);
    let back: AuthorizationPolicy = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back, crd);
}

#[test]
fn status_conditions_parse() {
    let crd = parse(
        r#"
metadata: {name: p, generation: 3}
spec: {}
status:
  conditions:
  - type: Accepted
    status: "False"
    reason: Invalid
    message: "spec.rules[0].to.ports[0]: port 0 is out of range; use 1-65535"
    observedGeneration: 3
    lastTransitionTime: "2025-01-01T00:00:00Z"
"#,
    );
    let status = crd.status.expect("status");
    let condition = &status.conditions[0];
    assert_eq!(condition.type_, crate::condition::TYPE_ACCEPTED);
    assert_eq!(condition.reason, crate::condition::INVALID);
    assert_eq!(condition.observed_generation, Some(3));
}

#[test]
fn missing_name() {
    assert_eq!(
        field_of("metadata: {namespace: shop}\nspec: {}\n"),
        "metadata.name"
    );
    assert_eq!(
        field_of("metadata: {name: ''}\nspec: {}\n"),
        "metadata.name"
    );
}

#[test]
fn bad_ports_name_the_index() {
    assert_eq!(
        field_of(&with_ports("[80, 0]")),
        "spec.rules[0].to.ports[1]"
    );
    assert_eq!(
        field_of(&with_ports("[80, 65536]")),
        "spec.rules[0].to.ports[1]"
    );
    assert_eq!(field_of(&with_ports("[-1]")), "spec.rules[0].to.ports[0]");
    let err = to_model(&with_ports("[70000]")).expect_err("out of range");
    assert_eq!(
        err.to_string(),
        "spec.rules[0].to.ports[0]: port 70000 is out of range; use 1-65535"
    );
    assert!(to_model(&with_ports("[1, 65535]")).is_ok());
}

#[test]
fn bad_principals_name_the_index() {
    let field = field_of(&with_principals(r#"["*", "cluster.local/ns/shop/sa/web"]"#));
    assert_eq!(field, "spec.rules[1].from.principals[1]");
    let field = field_of(&with_principals(r#"["spiffe://td/ns/*/sa/web"]"#));
    assert_eq!(field, "spec.rules[1].from.principals[0]");
    assert!(to_model(&with_principals(r#"["*", "spiffe://td/ns/shop/*"]"#)).is_ok());
}

#[test]
fn empty_namespace_rejected() {
    let yaml = "metadata: {name: p}\nspec: {rules: [{from: {namespaces: [shop, '']}}]}\n";
    assert_eq!(field_of(yaml), "spec.rules[0].from.namespaces[1]");
}

#[test]
fn match_expressions_not_supported() {
    let err = to_model(
        r#"
metadata: {name: p}
spec:
  selector:
    matchExpressions:
    - {key: app, operator: In, values: [web]}
"#,
    )
    .expect_err("matchExpressions");
    assert_eq!(err.field, "spec.selector.matchExpressions");
    assert!(err.message.contains("not supported yet"), "{err}");
}

#[test]
fn typos_are_rejected() {
    for (yaml, typo) in [
        ("spec: {rule: []}", "rule"),
        ("spec: {selector: {matchLabel: {app: web}}}", "matchLabel"),
        ("spec: {rules: [{from: {principal: ['*']}}]}", "principal"),
        ("spec: {rules: [{too: {ports: [80]}}]}", "too"),
        ("spec: {rules: [{to: {port: [80]}}]}", "port"),
    ] {
        let yaml = format!("metadata: {{name: p}}\n{yaml}\n");
        let err = serde_yaml_ng::from_str::<AuthorizationPolicy>(&yaml)
            .expect_err("unknown field should be rejected")
            .to_string();
        assert!(err.contains(&format!("unknown field `{typo}`")), "{err}");
    }
}

#[test]
fn action_is_upper_case() {
    let err =
        serde_yaml_ng::from_str::<AuthorizationPolicy>("metadata: {}\nspec: {action: allow}\n")
            .expect_err("lower-case action")
            .to_string();
    assert!(err.contains("ALLOW"), "{err}");
}

#[test]
fn empty_from_or_to_rejected() {
    let err = to_model("metadata: {name: p}\nspec: {rules: [{}, {from: {}}]}\n").expect_err("from");
    assert_eq!(err.field, "spec.rules[1].from");
    assert!(err.message.contains("leave from out"), "{err}");
    let yaml =
        "metadata: {name: p}\nspec: {rules: [{from: {namespaces: [shop]}, to: {ports: []}}]}\n";
    assert_eq!(field_of(yaml), "spec.rules[0].to");
}

#[test]
fn namespace_names_checked() {
    let yaml = "metadata: {name: p}\nspec: {rules: [{from: {namespaces: [shop, Legacy]}}]}\n";
    let err = to_model(yaml).expect_err("upper case");
    assert_eq!(err.field, "spec.rules[0].from.namespaces[1]");
    assert!(
        err.message.contains("\"Legacy\" is not a namespace name"),
        "{err}"
    );
}
