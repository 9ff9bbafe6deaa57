//! The resource types the client can watch: each `braid-model` type knows its
//! wire message and type URL, so a caller names only the model type.

use braid_api::{
    braid::{security::v1alpha1 as sec, workload::v1alpha1 as wl},
    convert::ConvertError,
    envoy::service::discovery::v3 as xds,
    type_url,
};
use braid_model as model;

use crate::ResourceError;

/// A domain type served over Delta xDS.
///
/// Implemented here for every type Braid serves ([`model::Workload`],
/// [`model::Service`], [`model::AuthorizationPolicy`]); a new resource type
/// gets its impl in this file, next to its conversion in `braid-api`.
pub trait Resource: Send + Sync + Sized + 'static {
    /// The protobuf message carried in each resource's `Any`.
    type Proto: prost::Message + Default;

    /// The type URL of the stream and of each `Any`.
    const TYPE_URL: &'static str;

    /// Converts the decoded message to the domain type; an error becomes a
    /// NACK reason.
    fn from_proto(proto: Self::Proto) -> Result<Self, ConvertError>;
}

impl Resource for model::Workload {
    type Proto = wl::Workload;
    const TYPE_URL: &'static str = type_url::WORKLOAD;

    fn from_proto(proto: Self::Proto) -> Result<Self, ConvertError> {
        Self::try_from(proto)
    }
}

impl Resource for model::Service {
    type Proto = wl::Service;
    const TYPE_URL: &'static str = type_url::SERVICE;

    fn from_proto(proto: Self::Proto) -> Result<Self, ConvertError> {
        Self::try_from(proto)
    }
}

impl Resource for model::AuthorizationPolicy {
    type Proto = sec::Authorization;
    const TYPE_URL: &'static str = type_url::AUTHORIZATION;

    fn from_proto(proto: Self::Proto) -> Result<Self, ConvertError> {
        Self::try_from(proto)
    }
}

/// Decodes and converts one wire resource; the only place network bytes of a
/// resource body are parsed.
pub(crate) fn decode<T: Resource>(resource: &xds::Resource) -> Result<T, ResourceError> {
    if resource.name.is_empty() {
        return Err(ResourceError::EmptyName);
    }
    let any = resource
        .resource
        .as_ref()
        .ok_or(ResourceError::MissingBody)?;
    if any.type_url != T::TYPE_URL {
        return Err(ResourceError::TypeMismatch {
            expected: T::TYPE_URL.to_string(),
            actual: any.type_url.clone(),
        });
    }
    let proto = <T::Proto as prost::Message>::decode(any.value.as_slice())
        .map_err(ResourceError::Decode)?;
    Ok(T::from_proto(proto)?)
}

#[cfg(test)]
mod tests {
    use braid_api::convert::workload_to_proto;
    use prost::Message;

    use super::*;

    fn workload() -> model::Workload {
        model::Workload {
            uid: model::WorkloadUid::new("shop", "web-0"),
            name: "web-0".into(),
            namespace: "shop".into(),
            service_account: "web".into(),
            node: "node-a".into(),
            addresses: vec![[198, 18, 0, 10].into()],
            labels: Default::default(),
            mode: model::DataPlaneMode::Ambient,
            has_sidecar: false,
            waypoint: None,
            trust_domain: "cluster.local".into(),
            status: model::WorkloadStatus::Healthy,
        }
    }

    fn wire(type_url: &str, value: Vec<u8>) -> xds::Resource {
        xds::Resource {
            name: "shop/web-0".into(),
            version: "v1".into(),
            resource: Some(prost_types::Any {
                type_url: type_url.into(),
                value,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn decodes_and_converts() {
        let bytes = workload_to_proto(&workload()).encode_to_vec();
        let got = decode::<model::Workload>(&wire(type_url::WORKLOAD, bytes));
        assert_eq!(got, Ok(workload()));
    }

    #[test]
    fn rejects_a_body_of_another_type() {
        let bytes = workload_to_proto(&workload()).encode_to_vec();
        let got = decode::<model::Workload>(&wire(type_url::SERVICE, bytes));
        assert!(
            matches!(got, Err(ResourceError::TypeMismatch { .. })),
            "{got:?}"
        );
    }

    #[test]
    fn rejects_garbage_bytes() {
        let got = decode::<model::Workload>(&wire(type_url::WORKLOAD, vec![0xff, 0xff, 0xff]));
        assert!(matches!(got, Err(ResourceError::Decode(_))), "{got:?}");
    }

    #[test]
    fn rejects_a_model_conversion_failure_with_the_field() {
        let mut proto = workload_to_proto(&workload());
        proto.addresses = vec![vec![1, 2, 3]];
        let got = decode::<model::Workload>(&wire(type_url::WORKLOAD, proto.encode_to_vec()));
        let Err(ResourceError::Convert(err)) = got else {
            panic!("expected a conversion error, got {got:?}");
        };
        assert_eq!(err.field, "addresses[0]");
    }

    #[test]
    fn rejects_missing_body_and_empty_name() {
        let mut r = wire(type_url::WORKLOAD, vec![]);
        r.resource = None;
        assert_eq!(
            decode::<model::Workload>(&r),
            Err(ResourceError::MissingBody)
        );
        r.name.clear();
        assert_eq!(decode::<model::Workload>(&r), Err(ResourceError::EmptyName));
    }
}
