//! The edge of the Kubernetes source: one kube-rs watcher per kind, each
//! object converted on arrival with the same functions the YAML source uses
//! (`document`), so both sources validate identically.
//!
//! HTTPRoutes and Gateways are watched as `DynamicObject`s (the
//! `gateway-api` crate's kube impls are for another kube version) and their
//! `spec` read by `braid-crd`. The Gateway API CRDs are optional: while one
//! is not installed, its watch counts as listed and empty (so the other
//! kinds are served), says so once, and keeps retrying with backoff.

use std::{fmt::Debug, sync::Arc};

use braid_model::k8s::{FieldError, MeshSettings};
use futures::{StreamExt as _, stream::BoxStream};
use k8s_openapi::api::{
    core::v1::{Namespace, Pod, Secret, Service, ServiceAccount},
    discovery::v1::EndpointSlice,
};
use kube::{
    Api, Client, Resource, ResourceExt as _,
    api::{ApiResource, DynamicObject, GroupVersionKind},
    runtime::{WatchStreamExt as _, watcher},
};
use serde::de::DeserializeOwned;

use super::state::{Observed, WatchEvent};
use crate::source::{Kind, KubeObject, ObjectKey, document, token};

/// A kind the control plane watches.
pub trait Watched:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static
{
    /// Its [`Kind`].
    const KIND: Kind;

    /// Narrows the watch on the server (e.g. one Secret type).
    fn config() -> watcher::Config {
        watcher::Config::default()
    }

    /// Converts and validates; `Ok(None)` for an object that is not part of
    /// the mesh.
    fn convert(self, settings: &MeshSettings) -> Result<Option<KubeObject>, FieldError>;
}

/// One item of the merged stream of every watch: which kind, and what its
/// watch said (or why it failed; the watcher retries with backoff).
pub type Item = (Kind, Result<WatchEvent, watcher::Error>);

/// The watches of every kind, merged into one stream.
pub fn all(client: &Client, settings: &MeshSettings) -> BoxStream<'static, Item> {
    futures::stream::select_all([
        watch::<Namespace>(client, settings),
        watch::<Pod>(client, settings),
        watch::<Service>(client, settings),
        watch::<EndpointSlice>(client, settings),
        watch::<ServiceAccount>(client, settings),
        watch::<Secret>(client, settings),
        watch::<braid_crd::AuthorizationPolicy>(client, settings),
        watch::<braid_crd::PeerAuthentication>(client, settings),
        watch_gateway_api(client, Kind::HttpRoute),
        watch_gateway_api(client, Kind::Gateway),
    ])
    .boxed()
}

/// The kinds [`all`] watches.
pub const KINDS: &[Kind] = &[
    Kind::Namespace,
    Kind::Pod,
    Kind::Service,
    Kind::EndpointSlice,
    Kind::ServiceAccount,
    Kind::ProxyToken,
    Kind::AuthorizationPolicy,
    Kind::PeerAuthentication,
    Kind::HttpRoute,
    Kind::Gateway,
];

/// `httproutes.gateway.networking.k8s.io`, version v1.
pub fn http_route_resource() -> ApiResource {
    gateway_api_resource(Kind::HttpRoute)
}

/// The Gateway API resource (version v1) of `kind`: HTTPRoute or Gateway.
pub fn gateway_api_resource(kind: Kind) -> ApiResource {
    let plural = match kind {
        Kind::Gateway => "gateways",
        _ => "httproutes",
    };
    let gvk = GroupVersionKind::gvk(braid_crd::httproute::GATEWAY_GROUP, "v1", kind.as_str());
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

/// The watch of a Gateway API kind (HTTPRoute or Gateway).
fn watch_gateway_api(client: &Client, kind: Kind) -> BoxStream<'static, Item> {
    let api = Api::<DynamicObject>::all_with(client.clone(), &gateway_api_resource(kind));
    let mut missing = false;
    watcher(api, watcher::Config::default())
        .default_backoff()
        .flat_map(move |event| futures::stream::iter(gateway_api_items(kind, event, &mut missing)))
        .boxed()
}

/// What one event of a Gateway API watch becomes; `missing` remembers
/// that the CRD was found absent, so that is said once.
fn gateway_api_items(
    kind: Kind,
    event: Result<watcher::Event<DynamicObject>, watcher::Error>,
    missing: &mut bool,
) -> Vec<Item> {
    let served = match kind {
        Kind::Gateway => "no waypoint Gateways are read",
        _ => "no routes are served",
    };
    match event {
        Err(e) if is_not_found(&e) => {
            if !std::mem::replace(missing, true) {
                tracing::warn!(
                    "the Gateway API {kind} CRD is not installed: {served} until it is (apply the Gateway API standard-channel CRDs); retrying",
                    kind = kind.as_str()
                );
            }
            // No CRD, no objects: a complete, empty list, so the initial
            // sync does not wait for it and objects that went away with
            // the CRD are removed.
            vec![
                (kind, Ok(WatchEvent::Init)),
                (kind, Ok(WatchEvent::InitDone)),
            ]
        }
        Err(e) => vec![(kind, Err(e))],
        Ok(event) => {
            // Every retry starts with `Init`; only a list or a watch event
            // shows the CRD is there.
            if !matches!(event, watcher::Event::Init) && std::mem::take(missing) {
                tracing::info!(
                    kind = kind.as_str(),
                    "the Gateway API CRD is installed now; watching"
                );
            }
            vec![(kind, Ok(translate_dynamic(kind, event)))]
        }
    }
}

/// Whether the API server answered 404: the resource (a CRD) does not exist.
fn is_not_found(error: &watcher::Error) -> bool {
    use watcher::Error as E;
    match error {
        E::InitialListFailed(kube::Error::Api(s))
        | E::WatchStartFailed(kube::Error::Api(s))
        | E::WatchFailed(kube::Error::Api(s)) => s.code == 404,
        E::WatchError(s) => s.code == 404,
        _ => false,
    }
}

fn translate_dynamic(kind: Kind, event: watcher::Event<DynamicObject>) -> WatchEvent {
    match event {
        watcher::Event::Init => WatchEvent::Init,
        watcher::Event::InitApply(object) => WatchEvent::InitApply(observe_dynamic(kind, object)),
        watcher::Event::InitDone => WatchEvent::InitDone,
        watcher::Event::Apply(object) => WatchEvent::Apply(observe_dynamic(kind, object)),
        watcher::Event::Delete(object) => WatchEvent::Delete(dynamic_key(kind, &object)),
    }
}

fn observe_dynamic(kind: Kind, mut object: DynamicObject) -> Observed {
    let key = dynamic_key(kind, &object);
    let generation = object.metadata.generation;
    let spec = object
        .data
        .get_mut("spec")
        .map(serde_json::Value::take)
        .unwrap_or_default();
    let metadata = std::mem::take(&mut object.metadata);
    let converted = match kind {
        Kind::Gateway => document::gateway(metadata, spec),
        _ => document::http_route(metadata, spec).map(Some),
    };
    Observed {
        key,
        generation,
        object: converted.map(|o| o.map(Arc::new)),
    }
}

fn dynamic_key(kind: Kind, object: &DynamicObject) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
    }
}

fn watch<K: Watched>(client: &Client, settings: &MeshSettings) -> BoxStream<'static, Item> {
    let settings = settings.clone();
    watcher(Api::<K>::all(client.clone()), K::config())
        .default_backoff()
        .map(move |event| (K::KIND, event.map(|e| translate::<K>(e, &settings))))
        .boxed()
}

fn translate<K: Watched>(event: watcher::Event<K>, settings: &MeshSettings) -> WatchEvent {
    match event {
        watcher::Event::Init => WatchEvent::Init,
        watcher::Event::InitApply(object) => WatchEvent::InitApply(observe(object, settings)),
        watcher::Event::InitDone => WatchEvent::InitDone,
        watcher::Event::Apply(object) => WatchEvent::Apply(observe(object, settings)),
        watcher::Event::Delete(object) => WatchEvent::Delete(key::<K>(&object)),
    }
}

fn observe<K: Watched>(object: K, settings: &MeshSettings) -> Observed {
    let key = key::<K>(&object);
    let generation = object.meta().generation;
    let object = object.convert(settings).map(|o| {
        o.map(|mut o| {
            crate::source::prune::prune(&mut o);
            Arc::new(o)
        })
    });
    Observed {
        key,
        generation,
        object,
    }
}

fn key<K: Watched>(object: &K) -> ObjectKey {
    ObjectKey {
        kind: K::KIND,
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
    }
}

impl Watched for Namespace {
    const KIND: Kind = Kind::Namespace;
    fn convert(self, _: &MeshSettings) -> Result<Option<KubeObject>, FieldError> {
        document::namespace(self).map(Some)
    }
}

impl Watched for Pod {
    const KIND: Kind = Kind::Pod;
    fn convert(self, _: &MeshSettings) -> Result<Option<KubeObject>, FieldError> {
        document::pod(self)
    }
}

impl Watched for Service {
    const KIND: Kind = Kind::Service;
    fn convert(self, settings: &MeshSettings) -> Result<Option<KubeObject>, FieldError> {
        document::service(self, settings).map(Some)
    }
}

impl Watched for EndpointSlice {
    const KIND: Kind = Kind::EndpointSlice;
    fn convert(self, _: &MeshSettings) -> Result<Option<KubeObject>, FieldError> {
        document::endpoint_slice(self).map(Some)
    }
}

impl Watched for ServiceAccount {
    const KIND: Kind = Kind::ServiceAccount;
    fn convert(self, _: &MeshSettings) -> Result<Option<KubeObject>, FieldError> {
        document::service_account(self).map(Some)
    }
}

/// Only proxy tokens: the server filters by type, so no other Secret (and
/// no other secret material) ever reaches the control plane.
impl Watched for Secret {
    const KIND: Kind = Kind::ProxyToken;
    fn config() -> watcher::Config {
        watcher::Config::default().fields(&format!("type={}", token::SECRET_TYPE))
    }
    fn convert(self, _: &MeshSettings) -> Result<Option<KubeObject>, FieldError> {
        document::proxy_token(self).map(Some)
    }
}

impl Watched for braid_crd::AuthorizationPolicy {
    const KIND: Kind = Kind::AuthorizationPolicy;
    fn convert(self, _: &MeshSettings) -> Result<Option<KubeObject>, FieldError> {
        document::policy(self).map(Some)
    }
}

impl Watched for braid_crd::PeerAuthentication {
    const KIND: Kind = Kind::PeerAuthentication;
    fn convert(self, _: &MeshSettings) -> Result<Option<KubeObject>, FieldError> {
        document::peer_authentication(self).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn api_error(code: u16) -> watcher::Error {
        let mut status = Status::failure(
            "the server could not find the requested resource",
            "NotFound",
        );
        status.code = code;
        watcher::Error::InitialListFailed(kube::Error::Api(status.boxed()))
    }

    fn route(name: &str, spec: serde_json::Value) -> DynamicObject {
        let mut object = DynamicObject::new(name, &http_route_resource()).within("shop");
        object.data = serde_json::json!({ "spec": spec });
        object
    }

    #[test]
    fn a_missing_route_crd_is_an_empty_complete_list_not_an_error() {
        let mut missing = false;
        let items = gateway_api_items(Kind::HttpRoute, Err(api_error(404)), &mut missing);
        assert!(matches!(
            &items[..],
            [
                (Kind::HttpRoute, Ok(WatchEvent::Init)),
                (Kind::HttpRoute, Ok(WatchEvent::InitDone))
            ]
        ));
        assert!(missing);
        // A retry's `Init` does not count as the CRD being back.
        let _ = gateway_api_items(Kind::HttpRoute, Ok(watcher::Event::Init), &mut missing);
        assert!(missing);
        let _ = gateway_api_items(Kind::HttpRoute, Ok(watcher::Event::InitDone), &mut missing);
        assert!(!missing, "a completed list shows the CRD is there");
        // Other errors stay errors: the watch is retried and explained.
        let items = gateway_api_items(Kind::HttpRoute, Err(api_error(403)), &mut missing);
        assert!(matches!(&items[..], [(Kind::HttpRoute, Err(_))]));
    }

    #[test]
    fn routes_are_read_from_the_spec_json() {
        let mut missing = false;
        let good = route(
            "canary",
            serde_json::json!({"rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}),
        );
        let items = gateway_api_items(
            Kind::HttpRoute,
            Ok(watcher::Event::Apply(good)),
            &mut missing,
        );
        let [(Kind::HttpRoute, Ok(WatchEvent::Apply(observed)))] = &items[..] else {
            panic!("an apply: {items:?}");
        };
        assert_eq!(observed.key.to_string(), "HTTPRoute shop/canary");
        let Ok(Some(object)) = &observed.object else {
            panic!("converted: {:?}", observed.object);
        };
        let converted = object.as_http_route().expect("a route");
        assert_eq!(converted.route.rules[0].backends[0].weight, 1);

        let bad = route(
            "bad",
            serde_json::json!({"rules": [{"filters": [{"type": "CORS"}]}]}),
        );
        let items = gateway_api_items(
            Kind::HttpRoute,
            Ok(watcher::Event::Apply(bad)),
            &mut missing,
        );
        let [(_, Ok(WatchEvent::Apply(observed)))] = &items[..] else {
            panic!("an apply: {items:?}");
        };
        let Err(e) = &observed.object else {
            panic!("rejected: {:?}", observed.object);
        };
        assert_eq!(e.field, "spec.rules[0].filters[0].type");
        assert!(e.message.starts_with("UnsupportedValue: "), "{e}");
    }
}
