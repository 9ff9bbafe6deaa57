//! Writing a waypoint's objects: server-side apply of each (field manager
//! `braid-control`, forced, as the status writer writes), so a rerun with
//! the same Gateway changes nothing and fields other managers set (an
//! autoscaler's `replicas`) are left to them.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Service, ServiceAccount},
};
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;

use super::Objects;
use crate::status::FIELD_MANAGER;

/// Applies `objects`, identity first (the pods need their account).
/// The first failure stops and is returned, naming the object.
pub async fn apply(client: &kube::Client, objects: &Objects) -> Result<(), ApplyError> {
    let ns = objects
        .deployment
        .metadata
        .namespace
        .as_deref()
        .unwrap_or_default();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    one(
        &accounts,
        "ServiceAccount",
        &objects.service_account,
        &objects.service_account.metadata.name,
    )
    .await?;
    one(
        &services,
        "Service",
        &objects.service,
        &objects.service.metadata.name,
    )
    .await?;
    one(
        &deployments,
        "Deployment",
        &objects.deployment,
        &objects.deployment.metadata.name,
    )
    .await
}

/// A waypoint object that could not be written.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot apply {kind} {namespace}/{name} for waypoint Gateway {namespace}/{name}: {source}; check the control plane's RBAC for {kind}s"
)]
pub struct ApplyError {
    /// The object's kind.
    pub kind: &'static str,
    /// Its namespace.
    pub namespace: String,
    /// Its name (the Gateway's).
    pub name: String,
    /// What the API server said.
    #[source]
    pub source: kube::Error,
}

async fn one<K>(
    api: &Api<K>,
    kind: &'static str,
    object: &K,
    name: &Option<String>,
) -> Result<(), ApplyError>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let name = name.clone().unwrap_or_default();
    let mut body = serde_json::to_value(object).unwrap_or_default();
    // Server-side apply wants apiVersion and kind in the body.
    if let Some(map) = body.as_object_mut() {
        map.insert("apiVersion".into(), K::api_version(&()).into());
        map.insert("kind".into(), K::kind(&()).into());
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&body))
        .await
        .map(|_| ())
        .map_err(|source| ApplyError {
            kind,
            namespace: object.meta().namespace.clone().unwrap_or_default(),
            name,
            source,
        })
}
