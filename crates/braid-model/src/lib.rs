//! Braid's domain model: workloads, services and authorization policies as the
//! data plane needs them, and the translation from Kubernetes objects
//! (Namespace, Pod, Service, EndpointSlice) into them.
//!
//! This crate is pure: no I/O, no Kubernetes client, no gRPC. Wire types
//! (protobuf) convert to and from these types in `braid-api`; CRDs convert into
//! them in `braid-crd`.

mod ids;
mod mode;
mod policy;
mod service;
mod workload;

pub mod k8s;

pub use ids::{ServiceRef, WorkloadUid};
pub use mode::{DataPlaneMode, MODE_LABEL, WAYPOINT_LABEL};
pub use policy::{Action, AuthorizationPolicy, Rule};
pub use service::{Endpoint, PortProtocol, Service, ServicePort};
pub use workload::{WaypointRef, Workload, WorkloadStatus};

/// The trust domain used when none is configured.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The cluster DNS domain used to build service host names.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
