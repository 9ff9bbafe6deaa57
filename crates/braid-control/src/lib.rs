//! Braid's control plane: it reads Kubernetes objects from a source (a YAML
//! directory today; kube-rs watchers later), translates them into workloads,
//! services and policies in a synchronous index, and serves them to proxies
//! over Delta xDS with per-resource versions and ACK/NACK tracking.
//!
//! The flow is watch -> index -> publish: [`source`] produces changes,
//! [`index`] turns dirty namespaces into resource updates, [`snapshot`] holds
//! immutable versions, and [`xds`] streams the differences to every proxy.
//! With `--ca-dir`, [`certificates`] signs workload certificates for proxies
//! that present a token the [`identities`] view authorizes, and [`inject`]
//! serves the sidecar injection webhook with a certificate from the same CA.

pub mod admin;
pub mod auth;
pub mod certificates;
pub mod config;
pub mod debug;
mod hash;
pub mod identities;
pub mod index;
pub mod inject;
pub mod metrics;
pub mod modes;
pub mod rootcerts;
pub mod runtime;
pub mod snapshot;
pub mod source;
pub mod status;
pub mod tls;
pub mod tokenreview;
pub mod waypoints;
pub mod xds;

pub use config::Config;
pub use runtime::{ControlPlane, StartError};
