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
