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
//! * [`waypoint`]: the shared L7 proxy in front of the Services and
//!   namespaces that name it; the same HTTP stack behind an HBONE server.
//!
//! A pod's proxy is layered, each layer using only those below it: the
//! upstream layer (where a connection or request goes, how it gets there,
//! and a typed error for what failed), the two stacks [`l4`] (bytes) and
//! [`l7`] (HTTP requests), then protocol detection ([`detect`]) and the
//! outbound listener that picks a stack for each connection, then the
//! listeners a composition serves.
//!
//! Certificates and TLS configurations come from
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
mod listeners;
mod outbound;
pub mod sidecar;
pub mod state;
pub mod telemetry;
mod upstream;
pub mod waypoint;
pub mod ztunnel;
