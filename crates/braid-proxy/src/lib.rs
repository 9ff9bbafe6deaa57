//! Braid's data plane library and the `braid-proxy` binary's compositions.
//!
//! * [`hbone`]: the tunnel every byte between meshed workloads travels
//!   through — HTTP/2 `CONNECT` streams inside mutual TLS 1.3, with SPIFFE
//!   identities on both ends, wire-compatible with Istio's HBONE.
//! * [`state`]: the mesh as a proxy sees it (workloads, services, policies
//!   from xDS), with destination resolution and L4 authorization.
//! * [`ztunnel`]: the per-node proxy for ambient pods, capturing inside each
//!   pod's network namespace.
//!
//! * [`sidecar`]: the per-pod proxy, with [`l7`] HTTP-aware outbound
//!   proxying; [`telemetry`]: connection and request metrics, access logs.
//!
//! Not here yet: the waypoint composition. Certificates and TLS configurations come from
//! `braid-identity`; capture (namespaces, rules, `SO_ORIGINAL_DST`) from
//! `braid-capture`.

pub mod admin;
pub mod common;
pub mod detect;
mod feed;
pub mod hbone;
pub mod init;
pub mod l4;
pub mod l7;
pub mod sidecar;
pub mod state;
pub mod telemetry;
pub mod ztunnel;
