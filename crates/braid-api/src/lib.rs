//! Braid's wire types: prost messages and tonic services generated from
//! `proto/` at build time, plus the one place where they convert to and from
//! the domain model (`braid-model`). Nothing past this crate's callers at the
//! edge (the xDS server, the xDS client) should touch these types.

#![allow(missing_docs, unreachable_pub, clippy::doc_lazy_continuation)]

/// Envoy's xDS transport (`envoy.service.discovery.v3`, `envoy.config.core.v3`).
pub mod envoy {
    /// `envoy.config.*`
    pub mod config {
        /// `envoy.config.core`
        pub mod core {
            /// `envoy.config.core.v3`
            pub mod v3 {
                tonic::include_proto!("envoy.config.core.v3");
            }
        }
    }
    /// `envoy.service.*`
    pub mod service {
        /// `envoy.service.discovery`
        pub mod discovery {
            /// `envoy.service.discovery.v3`
            pub mod v3 {
                tonic::include_proto!("envoy.service.discovery.v3");
            }
        }
    }
}

/// `google.rpc`
pub mod google {
    /// `google.rpc`
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// Braid's own API.
pub mod braid {
    /// `braid.workload.v1alpha1`: workloads and services.
    pub mod workload {
        /// Version v1alpha1.
        pub mod v1alpha1 {
            tonic::include_proto!("braid.workload.v1alpha1");
        }
    }
    /// `braid.security.v1alpha1`: authorization, peer authentication and certificates.
    pub mod security {
        /// Version v1alpha1.
        pub mod v1alpha1 {
            tonic::include_proto!("braid.security.v1alpha1");
        }
    }
    /// `braid.route.v1alpha1`: HTTP routes (Gateway API HTTPRoute).
    pub mod route {
        /// Version v1alpha1.
        pub mod v1alpha1 {
            tonic::include_proto!("braid.route.v1alpha1");
        }
    }
    /// `braid.admin.v1alpha1`: the control plane's debug API.
    pub mod admin {
        /// Version v1alpha1.
        pub mod v1alpha1 {
            tonic::include_proto!("braid.admin.v1alpha1");
        }
    }
}

pub mod convert;
pub mod type_url;
