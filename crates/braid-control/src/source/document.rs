//! Parsing YAML text into validated [`KubeObject`]s.
//!
//! A file is all-or-nothing: every document must parse and validate, or the
//! file is rejected with one error per bad document (file, document index,
//! field) and its last good version keeps serving.

use std::sync::Arc;

use braid_model::k8s::{self, FieldError, MeshSettings};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
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
        ("v1", "Namespace") => KubeObject::Namespace(typed(value, prefix)?),
        ("v1", "Pod") => KubeObject::Pod(typed(value, prefix)?),
        ("v1", "Service") => KubeObject::Service(typed(value, prefix)?),
        ("v1", "ServiceAccount") => KubeObject::ServiceAccount(typed(value, prefix)?),
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            KubeObject::EndpointSlice(typed(value, prefix)?)
        }
        ("braid.dev/v1alpha1", "AuthorizationPolicy") => {
            let mut policy: braid_crd::AuthorizationPolicy = typed(value, prefix)?;
            require_name(&policy.metadata, prefix)?;
            default_namespace(&mut policy.metadata);
            let policy = braid_model::AuthorizationPolicy::try_from(&policy)
                .map_err(|e| prefixed(e, prefix))?;
            KubeObject::AuthorizationPolicy(policy)
        }
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
    let object = validate(object, settings).map_err(|e| prefixed(e, prefix))?;
    let key = key_of(&object).ok_or_else(|| {
        FieldError::new(at("metadata.name"), "missing; every object needs a name")
    })?;
    out.push((key, Arc::new(object)));
    Ok(())
}

/// Fills in defaults and checks the object with the same translation the
/// index uses, so errors point at the file instead of surfacing later.
fn validate(mut object: KubeObject, settings: &MeshSettings) -> Result<KubeObject, FieldError> {
    match &mut object {
        KubeObject::Namespace(ns) => {
            require_name(&ns.metadata, "")?;
            k8s::validate_namespace(ns)?;
        }
        KubeObject::Pod(pod) => {
            require_name(&pod.metadata, "")?;
            default_namespace(&mut pod.metadata);
            k8s::workload_from_pod(pod, None, settings)?;
        }
        KubeObject::Service(svc) => {
            require_name(&svc.metadata, "")?;
            default_namespace(&mut svc.metadata);
            k8s::service_from_kube(svc, None, &[], &[], settings)?;
        }
        KubeObject::ServiceAccount(sa) => {
            require_name(&sa.metadata, "")?;
            default_namespace(&mut sa.metadata);
        }
        KubeObject::EndpointSlice(slice) => {
            require_name(&slice.metadata, "")?;
            default_namespace(&mut slice.metadata);
            k8s::validate_endpoint_slice(slice)?;
        }
        // Translated (and checked) while parsing.
        KubeObject::AuthorizationPolicy(_) => {}
    }
    Ok(object)
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
    let (namespace, name) = match object {
        KubeObject::Namespace(o) => (String::new(), o.metadata.name.clone()),
        KubeObject::Pod(o) => (
            o.metadata.namespace.clone().unwrap_or_default(),
            o.metadata.name.clone(),
        ),
        KubeObject::Service(o) => (
            o.metadata.namespace.clone().unwrap_or_default(),
            o.metadata.name.clone(),
        ),
        KubeObject::EndpointSlice(o) => (
            o.metadata.namespace.clone().unwrap_or_default(),
            o.metadata.name.clone(),
        ),
        KubeObject::ServiceAccount(o) => (
            o.metadata.namespace.clone().unwrap_or_default(),
            o.metadata.name.clone(),
        ),
        KubeObject::AuthorizationPolicy(p) => (p.namespace.clone(), Some(p.name.clone())),
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
