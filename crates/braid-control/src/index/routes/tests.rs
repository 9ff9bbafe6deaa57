use braid_api::braid::route::v1alpha1 as wire;
use braid_model::{HttpRoute, k8s::MeshSettings, route::Filter};
use prost::Message as _;

use crate::{
    index::{
        Index,
        testing::{load, publish},
    },
    snapshot::{ResourceType, Snapshot},
    source::{Change, Kind, ObjectKey},
};

/// The route as a proxy gets it: decoded and converted like the client does.
fn route(s: &Snapshot, name: &str) -> Option<HttpRoute> {
    let r = s.resources(ResourceType::HttpRoute).get(name)?;
    let proto = wire::HttpRoute::decode(r.body.value.as_slice()).expect("decodes");
    Some(HttpRoute::try_from(proto).expect("converts"))
}

fn service(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec: {{clusterIP: 198.19.0.{port}, ports: [{{port: {port}}}]}}\n---\n"
    )
}

const ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}
    backendRefs:
    - {name: web-v1, port: 80, weight: 90}
    - {name: web-v2, port: 80, weight: 10}
"#;

#[test]
fn a_route_is_published_with_its_backends_resolved() {
    let mut index = Index::new(MeshSettings::default());
    let services = ["web", "web-v1", "web-v2", "shadow"]
        .map(|s| service(s, 80))
        .concat();
    load(&mut index, &format!("{services}{ROUTE}"));
    let s = publish(&mut index, &Snapshot::default());
    let r = route(&s, "shop/canary").expect("route published");
    let backends: Vec<_> = r.rules[0]
        .backends
        .iter()
        .map(|b| (b.service.name.as_str(), b.weight, b.invalid.clone()))
        .collect();
    assert_eq!(backends, [("web-v1", 90, None), ("web-v2", 10, None)]);
    assert!(matches!(&r.rules[0].filters[..], [Filter::Mirror(m)] if m.service.name == "shadow"));
    assert!(index.take_config_errors().is_empty(), "nothing to report");
}

#[test]
fn unknown_backends_get_invalid_and_backend_not_found_until_the_service_exists() {
    let mut index = Index::new(MeshSettings::default());
    // web-v2 is missing, web-v1 has another port, and so has no mirror.
    load(
        &mut index,
        &format!("{}{}{ROUTE}", service("web", 80), service("web-v1", 81)),
    );
    let s1 = publish(&mut index, &Snapshot::default());
    let r = route(&s1, "shop/canary").expect("served although backends do not resolve");
    let invalid: Vec<_> = r.rules[0]
        .backends
        .iter()
        .map(|b| b.invalid.clone().unwrap_or_default())
        .collect();
    assert!(
        invalid[0]
            .starts_with("BackendNotFound: Service shop/web-v1 has no port 80 (its ports: 81)"),
        "{invalid:?}"
    );
    assert!(
        invalid[1].starts_with("BackendNotFound: there is no Service shop/web-v2"),
        "{invalid:?}"
    );
    assert!(
        r.rules[0].filters.is_empty(),
        "a mirror to nowhere is dropped"
    );

    let errors = index.take_config_errors();
    let path = super::problems_path("shop", "canary");
    assert_eq!(
        path.display().to_string(),
        "HTTPRoute shop/canary (ResolvedRefs)"
    );
    let reported = &errors[&path];
    let fields: Vec<&str> = reported.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.rules[0].filters[0].requestMirror.backendRef",
            "spec.rules[0].backendRefs[0]",
            "spec.rules[0].backendRefs[1]",
        ]
    );
    assert!(
        reported
            .iter()
            .all(|e| e.message.contains("reason BackendNotFound")),
        "{reported:?}"
    );
    // Nothing new to report while nothing changes.
    load(&mut index, &service("unrelated", 80));
    let s2 = publish(&mut index, &s1);
    assert!(index.take_config_errors().is_empty());

    // The Services appear: the route resolves and the report is cleared.
    load(
        &mut index,
        &["web-v1", "web-v2", "shadow"]
            .map(|s| service(s, 80))
            .concat(),
    );
    let s3 = publish(&mut index, &s2);
    let r = route(&s3, "shop/canary").expect("route");
    assert!(r.rules[0].backends.iter().all(|b| b.invalid.is_none()));
    assert_eq!(r.rules[0].filters.len(), 1);
    let errors = index.take_config_errors();
    assert_eq!(errors.get(&path), Some(&Vec::new()), "cleared: {errors:?}");
}

#[test]
fn problems_found_at_the_edge_are_reported_by_the_index_too() {
    let mut index = Index::new(MeshSettings::default());
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: shop}\nspec:\n  rules: [{backendRefs: [{name: api, namespace: other, port: 80}, {kind: Bucket, group: example.com, name: b}]}]\n";
    load(&mut index, yaml);
    let s = publish(&mut index, &Snapshot::default());
    let r = route(&s, "shop/r").expect("route");
    assert!(
        r.rules[0].backends[0]
            .invalid
            .as_deref()
            .is_some_and(|i| i.starts_with("RefNotPermitted"))
    );
    assert!(
        r.rules[0].backends[1]
            .invalid
            .as_deref()
            .is_some_and(|i| i.starts_with("InvalidKind"))
    );
    let errors = index.take_config_errors();
    let reported = &errors[&super::problems_path("shop", "r")];
    assert!(
        reported[0].message.contains("reason RefNotPermitted"),
        "{reported:?}"
    );
    assert!(
        reported[1].message.contains("reason InvalidKind"),
        "{reported:?}"
    );
}

#[test]
fn a_deleted_route_is_unpublished_and_its_report_cleared() {
    let mut index = Index::new(MeshSettings::default());
    load(&mut index, ROUTE);
    let s1 = publish(&mut index, &Snapshot::default());
    assert!(route(&s1, "shop/canary").is_some());
    assert!(!index.take_config_errors().is_empty());
    index.apply(Change::Delete(ObjectKey {
        kind: Kind::HttpRoute,
        namespace: "shop".into(),
        name: "canary".into(),
    }));
    let s2 = publish(&mut index, &s1);
    assert!(route(&s2, "shop/canary").is_none());
    assert!(
        s2.changed_since(ResourceType::HttpRoute, 1)
            .is_some_and(|n| n.contains("shop/canary"))
    );
    let errors = index.take_config_errors();
    assert_eq!(
        errors.get(&super::problems_path("shop", "canary")),
        Some(&Vec::new())
    );
}
