//! YAML/JSON → CRD → model, and the errors users see.

use std::collections::BTreeMap;

use braid_model::k8s::FieldError;

use super::*;

fn parse(yaml: &str) -> Result<PeerAuthentication, serde_yaml_ng::Error> {
    serde_yaml_ng::from_str(yaml)
}

fn to_model(yaml: &str) -> Result<braid_model::PeerAuthentication, FieldError> {
    let crd = parse(yaml).expect("valid PeerAuthentication YAML");
    braid_model::PeerAuthentication::try_from(&crd)
}

#[test]
fn full_policy_from_yaml() {
    let policy = to_model(
        r#"
apiVersion: braid.dev/v1alpha1
kind: PeerAuthentication
metadata:
  name: stock-strict
  namespace: inventory
spec:
  selector:
    matchLabels: {app: stock}
  mtls:
    mode: STRICT
"#,
    )
    .expect("valid policy");
    let expected = braid_model::PeerAuthentication {
        name: "stock-strict".into(),
        namespace: "inventory".into(),
        selector: Some(BTreeMap::from([("app".into(), "stock".into())])),
        mode: braid_model::MtlsMode::Strict,
    };
    assert_eq!(policy, expected);
}

#[test]
fn namespace_wide_and_defaults() {
    for (yaml, mode) in [
        (
            "metadata: {name: p}\nspec: {mtls: {mode: PERMISSIVE}}\n",
            braid_model::MtlsMode::Permissive,
        ),
        (
            "metadata: {name: p}\nspec: {selector: {}, mtls: {mode: STRICT}}\n",
            braid_model::MtlsMode::Strict,
        ),
    ] {
        let policy = to_model(yaml).expect("valid");
        assert_eq!(policy.namespace, crate::DEFAULT_NAMESPACE);
        assert_eq!(policy.selector, None, "empty selector is namespace-wide");
        assert_eq!(policy.mode, mode);
    }
}

#[test]
fn json_round_trip() {
    let mut crd = PeerAuthentication::new(
        "strict",
        PeerAuthenticationSpec {
            selector: None,
            mtls: MutualTls {
                mode: MtlsMode::Strict,
            },
        },
    );
    crd.metadata.namespace = Some("inventory".into());
    let json = serde_json::to_value(&crd).expect("serialize");
    assert_eq!(json["apiVersion"], "braid.dev/v1alpha1");
    assert_eq!(json["kind"], "PeerAuthentication");
    assert_eq!(json["spec"]["mtls"]["mode"], "STRICT");
    assert_eq!(json["spec"].get("selector"), None);
    let back: PeerAuthentication = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back, crd);
}

#[test]
fn missing_name() {
    let err = to_model("metadata: {namespace: shop}\nspec: {mtls: {mode: STRICT}}\n")
        .expect_err("no name");
    assert_eq!(err.field, "metadata.name");
}

#[test]
fn match_expressions_not_supported() {
    let err = to_model(
        "metadata: {name: p}\nspec:\n  selector:\n    matchExpressions: [{key: app, operator: In, values: [web]}]\n  mtls: {mode: STRICT}\n",
    )
    .expect_err("matchExpressions");
    assert_eq!(err.field, "spec.selector.matchExpressions");
    assert!(err.message.contains("matchLabels"), "{err}");
}

#[test]
fn mode_must_be_strict_or_permissive() {
    for (spec, expect) in [
        ("{mtls: {mode: strict}}", "STRICT"),
        ("{mtls: {mode: DISABLE}}", "PERMISSIVE"),
        ("{mtls: {mode: UNSET}}", "PERMISSIVE"),
        ("{mtls: {}}", "missing field `mode`"),
        ("{}", "missing field `mtls`"),
    ] {
        let yaml = format!("metadata: {{name: p}}\nspec: {spec}\n");
        let err = parse(&yaml).expect_err(spec).to_string();
        assert!(err.contains(expect), "{spec}: {err}");
    }
}

#[test]
fn typos_are_rejected() {
    for (spec, typo) in [
        ("{mtls: {mode: STRICT}, mTLS: {}}", "mTLS"),
        ("{mtls: {mode: STRICT, portLevelMtls: {}}}", "portLevelMtls"),
        (
            "{selector: {matchLabel: {app: web}}, mtls: {mode: STRICT}}",
            "matchLabel",
        ),
    ] {
        let yaml = format!("metadata: {{name: p}}\nspec: {spec}\n");
        let err = parse(&yaml).expect_err("unknown field").to_string();
        assert!(err.contains(&format!("unknown field `{typo}`")), "{err}");
    }
}
