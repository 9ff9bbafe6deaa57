//! The install manifests, embedded at build time: the same files
//! `kubectl apply -k manifests/install` applies, so the two ways to install
//! cannot drift apart (a test compares this list with the kustomizations).

use anyhow::Context as _;
use kube::api::DynamicObject;
use serde::Deserialize as _;

/// Every file of `manifests/install` and the CRDs it includes (paths
/// relative to `manifests/`), with its text. The order does not matter:
/// [`objects`] sorts by kind.
pub(super) const FILES: &[(&str, &str)] = &[
    (
        "crds/authorizationpolicies.braid.dev.yaml",
        include_str!("../../../../manifests/crds/authorizationpolicies.braid.dev.yaml"),
    ),
    (
        "crds/peerauthentications.braid.dev.yaml",
        include_str!("../../../../manifests/crds/peerauthentications.braid.dev.yaml"),
    ),
    (
        "install/namespace.yaml",
        include_str!("../../../../manifests/install/namespace.yaml"),
    ),
    (
        "install/control-plane-rbac.yaml",
        include_str!("../../../../manifests/install/control-plane-rbac.yaml"),
    ),
    (
        "install/node-rbac.yaml",
        include_str!("../../../../manifests/install/node-rbac.yaml"),
    ),
    (
        "install/control-plane.yaml",
        include_str!("../../../../manifests/install/control-plane.yaml"),
    ),
    (
        "install/node.yaml",
        include_str!("../../../../manifests/install/node.yaml"),
    ),
    (
        "install/webhook.yaml",
        include_str!("../../../../manifests/install/webhook.yaml"),
    ),
];

/// Every object of [`FILES`], in the order they must be applied. An error
/// here is a build defect: the files are checked in and tested.
pub(super) fn objects() -> anyhow::Result<Vec<DynamicObject>> {
    let mut objects = Vec::new();
    for (file, text) in FILES {
        for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let context = || format!("embedded manifest {file}, document {index}");
            let value = serde_json::Value::deserialize(document).with_context(context)?;
            if value.is_null() {
                continue;
            }
            let object: DynamicObject = serde_json::from_value(value).with_context(context)?;
            if object.types.is_none() || object.metadata.name.is_none() {
                anyhow::bail!("{}: no apiVersion, kind or metadata.name", context());
            }
            objects.push(object);
        }
    }
    objects.sort_by_key(|o| rank(kind_of(o)));
    Ok(objects)
}

/// The object's kind (empty when it has none; [`objects`] refuses those).
pub(super) fn kind_of(object: &DynamicObject) -> &str {
    object.types.as_ref().map_or("", |t| t.kind.as_str())
}

/// Apply order: definitions before their users, the namespace before what
/// lives in it, accounts and permissions before the pods that use them,
/// and the webhook last, so the API server calls it only once the Service
/// it points to exists.
fn rank(kind: &str) -> u8 {
    match kind {
        "CustomResourceDefinition" => 0,
        "Namespace" => 1,
        "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding" => 2,
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => 4,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, path::Path};

    use super::*;

    /// `resources` of a kustomization file.
    fn resources(path: &Path) -> Vec<String> {
        #[derive(serde::Deserialize)]
        struct Kustomization {
            resources: Vec<String>,
        }
        let text = std::fs::read_to_string(path).expect("read kustomization");
        let k: Kustomization = serde_yaml_ng::from_str(&text).expect("parse kustomization");
        k.resources
    }

    /// Every file `kubectl apply -k manifests/install` applies, relative to
    /// `manifests/`, following directory bases one level deep.
    fn kustomized_files() -> BTreeSet<String> {
        let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests");
        let mut files = BTreeSet::new();
        for resource in resources(&manifests.join("install/kustomization.yaml")) {
            let path = manifests.join("install").join(&resource);
            if path.is_dir() {
                let base = Path::new("install").join(&resource);
                let base = base.strip_prefix("install/..").unwrap_or(&base).to_owned();
                for file in resources(&path.join("Kustomization")) {
                    files.insert(base.join(file).display().to_string());
                }
            } else {
                files.insert(format!("install/{resource}"));
            }
        }
        files
    }

    #[test]
    fn every_kustomized_file_is_embedded() {
        let embedded: BTreeSet<String> = FILES.iter().map(|(f, _)| f.to_string()).collect();
        assert_eq!(
            embedded,
            kustomized_files(),
            "crates/braidctl/src/install/manifests.rs FILES must list exactly the files of manifests/install/kustomization.yaml"
        );
    }

    #[test]
    fn objects_come_in_apply_order() {
        let objects = objects().expect("embedded manifests parse");
        let kinds: Vec<&str> = objects.iter().map(kind_of).collect();
        assert_eq!(kinds.first(), Some(&"CustomResourceDefinition"));
        assert_eq!(kinds.last(), Some(&"MutatingWebhookConfiguration"));
        let position = |kind| kinds.iter().position(|k| *k == kind).expect(kind);
        assert!(position("Namespace") < position("ServiceAccount"));
        assert!(position("ClusterRoleBinding") < position("Deployment"));
        assert!(position("Service") < position("MutatingWebhookConfiguration"));
    }

    #[test]
    fn the_control_plane_image_matches_the_injected_proxy_version() {
        let objects = objects().expect("embedded manifests parse");
        let deployment = objects
            .iter()
            .find(|o| kind_of(o) == "Deployment")
            .expect("a Deployment");
        let image = deployment.data["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .expect("an image");
        assert_eq!(
            image,
            concat!("braid/braid-control:", env!("CARGO_PKG_VERSION"))
        );
    }
}
