//! `PeerAuthentication` CRD → `braid_model::PeerAuthentication`.
//!
//! This is the complete validation (the file source has no API server); the
//! mode's values are already checked by deserialization, so what is left is
//! the name and the selector.

use braid_model::k8s::FieldError;

use super::PeerAuthentication;
use crate::selector::{PolicyScope, policy_scope};

// === impl PeerAuthentication ===

impl TryFrom<&PeerAuthentication> for braid_model::PeerAuthentication {
    type Error = FieldError;

    /// Translates the CRD into the model. A missing namespace means
    /// `default`; errors name the first invalid field
    /// (`spec.selector.matchExpressions`).
    fn try_from(crd: &PeerAuthentication) -> Result<Self, FieldError> {
        let PolicyScope {
            name,
            namespace,
            selector,
        } = policy_scope(&crd.metadata, crd.spec.selector.as_ref())?;
        Ok(Self {
            name,
            namespace,
            selector,
            mode: crd.spec.mtls.mode.into(),
        })
    }
}
