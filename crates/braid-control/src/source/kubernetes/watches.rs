//! The edge of the Kubernetes source: one kube-rs watcher per kind, each
//! object converted on arrival with the same functions the YAML source uses
//! (`document`), so both sources validate identically.

use std::{fmt::Debug, sync::Arc};

use braid_model::k8s::{FieldError, MeshSettings};
use futures::{StreamExt as _, stream::BoxStream};
use k8s_openapi::api::{
    core::v1::{Namespace, Pod, Secret, Service, ServiceAccount},
    discovery::v1::EndpointSlice,
};
use kube::{
    Api, Client, Resource, ResourceExt as _,
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
];

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
