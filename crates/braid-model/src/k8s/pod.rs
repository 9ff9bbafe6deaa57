//! Pod -> Workload. (Stub: being written.)
use k8s_openapi::api::core::v1::{Namespace, Pod};

use super::{FieldError, MeshSettings};
use crate::Workload;

pub(super) fn workload_from_pod(
    _pod: &Pod,
    _namespace: Option<&Namespace>,
    _settings: &MeshSettings,
) -> Result<Option<Workload>, FieldError> {
    Err(FieldError::new("", "not implemented yet"))
}
