//! The resource types the client can watch: each `braid-model` type knows its
//! wire message and type URL, so a caller names only the model type.

use braid_api::{
    braid::{route::v1alpha1 as route, security::v1alpha1 as sec, workload::v1alpha1 as wl},
    convert::ConvertError,
    envoy::service::discovery::v3 as xds,
    type_url,
};
use braid_model as model;

use crate::ResourceError;

/// A domain type served over Delta xDS.
///
/// Implemented here for every type Braid serves ([`model::Workload`],
/// [`model::Service`], [`model::AuthorizationPolicy`],
/// [`model::PeerAuthentication`], [`model::HttpRoute`]); a new resource type
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

impl Resource for model::PeerAuthentication {
    type Proto = sec::PeerAuthentication;
    const TYPE_URL: &'static str = type_url::PEER_AUTHENTICATION;

    fn from_proto(proto: Self::Proto) -> Result<Self, ConvertError> {
        Self::try_from(proto)
    }
}

impl Resource for model::HttpRoute {
    type Proto = route::HttpRoute;
    const TYPE_URL: &'static str = type_url::HTTP_ROUTE;

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

    /// Every byte string from the network must decode to a value or an
    /// error, never a panic: truncations and mutations of valid messages of
    /// each type, and random bytes (a deterministic generator, so a failure
    /// reproduces).
    #[test]
    fn mutated_and_random_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as usize
        };
        let valid = [
            (
                type_url::WORKLOAD,
                workload_to_proto(&workload()).encode_to_vec(),
            ),
            (
                type_url::SERVICE,
                braid_api::braid::workload::v1alpha1::Service {
                    name: "web".into(),
                    namespace: "shop".into(),
                    vips: vec![vec![198, 19, 0, 1]],
                    ports: vec![braid_api::braid::workload::v1alpha1::ServicePort {
                        port: 80,
                        target_port: 8080,
                        ..Default::default()
                    }],
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                type_url::AUTHORIZATION,
                braid_api::braid::security::v1alpha1::Authorization {
                    name: "p".into(),
                    namespace: "shop".into(),
                    action: 2,
                    rules: vec![braid_api::braid::security::v1alpha1::Rule {
                        destination_ports: vec![8080],
                        ..Default::default()
                    }],
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                type_url::PEER_AUTHENTICATION,
                braid_api::braid::security::v1alpha1::PeerAuthentication {
                    name: "p".into(),
                    namespace: "shop".into(),
                    selector: [("app".to_string(), "web".to_string())].into(),
                    mode: 1,
                }
                .encode_to_vec(),
            ),
            (
                type_url::HTTP_ROUTE,
                braid_api::braid::route::v1alpha1::HttpRoute {
                    namespace: "shop".into(),
                    name: "web".into(),
                    rules: vec![braid_api::braid::route::v1alpha1::RouteRule {
                        matches: vec![braid_api::braid::route::v1alpha1::RouteMatch {
                            path: Some(braid_api::braid::route::v1alpha1::PathMatch {
                                kind: Some(
                                    braid_api::braid::route::v1alpha1::path_match::Kind::Regex(
                                        "/v[0-9]+".into(),
                                    ),
                                ),
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
        ];
        let try_all = |url: &str, bytes: Vec<u8>| {
            let r = wire(url, bytes);
            let _ = decode::<model::Workload>(&r);
            let _ = decode::<model::Service>(&r);
            let _ = decode::<model::AuthorizationPolicy>(&r);
            let _ = decode::<model::PeerAuthentication>(&r);
            let _ = decode::<model::HttpRoute>(&r);
        };
        for (url, bytes) in &valid {
            for end in 0..bytes.len() {
                try_all(url, bytes[..end].to_vec());
            }
            for _ in 0..2000 {
                let mut m = bytes.clone();
                for _ in 0..(next() % 4 + 1) {
                    let at = next() % m.len();
                    m[at] = (next() % 256) as u8;
                }
                try_all(url, m);
            }
        }
        for len in 0..512 {
            let bytes = (0..len).map(|_| (next() % 256) as u8).collect();
            try_all(type_url::WORKLOAD, bytes);
        }
    }
}
