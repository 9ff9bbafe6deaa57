use serde_json::json;

use super::super::{fixtures::namespace, validate_namespace};

#[test]
fn valid_namespaces() {
    for labels in [
        json!({}),
        json!({ "braid.dev/mode": "ambient", "braid.dev/waypoint": "waypoint" }),
        json!({ "braid.dev/mode": "sidecar", "braid.dev/waypoint": "none" }),
        json!({ "braid.dev/mode": "none", "other": "anything" }),
        json!({ "braid.dev/waypoint": "gw.v1" }),
    ] {
        assert_eq!(
            validate_namespace(&namespace("ns", labels.clone())),
            Ok(()),
            "{labels}"
        );
    }
    let no_labels = serde_json::from_value(json!({ "metadata": { "name": "ns" } })).unwrap();
    assert_eq!(validate_namespace(&no_labels), Ok(()));
}

#[test]
fn bad_mode() {
    let err =
        validate_namespace(&namespace("ns", json!({ "braid.dev/mode": "Ambient" }))).unwrap_err();
    assert_eq!(err.field, r#"metadata.labels["braid.dev/mode"]"#);
    assert_eq!(
        err.to_string(),
        concat!(
            r#"metadata.labels["braid.dev/mode"]: unknown data-plane mode "Ambient": "#,
            r#"use one of "sidecar", "ambient", "none""#,
        )
    );
    let empty = namespace("ns", json!({ "braid.dev/mode": "" }));
    assert!(validate_namespace(&empty).is_err());
}

#[test]
fn bad_waypoint() {
    for value in ["", "Waypoint", "my_waypoint", "-wp", "wp-", "a..b"] {
        let ns = namespace("ns", json!({ "braid.dev/waypoint": value }));
        let err = validate_namespace(&ns).unwrap_err();
        assert_eq!(
            err.field, r#"metadata.labels["braid.dev/waypoint"]"#,
            "{value}"
        );
        assert!(
            err.message.contains("write \"none\" for no waypoint"),
            "{err}"
        );
    }
}
