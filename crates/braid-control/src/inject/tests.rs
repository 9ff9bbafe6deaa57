//! The webhook on AdmissionReview JSON shaped like kube-apiserver's, with the
//! returned JSON Patch applied to the pod by an RFC 6902 implementation.

#![allow(clippy::unwrap_used)]

use braid_model::DataPlaneMode;
use serde_json::{Value, json};

use super::{
    InjectConfig,
    patch::escape,
    review::{ReviewError, review},
};
use crate::index::NamespaceModes;

const UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";

/// The namespaces the index knows: one per mode, and one without a label.
fn namespaces() -> NamespaceModes {
    [
        ("shop", Some(DataPlaneMode::Sidecar)),
        ("ambient-ns", Some(DataPlaneMode::Ambient)),
        ("off", Some(DataPlaneMode::None)),
        ("plain", None),
    ]
    .into_iter()
    .map(|(n, m)| (n.to_string(), m))
    .collect()
}

/// A pod as a Deployment's ReplicaSet creates it (no name yet, no
/// namespace in the object).
fn pod() -> Value {
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "generateName": "web-7d4b9c-",
            "creationTimestamp": null,
            "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c", "uid": "1c1e9b0e-0000-4000-8000-000000000001", "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "containers": [{
                "name": "web", "image": "nginx:1.27",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "resources": {}, "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"
            }],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default",
            "securityContext": {}, "schedulerName": "default-scheduler", "enableServiceLinks": true
        },
        "status": {}
    })
}

/// The AdmissionReview kube-apiserver sends for creating `object` in `ns`.
fn admission(ns: &str, object: Value) -> Value {
    json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": UID,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": ns,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "uid": "9f1c", "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
}

/// What the webhook answered: the `response`, and the pod with the patch
/// applied when there was one.
struct Answer {
    response: Value,
    patched: Option<Value>,
}

fn ask_with(config: &InjectConfig, body: &Value) -> Answer {
    let (out, _) = review(&serde_json::to_vec(body).unwrap(), config, &namespaces()).unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["kind"], "AdmissionReview");
    let response = out["response"].clone();
    assert_eq!(
        response["uid"], UID,
        "the uid must be copied from the request"
    );
    assert_eq!(response["allowed"], true, "the webhook never denies");
    let patched = response.get("patch").map(|patch| {
        assert_eq!(response["patchType"], "JSONPatch");
        assert!(patch.is_string(), "the patch must be base64 text: {patch}");
        let bytes: k8s_openapi::ByteString = serde_json::from_value(patch.clone()).unwrap();
        let ops: json_patch::Patch = serde_json::from_slice(&bytes.0).unwrap();
        let mut pod = body["request"]["object"].clone();
        json_patch::patch(&mut pod, &ops).unwrap();
        pod
    });
    if patched.is_none() {
        assert!(response.get("patchType").is_none());
    }
    Answer { response, patched }
}

fn ask(ns: &str, pod: Value) -> Answer {
    ask_with(&InjectConfig::defaults(), &admission(ns, pod))
}

fn names(containers: &Value) -> Vec<&str> {
    containers
        .as_array()
        .map(|c| c.iter().map(|c| c["name"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

fn warnings(answer: &Answer) -> Vec<String> {
    serde_json::from_value(answer.response["warnings"].clone()).unwrap_or_default()
}

#[test]
fn injects_in_a_sidecar_namespace() {
    let answer = ask("shop", pod());
    assert!(warnings(&answer).is_empty());
    let pod = answer.patched.expect("a patch");
    assert_eq!(pod["metadata"]["annotations"]["braid.dev/injected"], "true");
    assert_eq!(
        names(&pod["spec"]["initContainers"]),
        ["braid-init", "braid-proxy"]
    );
    assert_eq!(
        names(&pod["spec"]["containers"]),
        ["web"],
        "the app is untouched"
    );

    let init = &pod["spec"]["initContainers"][0];
    assert_eq!(init["image"], InjectConfig::defaults().proxy_image);
    assert_eq!(init["args"], json!(["init"]));
    assert_eq!(init["securityContext"]["runAsUser"], 0);
    assert_eq!(
        init["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN", "NET_RAW"])
    );
    assert!(init.get("restartPolicy").is_none(), "braid-init runs once");

    let proxy = &pod["spec"]["initContainers"][1];
    assert_eq!(proxy["restartPolicy"], "Always", "a native sidecar");
    assert_eq!(
        proxy["args"],
        json!([
            "sidecar",
            "--pod",
            "$(BRAID_POD_NAMESPACE)/$(BRAID_POD_NAME)"
        ])
    );
    assert_eq!(proxy["securityContext"]["runAsUser"], 1337);
    let env: Vec<&Value> = proxy["env"].as_array().unwrap().iter().collect();
    let var = |name: &str| env.iter().find(|e| e["name"] == name).copied().unwrap();
    assert_eq!(
        var("BRAID_POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        var("BRAID_POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        var("BRAID_CA_ROOT")["value"],
        "/var/run/braid/ca/root-cert.pem"
    );
    assert_eq!(
        var("BRAID_TOKEN_FILE")["value"],
        "/var/run/braid/token/token"
    );
    assert_eq!(var("BRAID_TRUST_DOMAIN")["value"], "cluster.local");
    assert_eq!(
        var("BRAID_CONTROL_PLANE")["value"],
        "http://braid-control.braid-system.svc:15010"
    );
    for probe in ["startupProbe", "readinessProbe"] {
        assert_eq!(proxy[probe]["httpGet"]["path"], "/healthz/ready", "{probe}");
        assert_eq!(proxy[probe]["httpGet"]["port"], 15021, "{probe}");
    }
    let mounts = proxy["volumeMounts"].as_array().unwrap();
    assert!(mounts.iter().all(|m| m["readOnly"] == true));
    assert_eq!(
        names(&proxy["volumeMounts"]),
        ["braid-ca-root", "braid-token"]
    );

    let volumes = &pod["spec"]["volumes"];
    assert_eq!(names(volumes), ["braid-ca-root", "braid-token"]);
    assert_eq!(volumes[0]["configMap"]["name"], "braid-ca-root");
    let token = &volumes[1]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["audience"], "braid");
    assert_eq!(token["path"], "token");
    // What comes out is still a Pod.
    serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(pod).unwrap();
}

#[test]
fn skips_ambient_none_and_unlabelled_namespaces() {
    for ns in ["ambient-ns", "off", "plain"] {
        let answer = ask(ns, pod());
        assert!(answer.patched.is_none(), "{ns}");
        assert!(warnings(&answer).is_empty(), "{ns}: nothing to warn about");
    }
}

#[test]
fn an_unknown_namespace_is_admitted_with_a_warning() {
    let answer = ask("elsewhere", pod());
    assert!(answer.patched.is_none());
    assert!(
        warnings(&answer)[0].contains("namespace is unknown"),
        "{:?}",
        warnings(&answer)
    );
}

#[test]
fn the_pod_label_overrides_the_namespace_both_ways() {
    let labels = |mode: &str| {
        let mut pod = pod();
        pod["metadata"]["labels"]["braid.dev/mode"] = json!(mode);
        pod
    };
    assert!(ask("ambient-ns", labels("sidecar")).patched.is_some());
    assert!(ask("plain", labels("sidecar")).patched.is_some());
    assert!(ask("elsewhere", labels("sidecar")).patched.is_some());
    assert!(ask("shop", labels("none")).patched.is_none());
    assert!(ask("shop", labels("ambient")).patched.is_none());
    let bad = ask("shop", labels("sidecars"));
    assert!(bad.patched.is_none());
    assert!(
        warnings(&bad)[0].contains("braid.dev/mode"),
        "{:?}",
        warnings(&bad)
    );
}

#[test]
fn never_injects_twice() {
    let once = ask("shop", pod()).patched.unwrap();
    let twice = ask("shop", once.clone());
    assert!(twice.patched.is_none(), "an injected pod is left alone");

    let mut annotated = pod();
    annotated["metadata"]["annotations"] = json!({"braid.dev/injected": "true"});
    assert!(ask("shop", annotated).patched.is_none());

    // A proxy container without the annotation (e.g. added by hand).
    let mut legacy = once;
    legacy["metadata"]["annotations"] = json!({});
    assert!(ask("shop", legacy.clone()).patched.is_none());
    legacy["spec"]["initContainers"] = json!([]);
    legacy["spec"]["containers"] = json!([{"name": "braid-proxy", "image": "p"}]);
    assert!(ask("shop", legacy).patched.is_none());
}

#[test]
fn exclusion_annotations_reach_the_init_container() {
    let mut pod = pod();
    pod["metadata"]["annotations"] = json!({
        "braid.dev/exclude-inbound-ports": "15020, 9090",
        "braid.dev/exclude-outbound-ports": "5432",
        "braid.dev/exclude-outbound-cidrs": "169.254.169.254/32,fd00::/8",
        "example.com/owner": "team-a"
    });
    let pod = ask("shop", pod).patched.unwrap();
    assert_eq!(
        pod["spec"]["initContainers"][0]["args"],
        json!([
            "init",
            "--exclude-inbound-ports",
            "15020,9090",
            "--exclude-outbound-ports",
            "5432",
            "--exclude-outbound-cidrs",
            "169.254.169.254/32,fd00::/8"
        ])
    );
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(
        annotations["example.com/owner"], "team-a",
        "existing annotations stay"
    );
    assert_eq!(annotations["braid.dev/injected"], "true");
}

#[test]
fn a_bad_annotation_admits_the_pod_uninjected_with_a_warning() {
    let cases = [
        ("braid.dev/exclude-inbound-ports", "0"),
        ("braid.dev/exclude-inbound-ports", "80,70000"),
        ("braid.dev/exclude-outbound-ports", "http"),
        ("braid.dev/exclude-outbound-ports", "+443"),
        ("braid.dev/exclude-outbound-cidrs", "10.0.0.0"),
        ("braid.dev/exclude-outbound-cidrs", "10.0.0.1/8"),
        ("braid.dev/exclude-outbound-cidrs", "10.0.0.0/33"),
        ("braid.dev/exclude-outbound-cidrs", "fd00::/129"),
        ("braid.dev/exclude-outbound-cidrs", "example.com/32"),
    ];
    for (key, value) in cases {
        let mut pod = pod();
        pod["metadata"]["annotations"] = json!({ key: value });
        let answer = ask("shop", pod);
        assert!(answer.patched.is_none(), "{key}={value}");
        let warnings = warnings(&answer);
        assert_eq!(warnings.len(), 1, "{key}={value}");
        assert!(warnings[0].starts_with("braid: "), "{}", warnings[0]);
        assert!(warnings[0].contains(key), "{}", warnings[0]);
        assert!(warnings[0].contains("not injected"), "{}", warnings[0]);
    }
}

#[test]
fn cni_sidecar_rules_omit_braid_init() {
    let config = InjectConfig {
        cni_sidecar_rules: true,
        ..InjectConfig::defaults()
    };
    let pod = ask_with(&config, &admission("shop", pod()))
        .patched
        .unwrap();
    assert_eq!(names(&pod["spec"]["initContainers"]), ["braid-proxy"]);
}

#[test]
fn the_mesh_comes_before_the_apps_init_containers() {
    let mut pod = pod();
    pod["spec"]["initContainers"] = json!([
        {"name": "migrate", "image": "migrate:1"},
        {"name": "warm-cache", "image": "warm:1"}
    ]);
    pod["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    let patched = ask("shop", pod).patched.unwrap();
    assert_eq!(
        names(&patched["spec"]["initContainers"]),
        ["braid-init", "braid-proxy", "migrate", "warm-cache"]
    );
    assert_eq!(
        names(&patched["spec"]["volumes"]),
        ["data", "braid-ca-root", "braid-token"]
    );

    let config = InjectConfig {
        cni_sidecar_rules: true,
        ..InjectConfig::defaults()
    };
    let mut pod = self::pod();
    pod["spec"]["initContainers"] = json!([{"name": "migrate", "image": "migrate:1"}]);
    let patched = ask_with(&config, &admission("shop", pod)).patched.unwrap();
    assert_eq!(
        names(&patched["spec"]["initContainers"]),
        ["braid-proxy", "migrate"]
    );
}

#[test]
fn legacy_sidecar_is_the_first_regular_container() {
    let config = InjectConfig {
        legacy_sidecar: true,
        ..InjectConfig::defaults()
    };
    let pod = ask_with(&config, &admission("shop", pod()))
        .patched
        .unwrap();
    assert_eq!(names(&pod["spec"]["initContainers"]), ["braid-init"]);
    assert_eq!(names(&pod["spec"]["containers"]), ["braid-proxy", "web"]);
    assert!(pod["spec"]["containers"][0].get("restartPolicy").is_none());
    let again = ask_with(&config, &admission("shop", pod));
    assert!(again.patched.is_none());
}

#[test]
fn anything_else_is_admitted_unchanged() {
    let mut config_map = admission(
        "shop",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
    );
    config_map["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    config_map["request"]["resource"] =
        json!({"group": "", "version": "v1", "resource": "configmaps"});
    let answer = ask_with(&InjectConfig::defaults(), &config_map);
    assert!(answer.patched.is_none());

    let mut update = admission("shop", pod());
    update["request"]["operation"] = json!("UPDATE");
    update["request"]["oldObject"] = pod();
    assert!(
        ask_with(&InjectConfig::defaults(), &update)
            .patched
            .is_none()
    );

    let mut malformed = pod();
    malformed["spec"]["containers"] = json!("web");
    let answer = ask("shop", malformed);
    assert!(answer.patched.is_none());
    assert!(
        warnings(&answer)[0].contains("cannot read the pod"),
        "{:?}",
        warnings(&answer)
    );

    let mut no_spec = pod();
    no_spec.as_object_mut().unwrap().remove("spec");
    assert!(ask("shop", no_spec).patched.is_none());
}

#[test]
fn a_body_that_is_not_an_admission_review_is_an_error() {
    let config = InjectConfig::defaults();
    let err = |body: &[u8]| review(body, &config, &namespaces()).unwrap_err();
    assert!(matches!(err(b"hello"), ReviewError::NotAReview(_)));
    assert!(matches!(err(b"[1, 2]"), ReviewError::NotAReview(_)));
    let pod = serde_json::to_vec(&pod()).unwrap();
    assert!(matches!(err(&pod), ReviewError::WrongType { .. }));
    let mut v1beta1 = admission("shop", self::pod());
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    assert!(matches!(
        err(&serde_json::to_vec(&v1beta1).unwrap()),
        ReviewError::WrongType { .. }
    ));
    let empty = br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#;
    assert!(matches!(err(empty), ReviewError::NoRequest));
    assert!(err(empty).to_string().contains("no request"));
}

#[test]
fn annotation_keys_are_escaped_in_json_pointers() {
    assert_eq!(escape("braid.dev/injected"), "braid.dev~1injected");
    assert_eq!(escape("a~b/c"), "a~0b~1c");
    // With annotations present the patch adds one key, escaped.
    let mut pod = pod();
    pod["metadata"]["annotations"] = json!({"x": "y"});
    let decision = super::inject(
        &serde_json::from_value(pod).unwrap(),
        &InjectConfig::defaults(),
        super::NamespaceMode::Known(Some(DataPlaneMode::Sidecar)),
    );
    let super::Decision::Inject(ops) = decision else {
        panic!("expected a patch, got {decision:?}");
    };
    assert_eq!(ops[0].path, "/metadata/annotations/braid.dev~1injected");
    assert_eq!(ops[0].value, json!("true"));
}
