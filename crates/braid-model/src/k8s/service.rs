//! Service -> Service. (Stub: being written.)
use k8s_openapi::api::{
    core::v1::{Namespace, Pod, Service as KubeService},
    discovery::v1::EndpointSlice,
};

use super::{FieldError, MeshSettings};
use crate::Service;

pub(super) fn service_from_kube(
    _service: &KubeService,
    _namespace: Option<&Namespace>,
    _pods: &[&Pod],
    _slices: &[&EndpointSlice],
    _settings: &MeshSettings,
) -> Result<Service, FieldError> {
    Err(FieldError::new("", "not implemented yet"))
}
