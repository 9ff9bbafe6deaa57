//! The workload selector every Braid policy kind shares, so they all select
//! alike and report selector errors alike.

use std::collections::BTreeMap;

use braid_model::k8s::FieldError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Pod label selector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// Selects pods carrying all of these labels. An empty selector selects
    /// every pod of the namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,

    /// Not supported yet: a policy using matchExpressions is rejected
    /// (condition Accepted=False, reason Invalid). Use matchLabels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// The model's selector: `None` (the whole namespace) for an empty selector,
/// like an absent one. Errors name `spec.selector.*`.
pub(crate) fn selector_labels(
    selector: &WorkloadSelector,
) -> Result<Option<BTreeMap<String, String>>, FieldError> {
    if !selector.match_expressions.is_empty() {
        return Err(FieldError::new(
            "spec.selector.matchExpressions",
            "is not supported yet; select workloads with matchLabels",
        ));
    }
    if selector.match_labels.is_empty() {
        return Ok(None);
    }
    Ok(Some(selector.match_labels.clone()))
}

/// What every namespaced Braid policy starts with.
pub(crate) struct PolicyScope {
    /// `metadata.name` (required).
    pub(crate) name: String,
    /// `metadata.namespace`, `default` when absent.
    pub(crate) namespace: String,
    /// The selector's labels; `None` selects the whole namespace.
    pub(crate) selector: Option<BTreeMap<String, String>>,
}

/// Reads a policy's [`PolicyScope`]; errors name the field.
pub(crate) fn policy_scope(
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    selector: Option<&WorkloadSelector>,
) -> Result<PolicyScope, FieldError> {
    let name = match metadata.name.as_deref() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => return Err(FieldError::new("metadata.name", "is required")),
    };
    let namespace = match metadata.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns.to_string(),
        _ => crate::DEFAULT_NAMESPACE.to_string(),
    };
    let selector = match selector {
        Some(selector) => selector_labels(selector)?,
        None => None,
    };
    Ok(PolicyScope {
        name,
        namespace,
        selector,
    })
}
