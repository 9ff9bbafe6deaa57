use gateway_api::apis::standard::constants::GatewayConditionReason;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some("shop".to_string()),
        ..Default::default()
    }
}

fn spec(yaml: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(yaml).expect("test YAML")
}

const MESH: &str = "gatewayClassName: braid-waypoint
listeners: [{name: mesh, port: 15008, protocol: HBONE}]
";

#[test]
fn a_waypoint_gateway_is_accepted() {
    let waypoint = waypoint(&meta("wp"), spec(MESH)).unwrap().unwrap();
    assert_eq!(waypoint.namespace, "shop");
    assert_eq!(waypoint.name, "wp");
    assert!(waypoint.labels.is_empty());
}

#[test]
fn infrastructure_labels_and_annotations_are_kept() {
    let yaml =
        format!("{MESH}infrastructure:\n  labels: {{team: a}}\n  annotations: {{note: b}}\n");
    let waypoint = waypoint(&meta("wp"), spec(&yaml)).unwrap().unwrap();
    assert_eq!(waypoint.labels["team"], "a");
    assert_eq!(waypoint.annotations["note"], "b");
}

#[test]
fn gateways_of_other_classes_are_not_braids() {
    // Not even a broken one: another controller judges it.
    let other = spec("gatewayClassName: istio\nlisteners: [{name: web, port: 80, protocol: HTTP}]");
    assert_eq!(waypoint(&meta("gw"), other), Ok(None));
    assert_eq!(waypoint(&meta("gw"), spec("listeners: 3")), Ok(None));
}

#[test]
fn listeners_other_than_hbone_on_15008_are_not_valid() {
    let cases = [
        (
            "gatewayClassName: braid-waypoint\nlisteners: []",
            "spec.listeners",
        ),
        (
            "gatewayClassName: braid-waypoint\nlisteners: [{name: web, port: 80, protocol: HTTP}]",
            "spec.listeners[0].protocol",
        ),
        (
            "gatewayClassName: braid-waypoint\nlisteners:\n- {name: mesh, port: 15008, protocol: HBONE}\n- {name: b, port: 15009, protocol: HBONE}",
            "spec.listeners[1].port",
        ),
    ];
    for (yaml, field) in cases {
        let e = waypoint(&meta("wp"), spec(yaml)).unwrap_err();
        assert_eq!(e.field, field, "{yaml}");
        assert_eq!(e.reason, GatewayConditionReason::ListenersNotValid);
        assert_eq!(not_accepted_reason(&e.field), e.reason);
    }
}

#[test]
fn addresses_parameters_and_bad_names_are_refused_with_their_reasons() {
    let cases = [
        (
            format!("{MESH}addresses: [{{type: IPAddress, value: 198.19.0.1}}]"),
            "wp",
            "spec.addresses",
            GatewayConditionReason::UnsupportedAddress,
        ),
        (
            format!(
                "{MESH}infrastructure:\n  parametersRef: {{group: '', kind: ConfigMap, name: p}}"
            ),
            "wp",
            "spec.infrastructure.parametersRef",
            GatewayConditionReason::InvalidParameters,
        ),
        (
            MESH.to_string(),
            "Way.point",
            "metadata.name",
            GatewayConditionReason::Invalid,
        ),
        (
            "gatewayClassName: braid-waypoint\nlisteners: [{name: mesh, port: x, protocol: HBONE}]"
                .to_string(),
            "wp",
            "spec.listeners[0].port",
            GatewayConditionReason::ListenersNotValid,
        ),
    ];
    for (yaml, name, field, reason) in cases {
        let e = waypoint(&meta(name), spec(&yaml)).unwrap_err();
        assert_eq!(e.field, field, "{yaml}");
        assert_eq!(not_accepted_reason(&e.field), reason, "{yaml}");
        assert_eq!(e.reason, reason, "{yaml}");
        assert!(!e.message.is_empty());
    }
}
