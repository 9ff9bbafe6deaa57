//! Test tier 4: Braid against a real kube-apiserver (with etcd and the
//! controller manager, no kubelet), started by `cargo xtask test`. See
//! `kube/support.rs` for how the cluster is found.

#![allow(unreachable_pub)]

#[path = "kube/support.rs"]
mod support;

#[path = "kube/source.rs"]
mod source;

#[path = "kube/inject.rs"]
mod inject;

#[path = "kube/tokens.rs"]
mod tokens;

#[path = "kube/crds.rs"]
mod crds;

#[path = "kube/install.rs"]
mod install;

#[path = "kube/routes.rs"]
mod routes;

#[path = "kube/waypoints.rs"]
mod waypoints;
