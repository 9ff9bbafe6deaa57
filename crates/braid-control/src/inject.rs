//! The sidecar injector: a Kubernetes mutating admission webhook (HTTPS,
//! default port 15017, path `/inject`) that adds the Braid proxy to pods
//! whose effective mode is `sidecar`.
//!
//! | module | role |
//! |---|---|
//! | [`patch`] | pure: a Pod, an [`InjectConfig`] and the namespace's mode → a [`patch::Decision`] |
//! | `template` | the containers and volumes that get added |
//! | `exclusions` | the `braid.dev/exclude-*` annotations, validated |
//! | [`review`] | the edge: `AdmissionReview` JSON in, `AdmissionReview` JSON out |
//! | [`cert`] | the webhook's serving certificate, issued by the control plane's CA |
//! | [`server`] | the HTTPS listener |
//!
//! The webhook never blocks pod creation: anything it cannot or should not
//! handle (another kind, a malformed pod, an unknown namespace, a bad
//! annotation) is admitted unchanged, with a warning where the user can act
//! on one. Only a body that is not an `AdmissionReview` at all gets HTTP 400.
//!
//! **Not:** the `MutatingWebhookConfiguration` (the install manifests own it)
//! and any other kind than Pod.

use serde::Serialize;

pub mod cert;
mod exclusions;
pub mod patch;
pub mod register;
pub mod review;
pub mod server;
pub(crate) mod template;

#[cfg(test)]
mod tests;

pub use exclusions::AnnotationError;
pub use patch::{Decision, NamespaceMode, inject};

/// Annotation the injector adds; a pod that has it is never injected again.
pub const INJECTED_ANNOTATION: &str = "braid.dev/injected";

/// Pod annotation: inbound ports the init step leaves uncaptured
/// (comma-separated, 1-65535).
pub const EXCLUDE_INBOUND_PORTS: &str = "braid.dev/exclude-inbound-ports";

/// Pod annotation: outbound destination ports left uncaptured.
pub const EXCLUDE_OUTBOUND_PORTS: &str = "braid.dev/exclude-outbound-ports";

/// Pod annotation: outbound destination CIDRs left uncaptured, e.g.
/// `169.254.169.254/32`.
pub const EXCLUDE_OUTBOUND_CIDRS: &str = "braid.dev/exclude-outbound-cidrs";

/// Name of the init container that installs the redirect rules.
pub const INIT_CONTAINER: &str = "braid-init";

/// Name of the volume holding the mesh's root certificate (ConfigMap
/// [`CA_ROOT_CONFIGMAP`]), mounted at [`CA_ROOT_DIR`].
pub const CA_ROOT_VOLUME: &str = "braid-ca-root";

/// The ConfigMap with the mesh's root certificate under key [`CA_ROOT_KEY`].
pub const CA_ROOT_CONFIGMAP: &str = "braid-ca-root";

/// The key of the root certificate in [`CA_ROOT_CONFIGMAP`].
pub const CA_ROOT_KEY: &str = "root-cert.pem";

/// Where the sidecar sees the root certificate's directory.
pub const CA_ROOT_DIR: &str = "/var/run/braid/ca";

/// Name of the volume with the proxy's token (a projected ServiceAccount
/// token with audience [`TOKEN_AUDIENCE`]), mounted read-only at [`TOKEN_DIR`].
pub const TOKEN_VOLUME: &str = "braid-token";

/// Audience of the projected token.
pub const TOKEN_AUDIENCE: &str = "braid";

/// File name of the token inside [`TOKEN_DIR`].
pub const TOKEN_FILE: &str = "token";

/// Where the sidecar sees the token's directory.
pub const TOKEN_DIR: &str = "/var/run/braid/token";

/// User id of the proxy; the redirect rules never capture its traffic.
pub const PROXY_UID: i64 = 1337;

/// Port of the proxy's readiness endpoint (`/healthz/ready`); `i32` because
/// probes take an `IntOrString` (a `u16` always fits).
pub const READINESS_PORT: i32 = braid_model::catalog::ports::PROXY_READINESS.number as i32;

/// What the injector adds, from the control plane's flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InjectConfig {
    /// Image of `braid-proxy` (`--proxy-image`).
    pub proxy_image: String,
    /// The address sidecars reach the control plane at
    /// (`--proxy-control-plane`).
    pub control_plane: String,
    /// The mesh's trust domain (`--trust-domain`).
    pub trust_domain: String,
    /// The CNI plugin installs the redirect rules (`--cni-sidecar-rules`):
    /// no `braid-init` container.
    pub cni_sidecar_rules: bool,
    /// The proxy as a regular container rather than a native sidecar
    /// (`--inject-legacy-sidecar`).
    pub legacy_sidecar: bool,
}

// === impl InjectConfig ===

impl InjectConfig {
    /// The defaults of `braid-control`'s flags.
    pub fn defaults() -> Self {
        Self {
            proxy_image: crate::config::DEFAULT_PROXY_IMAGE.to_string(),
            control_plane: crate::config::DEFAULT_PROXY_CONTROL_PLANE.to_string(),
            trust_domain: braid_model::DEFAULT_TRUST_DOMAIN.to_string(),
            cni_sidecar_rules: false,
            legacy_sidecar: false,
        }
    }
}
