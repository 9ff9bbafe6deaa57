//! Braid's domain model: workloads, services, authorization and peer
//! authentication policies as the data plane needs them, the pure evaluation
//! of those policies for one connection ([`authorize`],
//! [`effective_mtls_mode`]), and the translation from Kubernetes objects
//! (Namespace, Pod, Service, EndpointSlice) into them.
//!
//! This crate is pure: no I/O, no Kubernetes client, no gRPC. Wire types
//! (protobuf) convert to and from these types in `braid-api`; CRDs convert into
//! them in `braid-crd`.
//!
//! [`route`] holds HTTP routes (Gateway API HTTPRoute) and the one matcher
//! the control plane, braidctl and every proxy share.
//!
//! [`catalog`] lists every port Braid binds and every metric it exposes, for
//! the code and for the generated reference pages. [`text`] escapes
//! peer-supplied strings for logs and terminals (control plane and braidctl).

mod ids;
mod mode;
mod peer_authentication;
mod policy;
mod service;
mod workload;

pub mod catalog;
pub mod k8s;
pub mod names;
pub mod route;
pub mod text;

pub use ids::{ServiceRef, WorkloadUid};
pub use mode::{DataPlaneMode, MODE_LABEL, WAYPOINT_LABEL};
pub use peer_authentication::{
    DEFAULT_ROOT_NAMESPACE, MtlsMode, PeerAuthentication, effective_mtls_mode,
    effective_peer_authentication,
};
pub use policy::{
    Action, AuthorizationPolicy, ConnectionAttrs, Decision, DenyReason, DestinationWorkload, Peer,
    Rule, authorize,
};
pub use route::HttpRoute;
pub use service::{Endpoint, PortProtocol, Service, ServicePort};
pub use workload::{WaypointRef, Workload, WorkloadStatus};

/// The trust domain used when none is configured.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The cluster DNS domain used to build service host names.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

#[cfg(test)]
mod tests {
    use serde::{Serialize, de::DeserializeOwned};
    use serde_json::json;

    use super::*;

    /// `value` serializes as the JSON string `expected` and reads back.
    fn round_trips<T>(value: T, expected: &str)
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let json = serde_json::to_value(&value).expect("serializes");
        assert_eq!(json, json!(expected));
        assert_eq!(
            serde_json::from_value::<T>(json).expect("deserializes"),
            value
        );
    }

    #[test]
    fn enums_are_lowercase_in_json() {
        round_trips(DataPlaneMode::Ambient, "ambient");
        round_trips(WorkloadStatus::Healthy, "healthy");
        round_trips(WorkloadStatus::Unhealthy, "unhealthy");
        round_trips(WorkloadStatus::Terminating, "terminating");
        round_trips(PortProtocol::Tcp, "tcp");
        round_trips(PortProtocol::Udp, "udp");
        round_trips(PortProtocol::Sctp, "sctp");
        round_trips(Action::Allow, "allow");
        round_trips(Action::Deny, "deny");
        round_trips(MtlsMode::Strict, "strict");
        round_trips(MtlsMode::Permissive, "permissive");
    }
}
