//! In-process tests of HTTPRoute end to end: a Gateway API YAML file in the
//! configuration directory → index (backends looked up among the
//! namespace's Services) → Delta xDS → `braid-xds` (the client every proxy
//! uses) as a `braid_model::HttpRoute`; a broken edit keeps the last good
//! route serving and shows up in the config errors.

mod support;

use std::time::Duration;

use braid_model::{HttpRoute, route::RouteParent};
use braid_xds::{Backoff, Client, ClientHandle, Delta, NodeInfo, Subscription};
use support::*;

/// The canary route: web-v1 and web-v2 behind Service `web`, with `rest`
/// appended to the rule (more backendRefs or filters).
fn route(v1: u32, v2: u32, rest: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: canary, namespace: shop}}
spec:
  parentRefs: [{{group: \"\", kind: Service, name: web, port: 80}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /api}}}}]
    backendRefs:
    - {{name: web-v1, port: 80, weight: {v1}}}
    - {{name: web-v2, port: 80, weight: {v2}}}
{rest}"
    )
}

fn services() -> String {
    [
        service("shop", "web", "web", "198.19.0.1"),
        service("shop", "web-v1", "web-v1", "198.19.0.2"),
        service("shop", "web-v2", "web-v2", "198.19.0.3"),
    ]
    .join("---\n")
}

/// A braid-xds client holding every HTTPRoute.
fn routes_client(h: &Harness) -> anyhow::Result<(ClientHandle, tokio::task::JoinHandle<()>)> {
    let client = Client::builder(
        format!("http://{}", h.cp.xds_addr()),
        NodeInfo::new("sidecar~a"),
    )
    .backoff(Backoff::new(
        Duration::from_millis(20),
        Duration::from_millis(200),
    ))
    .watch::<HttpRoute>(Subscription::Wildcard, |_: Delta<HttpRoute>| {})
    .build()?;
    Ok(client.spawn())
}

/// The weights of the held route `shop/canary`, if held.
fn weights(handle: &ClientHandle) -> Option<Vec<u32>> {
    let store = handle.store::<HttpRoute>()?;
    let held = store.get("shop/canary")?;
    Some(
        held.value.rules[0]
            .backends
            .iter()
            .map(|b| b.weight)
            .collect(),
    )
}

#[tokio::test]
async fn an_http_route_in_yaml_reaches_the_client_and_a_broken_edit_keeps_it() -> anyhow::Result<()>
{
    let h = Harness::start(
        &[
            ("services.yaml", services()),
            ("routes.yaml", route(90, 10, "")),
        ],
        |_| {},
    )
    .await?;
    let (handle, task) = routes_client(&h)?;
    eventually(|| async { weights(&handle) == Some(vec![90, 10]) }).await?;
    let store = handle.store::<HttpRoute>().expect("watched");
    let held = store.get("shop/canary").expect("held").value;
    assert_eq!(
        held.parents,
        [RouteParent::Service {
            service: braid_model::ServiceRef::new("shop", "web"),
            port: Some(80)
        }]
    );
    assert!(held.rules[0].backends.iter().all(|b| b.invalid.is_none()));
    assert!(
        h.cp.config_errors().is_empty(),
        "{:?}",
        h.cp.config_errors()
    );

    // A CORS filter is not supported: the file is refused, reported with
    // the field and the reason, and the old route keeps serving.
    let cors = "    filters: [{type: CORS, cors: {allowOrigins: ['*']}}]\n";
    h.write("routes.yaml", &route(50, 50, cors))?;
    eventually(|| async { !h.cp.config_errors().is_empty() }).await?;
    let errors = h.cp.config_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].file.ends_with("routes.yaml"), "{errors:?}");
    assert_eq!(errors[0].document, Some(0));
    assert_eq!(errors[0].field, "spec.rules[0].filters[0].type");
    assert!(
        errors[0]
            .message
            .starts_with("UnsupportedValue: filters of type CORS"),
        "{errors:?}"
    );
    assert_eq!(
        weights(&handle),
        Some(vec![90, 10]),
        "the last good route serves"
    );

    // The fix goes through, so the client was listening all along.
    h.write("routes.yaml", &route(50, 50, ""))?;
    eventually(|| async { weights(&handle) == Some(vec![50, 50]) }).await?;
    eventually(|| async { h.cp.config_errors().is_empty() }).await?;

    handle.shutdown();
    let _ = task.await;
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_backend_without_a_service_is_served_invalid_and_reported() -> anyhow::Result<()> {
    let extra = "    - {name: web-v3, port: 80, weight: 5}\n";
    let h = Harness::start(
        &[
            ("services.yaml", services()),
            ("routes.yaml", route(90, 10, extra)),
        ],
        |_| {},
    )
    .await?;
    let (handle, task) = routes_client(&h)?;
    eventually(|| async { weights(&handle) == Some(vec![90, 10, 5]) }).await?;
    let store = handle.store::<HttpRoute>().expect("watched");
    let held = store.get("shop/canary").expect("held").value;
    let invalid = held.rules[0].backends[2]
        .invalid
        .clone()
        .unwrap_or_default();
    assert!(
        invalid.starts_with("BackendNotFound: there is no Service shop/web-v3"),
        "{invalid}"
    );
    assert!(
        held.rules[0].backends[..2]
            .iter()
            .all(|b| b.invalid.is_none())
    );

    let errors = h.cp.config_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].file.display().to_string(),
        "HTTPRoute shop/canary (ResolvedRefs)"
    );
    assert_eq!(errors[0].field, "spec.rules[0].backendRefs[2]");
    assert!(
        errors[0].message.contains("reason BackendNotFound"),
        "{errors:?}"
    );

    // The Service appears: the backend resolves and the report goes away.
    h.write(
        "more.yaml",
        &service("shop", "web-v3", "web-v3", "198.19.0.4"),
    )?;
    eventually(|| async {
        let held = store.get("shop/canary");
        held.is_some_and(|r| {
            r.value.rules[0]
                .backends
                .iter()
                .all(|b| b.invalid.is_none())
        })
    })
    .await?;
    eventually(|| async { h.cp.config_errors().is_empty() }).await?;

    handle.shutdown();
    let _ = task.await;
    h.cp.shutdown().await;
    Ok(())
}
