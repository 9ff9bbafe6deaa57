//! The plugin binary invoked exactly like a container runtime does, without
//! an agent (or with a Kubernetes-less pod).

mod support;

use serde_json::json;
use support::{Cni, config, k8s_args, prev_result};

#[test]
fn version_lists_supported_versions() {
    let out = Cni::new("VERSION", r#"{"cniVersion":"0.4.0"}"#.into()).run();
    assert_eq!(out.code, 0, "{out:?}");
    let expected = json!({
        "cniVersion": "0.4.0",
        "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    });
    assert_eq!(out.stdout, Some(expected));
}

#[test]
fn add_without_kubernetes_args_passes_prev_result_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cni = Cni::new("ADD", config(&dir.path().join("no-agent.sock")));
    cni.netns = "/proc/self/ns/net".into();
    let out = cni.run();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, Some(prev_result()));
}

#[test]
fn invalid_config_is_error_7() {
    let out = Cni::new("ADD", "{not json".into()).run();
    assert_ne!(out.code, 0);
    let error = out.stdout.expect("error JSON on stdout");
    assert_eq!(error["code"], 7, "{error}");
    assert_eq!(error["cniVersion"], "1.1.0");
    assert!(error["details"].as_str().is_some_and(|d| !d.is_empty()));

    // Chained without a previous plugin: also a config error.
    let out = Cni::new(
        "ADD",
        r#"{"cniVersion":"1.0.0","name":"n","type":"braid-cni"}"#.into(),
    )
    .run();
    let error = out.stdout.expect("error JSON on stdout");
    assert_eq!(error["code"], 7, "{error}");
    assert!(
        error["details"]
            .as_str()
            .is_some_and(|d| d.contains("chained"))
    );

    let out = Cni::new(
        "ADD",
        r#"{"cniVersion":"9.9.9","name":"n","type":"t"}"#.into(),
    )
    .run();
    assert_eq!(out.stdout.expect("error JSON")["code"], 1);
}

#[test]
fn agent_down_is_try_again_on_add_and_success_on_del() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("absent.sock");
    let mut cni = Cni::new("ADD", config(&socket));
    cni.netns = "/proc/self/ns/net".into();
    cni.args = k8s_args("shop", "web-0", "u1");
    let out = cni.run();
    assert_ne!(out.code, 0);
    let error = out.stdout.expect("error JSON on stdout");
    assert_eq!(error["code"], 11, "{error}");
    assert_eq!(error["cniVersion"], "1.0.0");
    let details = error["details"].as_str().unwrap_or_default();
    assert!(
        details.contains("absent.sock") && details.contains("shop/web-0"),
        "{details}"
    );

    cni.command = "DEL";
    let out = cni.run();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.raw_stdout, "", "DEL prints nothing");
    assert!(out.stderr.contains("ignored"), "{}", out.stderr);

    cni.command = "STATUS";
    let out = cni.run();
    assert_eq!(out.stdout.expect("error JSON")["code"], 50);
}
