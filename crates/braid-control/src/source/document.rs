//! Parsing YAML text into validated [`KubeObject`]s.
//!
//! A file is all-or-nothing: every document must parse and validate, or the
//! file is rejected with one error per bad document (file, document index,
//! field) and its last good version keeps serving.

use std::sync::Arc;

use braid_model::k8s::{self, FieldError, MeshSettings, PodInfo};
use k8s_openapi::{
    api::{
        core::v1::{Namespace, Pod, Secret, Service, ServiceAccount},
        discovery::v1::EndpointSlice,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_yaml_ng::Value;

use super::{KubeObject, ObjectKey};

/// One bad document in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocError {
    /// 0-based document index; `None` when the error is not tied to one.
    pub document: Option<usize>,
    /// Field path, or empty.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The objects of one file, in document order.
pub type Objects = Vec<(ObjectKey, Arc<KubeObject>)>;

/// The kinds this control plane reads, as `(apiVersion, kind)`.
pub const SUPPORTED: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("braid.dev/v1alpha1", "AuthorizationPolicy"),
    ("braid.dev/v1alpha1", "PeerAuthentication"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1", "GatewayClass"),
    ("v1", "Secret"),
    ("v1", "List"),
];

/// Parses every document of `text`. Empty documents are skipped.
pub fn parse(text: &str, settings: &MeshSettings) -> Result<Objects, Vec<DocError>> {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for (index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = match Value::deserialize(doc) {
            Ok(value) => value,
            Err(e) => {
                // After a syntax error the rest of the stream cannot be trusted.
                errors.push(DocError {
                    document: Some(index),
                    field: String::new(),
                    message: format!("invalid YAML: {e}"),
                });
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        if let Err(e) = parse_value(value, "", settings, &mut objects) {
            errors.push(DocError {
                document: Some(index),
                field: e.field,
                message: e.message,
            });
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(errors)
    }
}

fn parse_value(
    value: Value,
    prefix: &str,
    settings: &MeshSettings,
    out: &mut Objects,
) -> Result<(), FieldError> {
    let at = |field: &str| format!("{prefix}{field}");
    let Value::Mapping(map) = &value else {
        return Err(FieldError::new(
            prefix.trim_end_matches('.'),
            "expected a Kubernetes object (a mapping with apiVersion and kind)",
        ));
    };
    let text_field = |name: &str| -> Result<String, FieldError> {
        match map.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err(FieldError::new(at(name), "must be a non-empty string")),
            None => Err(FieldError::new(
                at(name),
                "missing; every object needs apiVersion and kind",
            )),
        }
    };
    let api_version = text_field("apiVersion")?;
    let kind = text_field("kind")?;
    let object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "List") => return parse_list(value, prefix, settings, out),
        ("v1", "Namespace") => namespace(typed(value, prefix)?),
        ("v1", "Pod") => match pod(typed(value, prefix)?) {
            // A finished pod is valid but not a workload (its IP may be reused).
            Ok(None) => return Ok(()),
            Ok(Some(object)) => Ok(object),
            Err(e) => Err(e),
        },
        ("v1", "Service") => service(typed(value, prefix)?, settings),
        ("v1", "ServiceAccount") => service_account(typed(value, prefix)?),
        ("discovery.k8s.io/v1", "EndpointSlice") => endpoint_slice(typed(value, prefix)?),
        ("braid.dev/v1alpha1", "AuthorizationPolicy") => policy(typed(value, prefix)?),
        ("braid.dev/v1alpha1", "PeerAuthentication") => peer_authentication(typed(value, prefix)?),
        ("v1", "Secret") => proxy_token(typed(value, prefix)?),
        ("gateway.networking.k8s.io/v1", "HTTPRoute") => {
            let RouteDocument { metadata, spec } = typed(value, prefix)?;
            http_route(metadata, spec)
        }
        ("gateway.networking.k8s.io/v1", "Gateway") => {
            let RouteDocument { metadata, spec } = typed(value, prefix)?;
            match gateway(metadata, spec) {
                // Another class: another controller's Gateway.
                Ok(None) => return Ok(()),
                Ok(Some(object)) => Ok(object),
                Err(e) => Err(e),
            }
        }
        // GatewayClasses are cluster-wide settings of their controllers;
        // the waypoint class is known by name, so there is nothing to keep.
        ("gateway.networking.k8s.io/v1", "GatewayClass") => return Ok(()),
        _ => {
            let supported: Vec<String> =
                SUPPORTED.iter().map(|(a, k)| format!("{a} {k}")).collect();
            return Err(FieldError::new(
                at("kind"),
                format!(
                    "unsupported object {api_version} {kind}; supported: {}",
                    supported.join(", ")
                ),
            ));
        }
    };
    let mut object = object.map_err(|e| prefixed(e, prefix))?;
    super::prune::prune(&mut object);
    let key = key_of(&object).ok_or_else(|| {
        FieldError::new(at("metadata.name"), "missing; every object needs a name")
    })?;
    out.push((key, Arc::new(object)));
    Ok(())
}

// Each kind: fill in defaults (kubectl's), then check it with the same
// translation the index uses, so errors point at the file instead of
// surfacing later. The Kubernetes source calls the same functions on the
// objects it watches.

pub(crate) fn namespace(ns: Namespace) -> Result<KubeObject, FieldError> {
    require_name(&ns.metadata, "")?;
    k8s::validate_namespace(&ns)?;
    Ok(KubeObject::Namespace(Box::new(ns)))
}

/// Pods are kept only in their compact, validated form; `None` for a
/// finished pod.
pub(crate) fn pod(mut pod: Pod) -> Result<Option<KubeObject>, FieldError> {
    require_name(&pod.metadata, "")?;
    default_namespace(&mut pod.metadata);
    Ok(PodInfo::from_pod(&pod)?.map(KubeObject::Pod))
}

pub(crate) fn service(mut svc: Service, settings: &MeshSettings) -> Result<KubeObject, FieldError> {
    require_name(&svc.metadata, "")?;
    default_namespace(&mut svc.metadata);
    k8s::service_from_kube(&svc, None, &[], &[], settings)?;
    Ok(KubeObject::Service(Box::new(svc)))
}

pub(crate) fn service_account(mut sa: ServiceAccount) -> Result<KubeObject, FieldError> {
    require_name(&sa.metadata, "")?;
    default_namespace(&mut sa.metadata);
    Ok(KubeObject::ServiceAccount(Box::new(sa)))
}

pub(crate) fn endpoint_slice(mut slice: EndpointSlice) -> Result<KubeObject, FieldError> {
    require_name(&slice.metadata, "")?;
    default_namespace(&mut slice.metadata);
    k8s::validate_endpoint_slice(&slice)?;
    Ok(KubeObject::EndpointSlice(Box::new(slice)))
}

/// Only proxy tokens; the Secret itself is not kept.
pub(crate) fn proxy_token(mut secret: Secret) -> Result<KubeObject, FieldError> {
    require_name(&secret.metadata, "")?;
    default_namespace(&mut secret.metadata);
    Ok(KubeObject::ProxyToken(
        super::token::ProxyToken::from_secret(&secret)?,
    ))
}

/// Translated here, at the edge: the CRD's `TryFrom` is its complete check.
pub(crate) fn policy(mut policy: braid_crd::AuthorizationPolicy) -> Result<KubeObject, FieldError> {
    require_name(&policy.metadata, "")?;
    default_namespace(&mut policy.metadata);
    Ok(KubeObject::AuthorizationPolicy(
        braid_model::AuthorizationPolicy::try_from(&policy)?,
    ))
}

/// Translated here, at the edge, like [`policy`].
pub(crate) fn peer_authentication(
    mut policy: braid_crd::PeerAuthentication,
) -> Result<KubeObject, FieldError> {
    require_name(&policy.metadata, "")?;
    default_namespace(&mut policy.metadata);
    Ok(KubeObject::PeerAuthentication(
        braid_model::PeerAuthentication::try_from(&policy)?,
    ))
}

/// An HTTPRoute or Gateway as written: Braid's metadata type, and the spec kept as
/// JSON until `braid-crd` reads it into the `gateway-api` crate's types
/// (which are built on another k8s-openapi, so only their serde is used).
#[derive(Deserialize)]
pub(crate) struct RouteDocument {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: serde_json::Value,
}

/// Translated here, at the edge, like [`policy`]: an HTTPRoute the
/// specification would not accept is an error naming the field and the
/// `Accepted` reason; backends that do not resolve are not (the route is
/// served, the index reports them).
pub(crate) fn http_route(
    mut metadata: ObjectMeta,
    spec: serde_json::Value,
) -> Result<KubeObject, FieldError> {
    require_name(&metadata, "")?;
    default_namespace(&mut metadata);
    let spec = match spec {
        // `spec: {}` and no spec at all mean the same: every field is optional.
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        spec => spec,
    };
    let spec = braid_crd::httproute::spec_from_json(spec)?;
    let route = braid_crd::httproute::http_route(&metadata, &spec)?;
    Ok(KubeObject::HttpRoute(Box::new(route)))
}

/// A Gateway: `None` unless its class is `braid-waypoint`; translated
/// here, at the edge, like [`http_route`] (the same document shape).
pub(crate) fn gateway(
    mut metadata: ObjectMeta,
    spec: serde_json::Value,
) -> Result<Option<KubeObject>, FieldError> {
    require_name(&metadata, "")?;
    default_namespace(&mut metadata);
    let waypoint = braid_crd::gateway::waypoint(&metadata, spec)?;
    Ok(waypoint.map(|w| KubeObject::Gateway(Box::new(w))))
}

fn require_name(meta: &ObjectMeta, prefix: &str) -> Result<(), FieldError> {
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => Ok(()),
        _ => Err(FieldError::new(
            format!("{prefix}metadata.name"),
            "missing; every object needs a name",
        )),
    }
}

fn parse_list(
    value: Value,
    prefix: &str,
    settings: &MeshSettings,
    out: &mut Objects,
) -> Result<(), FieldError> {
    let Value::Mapping(mut map) = value else {
        return Ok(());
    };
    match map.remove("items") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Sequence(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                parse_value(item, &format!("{prefix}items[{i}]."), settings, out)?;
            }
            Ok(())
        }
        Some(_) => Err(FieldError::new(
            format!("{prefix}items"),
            "must be a list of objects",
        )),
    }
}

/// Deserializes into a typed object, naming the failing field.
fn typed<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        FieldError::new(format!("{prefix}{field}"), e.into_inner().to_string())
    })
}

fn prefixed(e: FieldError, prefix: &str) -> FieldError {
    FieldError::new(format!("{prefix}{}", e.field), e.message)
}

/// `kubectl apply` puts namespaced objects without a namespace in "default".
fn default_namespace(meta: &mut ObjectMeta) {
    if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some("default".to_string());
    }
}

/// The key of an object; `None` when it has no name.
pub fn key_of(object: &KubeObject) -> Option<ObjectKey> {
    let namespaced = |meta: &ObjectMeta| {
        (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone(),
        )
    };
    let (namespace, name) = match object {
        KubeObject::Namespace(o) => (String::new(), o.metadata.name.clone()),
        KubeObject::Pod(p) => (p.namespace().to_string(), Some(p.name().to_string())),
        KubeObject::Service(o) => namespaced(&o.metadata),
        KubeObject::EndpointSlice(o) => namespaced(&o.metadata),
        KubeObject::ServiceAccount(o) => namespaced(&o.metadata),
        KubeObject::AuthorizationPolicy(p) => (p.namespace.clone(), Some(p.name.clone())),
        KubeObject::PeerAuthentication(p) => (p.namespace.clone(), Some(p.name.clone())),
        KubeObject::ProxyToken(t) => (t.namespace.clone(), Some(t.name.clone())),
        KubeObject::HttpRoute(r) => (r.route.namespace.clone(), Some(r.route.name.clone())),
        KubeObject::Gateway(w) => (w.namespace.clone(), Some(w.name.clone())),
    };
    let name = name.filter(|n| !n.is_empty())?;
    Some(ObjectKey {
        kind: object.kind(),
        namespace,
        name,
    })
}

#[cfg(test)]
mod tests;
