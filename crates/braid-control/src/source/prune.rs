//! Drops the parts of objects Braid never reads, at the edge, before they are
//! stored: managed fields, the `kubectl apply` annotation, owner references,
//! status. Pods need none of this: they are kept as the compact
//! [`PodInfo`](braid_model::k8s::PodInfo) instead. Pruning also means an edit
//! that only touches such fields is not a change at all.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::KubeObject;

/// Annotation prefix Braid may read (e.g. injection and capture settings).
const BRAID_ANNOTATION_PREFIX: &str = "braid.dev/";

/// Prunes `object` in place.
pub fn prune(object: &mut KubeObject) {
    match object {
        KubeObject::Namespace(ns) => {
            prune_meta(&mut ns.metadata);
            ns.spec = None;
            ns.status = None;
        }
        KubeObject::Service(svc) => {
            prune_meta(&mut svc.metadata);
            svc.status = None;
        }
        KubeObject::EndpointSlice(slice) => prune_meta(&mut slice.metadata),
        KubeObject::ServiceAccount(sa) => {
            prune_meta(&mut sa.metadata);
            sa.secrets = None;
            sa.image_pull_secrets = None;
        }
        KubeObject::Pod(_)
        | KubeObject::AuthorizationPolicy(_)
        | KubeObject::PeerAuthentication(_)
        | KubeObject::HttpRoute(_)
        | KubeObject::Gateway(_)
        | KubeObject::ProxyToken(_) => {}
    }
}

fn prune_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.owner_references = None;
    meta.finalizers = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.retain(|k, _| k.starts_with(BRAID_ANNOTATION_PREFIX));
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Service;

    use super::*;

    #[test]
    fn metadata_keeps_only_what_braid_reads() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web", "namespace": "shop", "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "braid.dev/waypoint": "wp"},
                "managedFields": [{"manager": "kubectl"}],
                "finalizers": ["x"],
            },
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
            "status": {"loadBalancer": {}},
        }))
        .expect("valid service");
        let mut object = KubeObject::Service(Box::new(svc.clone()));
        prune(&mut object);
        let KubeObject::Service(pruned) = &object else {
            panic!("still a service")
        };
        assert_eq!(pruned.spec, svc.spec, "spec is untouched");
        assert_eq!(pruned.metadata.labels, svc.metadata.labels);
        let json = serde_json::to_string(pruned).expect("serializes");
        for gone in [
            "last-applied",
            "managedFields",
            "finalizers",
            "loadBalancer",
        ] {
            assert!(!json.contains(gone), "{gone} survived: {json}");
        }
        assert!(json.contains("braid.dev/waypoint"));
    }
}
