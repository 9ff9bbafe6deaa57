//! The generated CRDs: names, printer columns, and the validation the API
//! server will apply, checked against the converter so the two agree.

use serde_json::{Value, json};

use super::*;
use crate::limits::{MAX_RULE_ENTRIES, MAX_RULES, NAMESPACE_PATTERN, PRINCIPAL_PATTERN};

/// The `openAPIV3Schema` of `crd` as JSON.
fn schema(crd: &CustomResourceDefinition) -> Value {
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema");
    schema["openAPIV3Schema"].clone()
}

/// The schema of an AuthorizationPolicy rule.
fn rule_schema() -> Value {
    let schema = schema(&AuthorizationPolicy::crd());
    schema["properties"]["spec"]["properties"]["rules"]["items"].clone()
}

fn regex(pattern: &str) -> regex::Regex {
    regex::Regex::new(pattern).expect("the schema's pattern compiles")
}

/// Whether the converter accepts a policy whose only rule is `rule` (YAML).
fn converter_accepts(rule: &str) -> bool {
    let yaml = format!("metadata: {{name: p}}\nspec: {{rules: [{rule}]}}\n");
    let crd: AuthorizationPolicy = serde_yaml_ng::from_str(&yaml).expect("parses");
    braid_model::AuthorizationPolicy::try_from(&crd).is_ok()
}

#[test]
fn crd_names_and_scope() {
    let crds = all_crds();
    let [authorization, peer] = crds.as_slice() else {
        panic!("expected two CRDs, got {}", crds.len());
    };
    for (crd, name, short, column) in [
        (
            authorization,
            "authorizationpolicies.braid.dev",
            "bap",
            "Action",
        ),
        (peer, "peerauthentications.braid.dev", "bpa", "Mode"),
    ] {
        assert_eq!(crd.metadata.name.as_deref(), Some(name));
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, Some(vec![short.to_string()]));
        assert_eq!(crd.spec.names.categories, Some(vec!["braid".to_string()]));
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        let columns: Vec<_> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.as_str(), c.json_path.as_str()))
            .collect();
        assert_eq!(columns[0].0, column, "{name}");
        assert_eq!(
            columns[1..],
            [
                (
                    "Accepted",
                    r#".status.conditions[?(@.type=="Accepted")].status"#
                ),
                ("Age", ".metadata.creationTimestamp")
            ],
            "{name}"
        );
        let subresources = version.subresources.as_ref().expect("subresources");
        assert!(subresources.status.is_some());
    }
}

#[test]
fn status_has_observed_generation_and_condition_map() {
    for crd in all_crds() {
        let status = &schema(&crd)["properties"]["status"]["properties"];
        assert_eq!(status["observedGeneration"]["type"], "integer");
        let conditions = &status["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    }
}

#[test]
fn peer_authentication_schema_carries_validation() {
    let crd = PeerAuthentication::crd();
    let spec = &schema(&crd)["properties"]["spec"];
    assert_eq!(spec["required"], json!(["mtls"]));
    let mtls = &spec["properties"]["mtls"];
    assert_eq!(mtls["required"], json!(["mode"]));
    let mode = &mtls["properties"]["mode"];
    assert_eq!(mode["enum"], json!(["STRICT", "PERMISSIVE"]));
    assert_eq!(mode.get("default"), None, "the mode is always explicit");
    let columns = &crd.spec.versions[0].additional_printer_columns;
    let mode_column = columns.iter().flatten().find(|c| c.name == "Mode");
    assert_eq!(
        mode_column.map(|c| c.json_path.as_str()),
        Some(".spec.mtls.mode")
    );
}

#[test]
fn authorization_policy_schema_carries_validation() {
    let schema = schema(&AuthorizationPolicy::crd());
    let spec = &schema["properties"]["spec"]["properties"];
    assert_eq!(spec["action"]["enum"], json!(["ALLOW", "DENY"]));
    assert_eq!(spec["action"]["default"], "ALLOW");
    assert_eq!(spec["rules"]["maxItems"], json!(MAX_RULES));
    let rule = &spec["rules"]["items"]["properties"];
    let ports = &rule["to"]["properties"]["ports"];
    assert_eq!(ports["maxItems"], json!(MAX_RULE_ENTRIES));
    assert_eq!(ports["items"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(ports["items"]["maximum"].as_f64(), Some(65535.0));
    let from = &rule["from"]["properties"];
    let principals = &from["principals"];
    assert_eq!(principals["maxItems"], json!(MAX_RULE_ENTRIES));
    assert_eq!(principals["items"]["pattern"], PRINCIPAL_PATTERN);
    let namespaces = &from["namespaces"];
    assert_eq!(namespaces["items"]["pattern"], NAMESPACE_PATTERN);
    assert_eq!(namespaces["items"]["maxLength"], json!(63));
}

#[test]
fn empty_from_and_to_are_rejected_by_cel() {
    let rule = rule_schema();
    for (field, mentions) in [("from", "principals"), ("to", "ports")] {
        let validations = &rule["properties"][field]["x-kubernetes-validations"];
        let [validation] = validations.as_array().expect("a list").as_slice() else {
            panic!("{field}: expected one CEL rule, got {validations}");
        };
        let text = validation["rule"].as_str().expect("rule");
        assert!(text.contains(mentions), "{field}: {text}");
        let message = validation["message"].as_str().expect("message");
        assert!(message.contains(&format!("leave {field} out")), "{message}");
        // The converter agrees, so the file source rejects it too.
        assert!(!converter_accepts(&format!("{{{field}: {{}}}}")), "{field}");
    }
}

/// The API server's pattern and the converter's check accept the same
/// principals, so nothing passes `kubectl apply` only to be reported Invalid
/// by the control plane (and the reverse).
#[test]
fn principal_pattern_agrees_with_converter() {
    let pattern = regex(PRINCIPAL_PATTERN);
    for principal in [
        "*",
        "spiffe://cluster.local/ns/shop/sa/web",
        "spiffe://cluster.local/ns/shop/*",
        "spiffe://*",
        "*/ns/shop/sa/web",
        "*/sa/web",
        "",
        "web",
        "*web*",
        "cluster.local/ns/shop/sa/web",
        "spiffe://cluster.local/ns/shop",
        "spiffe://cluster.local/ns//sa/web",
        "spiffe:///ns/shop/sa/web",
        "spiffe://cluster.local/ns/shop/sa/web/extra",
        "spiffe://cluster.local/ns/*/sa/web",
        "spiffe://cluster.local/ns/shop/sa/*/x",
        "*spiffe://cluster.local/ns/shop/*",
        "**",
        "shop/*",
        "spiffe://cluster.local/ns/shop/sa/ web",
        "spiffe://cluster.local/ns/shop/sa/web\n",
    ] {
        let rule = format!("{{from: {{principals: [{}]}}}}", json!(principal));
        assert_eq!(
            pattern.is_match(principal),
            converter_accepts(&rule),
            "{principal:?}"
        );
    }
}

#[test]
fn namespace_pattern_agrees_with_converter() {
    let pattern = regex(NAMESPACE_PATTERN);
    for namespace in [
        "shop", "shop-1", "1shop", "a", "", "Shop", "-shop", "shop-", "shop.eu", "*", "sh op",
    ] {
        let rule = format!("{{from: {{namespaces: [{}]}}}}", json!(namespace));
        assert_eq!(
            pattern.is_match(namespace),
            converter_accepts(&rule),
            "{namespace:?}"
        );
    }
}

#[test]
fn list_limits_agree_with_converter() {
    let ports = |n: usize| (1..=n).map(|p| p.to_string()).collect::<Vec<_>>().join(",");
    assert!(converter_accepts(&format!(
        "{{to: {{ports: [{}]}}}}",
        ports(MAX_RULE_ENTRIES)
    )));
    let yaml = format!(
        "metadata: {{name: p}}\nspec: {{rules: [{{to: {{ports: [{}]}}}}]}}\n",
        ports(MAX_RULE_ENTRIES + 1)
    );
    let crd: AuthorizationPolicy = serde_yaml_ng::from_str(&yaml).expect("parses");
    let err = braid_model::AuthorizationPolicy::try_from(&crd).expect_err("too many ports");
    assert_eq!(err.field, "spec.rules[0].to.ports");

    let rules = vec!["{}"; MAX_RULES + 1].join(",");
    let yaml = format!("metadata: {{name: p}}\nspec: {{rules: [{rules}]}}\n");
    let crd: AuthorizationPolicy = serde_yaml_ng::from_str(&yaml).expect("parses");
    let err = braid_model::AuthorizationPolicy::try_from(&crd).expect_err("too many rules");
    assert_eq!(err.field, "spec.rules");
    assert!(err.message.contains("split the policy"), "{err}");
}

/// The examples users `kubectl apply` are accepted by the control plane
/// too, not only by the API server.
#[test]
fn examples_convert() {
    use serde::Deserialize as _;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/examples");
    let mut converted = 0;
    for entry in std::fs::read_dir(&dir).expect("manifests/examples") {
        let path = entry.expect("directory entry").path();
        let text = std::fs::read_to_string(&path).expect("readable example");
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde_yaml_ng::Value::deserialize(document).expect("YAML");
            let shown = path.display();
            match value["kind"].as_str() {
                Some("AuthorizationPolicy") => {
                    let crd: AuthorizationPolicy =
                        serde_yaml_ng::from_value(value).expect("parses");
                    braid_model::AuthorizationPolicy::try_from(&crd)
                        .unwrap_or_else(|e| panic!("{shown}: {e}"));
                }
                Some("PeerAuthentication") => {
                    let crd: PeerAuthentication = serde_yaml_ng::from_value(value).expect("parses");
                    braid_model::PeerAuthentication::try_from(&crd)
                        .unwrap_or_else(|e| panic!("{shown}: {e}"));
                }
                _ => continue,
            }
            converted += 1;
        }
    }
    assert!(
        converted >= 3,
        "only {converted} Braid objects in {}",
        dir.display()
    );
}
