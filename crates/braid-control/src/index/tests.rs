use std::sync::Arc;

use braid_api::braid::{security::v1alpha1 as sec, workload::v1alpha1 as wl};
use prost::Message as _;

use super::*;
use crate::index::testing::{load, publish};

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

fn peer_authentication(ns: &str, name: &str, mode: &str) -> String {
    format!(
        "apiVersion: braid.dev/v1alpha1\nkind: PeerAuthentication\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{mtls: {{mode: {mode}}}}}\n"
    )
}

fn peer_mode(s: &Snapshot, name: &str) -> Option<sec::MtlsMode> {
    let r = s.resources(ResourceType::PeerAuthentication).get(name)?;
    let p = sec::PeerAuthentication::decode(r.body.value.as_slice()).expect("decodes");
    Some(p.mode())
}

#[test]
fn peer_authentications_are_served_per_namespace_as_they_are() {
    let mut index = Index::new(MeshSettings::default());
    load(
        &mut index,
        &format!(
            "{}---\n{}---\n{POD}",
            peer_authentication("braid-system", "mesh", "STRICT"),
            peer_authentication("shop", "legacy-clients", "PERMISSIVE"),
        ),
    );
    let s1 = publish(&mut index, &Snapshot::default());
    let names: Vec<_> = s1
        .resources(ResourceType::PeerAuthentication)
        .keys()
        .cloned()
        .collect();
    assert_eq!(names, ["braid-system/mesh", "shop/legacy-clients"]);
    assert_eq!(
        peer_mode(&s1, "braid-system/mesh"),
        Some(sec::MtlsMode::Strict)
    );

    // A mesh-wide change is one resource of the root namespace: nothing in
    // other namespaces is recomputed into a change.
    load(
        &mut index,
        &peer_authentication("braid-system", "mesh", "PERMISSIVE"),
    );
    let s2 = publish(&mut index, &s1);
    let changed = s2
        .changed_since(ResourceType::PeerAuthentication, 1)
        .expect("history");
    assert_eq!(
        changed.into_iter().collect::<Vec<_>>(),
        ["braid-system/mesh"]
    );
    assert!(
        s2.changed_since(ResourceType::Workload, 1)
            .expect("history")
            .is_empty()
    );
    assert_eq!(
        peer_mode(&s2, "braid-system/mesh"),
        Some(sec::MtlsMode::Permissive)
    );

    index.apply(Change::Delete(ObjectKey {
        kind: Kind::PeerAuthentication,
        namespace: "shop".into(),
        name: "legacy-clients".into(),
    }));
    let s3 = publish(&mut index, &s2);
    assert_eq!(peer_mode(&s3, "shop/legacy-clients"), None);
    assert!(
        s3.changed_since(ResourceType::PeerAuthentication, 2)
            .expect("history")
            .contains("shop/legacy-clients")
    );
}

#[test]
fn namespace_modes_follow_namespace_labels() {
    let mut index = Index::new(MeshSettings::default());
    assert_eq!(
        index.namespace_modes(),
        Some(NamespaceModes::new()),
        "first call publishes"
    );
    assert_eq!(index.namespace_modes(), None, "nothing changed");
    load(
        &mut index,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {braid.dev/mode: sidecar}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n",
    );
    load(&mut index, POD);
    let modes = index.namespace_modes().expect("namespaces changed");
    assert_eq!(modes.get("shop"), Some(&Some(DataPlaneMode::Sidecar)));
    assert_eq!(modes.get("plain"), Some(&None));
    load(&mut index, POD);
    assert_eq!(
        index.namespace_modes(),
        None,
        "pods do not touch namespaces"
    );
    index.apply(Change::Delete(ObjectKey {
        kind: Kind::Namespace,
        namespace: String::new(),
        name: "shop".to_string(),
    }));
    let modes = index.namespace_modes().expect("a namespace went away");
    assert_eq!(modes.get("shop"), None);
}
