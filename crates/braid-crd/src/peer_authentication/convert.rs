//! `PeerAuthentication` CRD → `braid_model::PeerAuthentication`.
//!
//! This is the complete validation (the file source has no API server); the
//! mode's values are already checked by deserialization, so what is left is
//! the name and the selector.

use braid_model::k8s::FieldError;

use super::PeerAuthentication;
use crate::{DEFAULT_NAMESPACE, selector::selector_labels};

// === impl PeerAuthentication ===

impl TryFrom<&PeerAuthentication> for braid_model::PeerAuthentication {
    type Error = FieldError;

    /// Translates the CRD into the model. A missing namespace means
    /// `default`; errors name the first invalid field
    /// (`spec.selector.matchExpressions`).
    fn try_from(crd: &PeerAuthentication) -> Result<Self, FieldError> {
        let name = match crd.metadata.name.as_deref() {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => return Err(FieldError::new("metadata.name", "is required")),
        };
        let namespace = match crd.metadata.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns.to_string(),
            _ => DEFAULT_NAMESPACE.to_string(),
        };
        let selector = match &crd.spec.selector {
            Some(selector) => selector_labels(selector)?,
            None => None,
        };
        Ok(Self {
            name,
            namespace,
            selector,
            mode: crd.spec.mtls.mode.into(),
        })
    }
}
