//! Braid's data plane library.
//!
//! Today it holds [`hbone`]: the tunnel every byte between meshed workloads
//! travels through — HTTP/2 `CONNECT` streams inside mutual TLS 1.3, with
//! SPIFFE identities on both ends, wire-compatible with Istio's HBONE. The
//! server side accepts tunnels on port 15008 and hands each one to a
//! [`hbone::Connector`]; the client side is a [`hbone::Pool`] of HTTP/2
//! connections.
//!
//! What this crate is not (yet): it does not capture traffic, decide
//! authorization, route HTTP or export telemetry, and it has no binary; those
//! arrive as the sidecar, ztunnel and waypoint compositions are built on top
//! of this tunnel. Certificates and TLS configurations come from
//! `braid-identity`; this crate never touches rustls settings itself.

pub mod hbone;
