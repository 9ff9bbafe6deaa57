//! The webhook's edge: an `AdmissionReview` (admission.k8s.io/v1) request
//! body in, an `AdmissionReview` response body out.
//!
//! The request is read with kube's types. The response is our own small
//! struct: kube's `AdmissionResponse` encodes the patch as an array of
//! numbers, where the API documents a base64 string.

use k8s_openapi::{ByteString, api::core::v1::Pod};
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionReview, Operation},
};
use serde::Serialize;
use serde_json::Value;

use super::{
    InjectConfig,
    patch::{Decision, NamespaceMode, inject},
};
use crate::index::NamespaceModes;

/// The only `apiVersion` the webhook speaks (register it with
/// `admissionReviewVersions: ["v1"]`).
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// The request body is not an `AdmissionReview`: answered with HTTP 400.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body does not parse as an `AdmissionReview`.
    #[error("the body is not an AdmissionReview ({API_VERSION}): {0}")]
    NotAReview(#[source] serde_json::Error),
    /// It parses, but `apiVersion` or `kind` is wrong.
    #[error(
        "expected apiVersion {API_VERSION:?} and kind \"AdmissionReview\", got {api_version:?} and {kind:?}"
    )]
    WrongType {
        /// The `apiVersion` sent.
        api_version: String,
        /// The `kind` sent.
        kind: String,
    },
    /// It has no `request`.
    #[error("the AdmissionReview has no request")]
    NoRequest,
    /// The response could not be encoded (a bug: answered with HTTP 500).
    #[error("cannot encode the AdmissionReview response: {0}")]
    Encode(#[source] serde_json::Error),
}

/// What the webhook answered (for logs and metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A patch was returned.
    Injected,
    /// The object was admitted unchanged, for this reason.
    Skipped(String),
}

/// An `AdmissionReview` response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewResponse {
    api_version: &'static str,
    kind: &'static str,
    response: Response,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    uid: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    /// Base64 of the JSON Patch document (`ByteString` serializes so).
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<ByteString>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// Answers one `AdmissionReview` body: the response body and what happened.
/// Every valid review is allowed; only a body that is not a review is an error.
pub fn review(
    body: &[u8],
    config: &InjectConfig,
    namespaces: &NamespaceModes,
) -> Result<(Vec<u8>, Outcome), ReviewError> {
    let mut value: Value = serde_json::from_slice(body).map_err(ReviewError::NotAReview)?;
    // The object is read on its own, so a malformed pod admits the pod
    // rather than failing the whole review.
    let object = value
        .get_mut("request")
        .and_then(Value::as_object_mut)
        .and_then(|request| request.remove("object"));
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_value(value).map_err(ReviewError::NotAReview)?;
    if review.types.api_version != API_VERSION || review.types.kind != "AdmissionReview" {
        return Err(ReviewError::WrongType {
            api_version: review.types.api_version,
            kind: review.types.kind,
        });
    }
    let request: AdmissionRequest<DynamicObject> =
        review.try_into().map_err(|_| ReviewError::NoRequest)?;
    let decision = decide(&request, object, config, namespaces);
    let mut response = Response {
        uid: request.uid.clone(),
        allowed: true,
        patch_type: None,
        patch: None,
        warnings: Vec::new(),
    };
    let outcome = match decision {
        Decision::Inject(ops) => {
            // Serializing our own `Operation`s cannot fail.
            response.patch = serde_json::to_vec(&ops).ok().map(ByteString);
            response.patch_type = Some("JSONPatch");
            Outcome::Injected
        }
        Decision::Skip { reason, warning } => {
            response
                .warnings
                .extend(warning.map(|w| format!("braid: {w}")));
            Outcome::Skipped(reason)
        }
    };
    let body = serde_json::to_vec(&ReviewResponse {
        api_version: API_VERSION,
        kind: "AdmissionReview",
        response,
    })
    .map_err(ReviewError::Encode)?;
    Ok((body, outcome))
}

/// The decision for a request whose `object` was taken out as `object`.
fn decide(
    request: &AdmissionRequest<DynamicObject>,
    object: Option<Value>,
    config: &InjectConfig,
    namespaces: &NamespaceModes,
) -> Decision {
    let skip = |reason: String, warning: Option<String>| Decision::Skip { reason, warning };
    let kind = &request.kind;
    if (kind.group.as_str(), kind.kind.as_str()) != ("", "Pod") || request.sub_resource.is_some() {
        return skip(format!("not a Pod: {}/{}", kind.group, kind.kind), None);
    }
    if !matches!(request.operation, Operation::Create) {
        return skip(format!("operation {:?}", request.operation), None);
    }
    let Some(object) = object else {
        return skip("no object".to_string(), None);
    };
    let pod: Pod = match serde_json::from_value(object) {
        Ok(pod) => pod,
        Err(e) => {
            return skip(
                format!("malformed pod: {e}"),
                Some(format!("cannot read the pod ({e}); sidecar not injected")),
            );
        }
    };
    // Pods are often created by controllers without a namespace in the
    // object; the request always has it.
    let namespace = request
        .namespace
        .as_deref()
        .or(pod.metadata.namespace.as_deref())
        .unwrap_or_default();
    let mode = match namespaces.get(namespace) {
        Some(mode) => NamespaceMode::Known(*mode),
        None => NamespaceMode::Unknown,
    };
    inject(&pod, config, mode)
}
