use std::collections::BTreeMap;

use braid_crd::gateway::{GATEWAY_NAME_LABEL, Waypoint};

use super::objects;
use crate::inject::InjectConfig;

fn waypoint() -> Waypoint {
    Waypoint {
        namespace: "shop".to_string(),
        name: "wp".to_string(),
        labels: BTreeMap::from([("team".to_string(), "a".to_string())]),
        annotations: BTreeMap::new(),
    }
}

#[test]
fn every_object_is_named_after_the_gateway_and_owned_by_it() {
    let objects = objects(&waypoint(), "uid-1", &InjectConfig::defaults());
    for meta in [
        &objects.service_account.metadata,
        &objects.service.metadata,
        &objects.deployment.metadata,
    ] {
        assert_eq!(meta.name.as_deref(), Some("wp"));
        assert_eq!(meta.namespace.as_deref(), Some("shop"));
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Gateway", "wp", "uid-1")
        );
        assert_eq!(owner.api_version, "gateway.networking.k8s.io/v1");
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels[GATEWAY_NAME_LABEL], "wp");
        assert_eq!(labels["team"], "a", "infrastructure labels are kept");
    }
}

#[test]
fn the_service_selects_the_deployments_pods_on_15008() {
    let objects = objects(&waypoint(), "uid-1", &InjectConfig::defaults());
    let service = objects.service.spec.unwrap();
    let deployment = objects.deployment.spec.unwrap();
    let selector = service.selector.unwrap();
    assert_eq!(deployment.selector.match_labels.as_ref(), Some(&selector));
    let pod_labels = deployment.template.metadata.unwrap().labels.unwrap();
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
    let ports = service.ports.unwrap();
    assert_eq!(
        (ports[0].port, ports[0].name.as_deref()),
        (15008, Some("mesh"))
    );
    assert!(
        deployment.replicas.is_none(),
        "replicas are left to kubectl scale"
    );
}

#[test]
fn the_pod_runs_braid_proxy_waypoint_as_the_gateways_account() {
    let config = InjectConfig {
        proxy_image: "registry.example/braid-proxy:1".to_string(),
        ..InjectConfig::defaults()
    };
    let objects = objects(&waypoint(), "uid-1", &config);
    let pod = objects.deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("wp"));
    let [container] = &pod.containers[..] else {
        panic!("one container: {:?}", pod.containers);
    };
    // The name keeps the injector and the ztunnel off the pod, and makes
    // it meshed for its certificate.
    assert_eq!(container.name, braid_model::k8s::SIDECAR_CONTAINER);
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example/braid-proxy:1")
    );
    let args = container.args.as_ref().unwrap();
    assert_eq!(args[0], "waypoint");
    assert_eq!(args[args.len() - 2..], ["--waypoint", "shop/wp"]);
    assert!(container.restart_policy.is_none());
    let volumes: Vec<&str> = pod
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    for mount in container.volume_mounts.iter().flatten() {
        assert!(
            volumes.contains(&mount.name.as_str()),
            "{} has a volume",
            mount.name
        );
    }
}
