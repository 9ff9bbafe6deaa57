use std::sync::Arc;

use braid_api::braid::workload::v1alpha1 as wl;
use prost::Message as _;

use super::*;
use crate::source::document;

fn load(index: &mut Index, yaml: &str) {
    for (key, object) in document::parse(yaml, &MeshSettings::default()).expect("valid test YAML") {
        index.apply(Change::Apply(key, object));
    }
}

fn publish(index: &mut Index, snapshot: &Snapshot) -> Snapshot {
    let updates = index.updates(snapshot);
    snapshot.next(updates).unwrap_or_else(|| snapshot.clone())
}

fn workload(s: &Snapshot, name: &str) -> wl::Workload {
    let r = s
        .resources(ResourceType::Workload)
        .get(name)
        .expect("workload present");
    wl::Workload::decode(r.body.value.as_slice()).expect("decodes")
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web-0, namespace: shop, labels: {app: web}}\nspec: {containers: [{name: app, image: app, ports: [{name: http, containerPort: 8080}]}]}\nstatus: {podIP: 198.18.0.1, conditions: [{type: Ready, status: 'True'}]}\n";
const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {clusterIP: 198.19.0.1, selector: {app: web}, ports: [{port: 80, targetPort: http}]}\n";

#[test]
fn namespace_label_changes_every_workload_mode_in_it() {
    let mut index = Index::new(MeshSettings::default());
    load(&mut index, POD);
    let s1 = publish(&mut index, &Snapshot::default());
    assert_eq!(workload(&s1, "shop/web-0").mode(), wl::DataPlaneMode::None);

    load(
        &mut index,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {braid.dev/mode: ambient}}\n",
    );
    let s2 = publish(&mut index, &s1);
    assert_eq!(s2.version, 2);
    assert_eq!(
        workload(&s2, "shop/web-0").mode(),
        wl::DataPlaneMode::Ambient
    );
    assert_eq!(
        s2.changed_since(ResourceType::Workload, 1).map(|n| n.len()),
        Some(1)
    );
}

#[test]
fn service_endpoints_follow_their_pods() {
    let mut index = Index::new(MeshSettings::default());
    load(&mut index, &format!("{POD}---\n{SVC}"));
    let s1 = publish(&mut index, &Snapshot::default());
    let svc = |s: &Snapshot| {
        let r = s
            .resources(ResourceType::Service)
            .get("shop/web")
            .expect("service");
        wl::Service::decode(r.body.value.as_slice()).expect("decodes")
    };
    assert_eq!(svc(&s1).endpoints.len(), 1);

    index.apply(Change::Delete(ObjectKey {
        kind: Kind::Pod,
        namespace: "shop".into(),
        name: "web-0".into(),
    }));
    let s2 = publish(&mut index, &s1);
    assert!(svc(&s2).endpoints.is_empty());
    assert!(s2.resources(ResourceType::Workload).is_empty());
    let changed = s2.changed_since(ResourceType::Service, 1).expect("history");
    assert!(changed.contains("shop/web"));
}

#[test]
fn unrelated_namespaces_are_not_recomputed_into_changes() {
    let mut index = Index::new(MeshSettings::default());
    load(&mut index, POD);
    let s1 = publish(&mut index, &Snapshot::default());
    load(&mut index, &POD.replace("shop", "other"));
    let s2 = publish(&mut index, &s1);
    let changed = s2
        .changed_since(ResourceType::Workload, 1)
        .expect("history");
    assert_eq!(
        changed.into_iter().collect::<Vec<_>>(),
        vec!["other/web-0".to_string()]
    );
    assert!(Arc::ptr_eq(
        &s1.resources(ResourceType::Workload)["shop/web-0"],
        &s2.resources(ResourceType::Workload)["shop/web-0"]
    ));
}
