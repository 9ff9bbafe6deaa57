//! The xDS type URLs of Braid's resources.

/// Prefix every protobuf `Any` type URL carries.
pub const PREFIX: &str = "type.googleapis.com/";

/// `braid.workload.v1alpha1.Workload`; resource name: the workload uid.
pub const WORKLOAD: &str = "type.googleapis.com/braid.workload.v1alpha1.Workload";

/// `braid.workload.v1alpha1.Service`; resource name: `<namespace>/<name>`.
pub const SERVICE: &str = "type.googleapis.com/braid.workload.v1alpha1.Service";

/// `braid.security.v1alpha1.Authorization`; resource name: `<namespace>/<name>`.
pub const AUTHORIZATION: &str = "type.googleapis.com/braid.security.v1alpha1.Authorization";

/// Every type URL the control plane serves.
pub const ALL: [&str; 3] = [WORKLOAD, SERVICE, AUTHORIZATION];

/// The short name (`workload`, `service`, `authorization`) of a type URL, for
/// CLIs and logs; `None` for a type Braid does not serve.
pub fn short_name(type_url: &str) -> Option<&'static str> {
    match type_url {
        WORKLOAD => Some("workload"),
        SERVICE => Some("service"),
        AUTHORIZATION => Some("authorization"),
        _ => None,
    }
}

/// The type URL for a short name; `None` when unknown.
pub fn from_short_name(name: &str) -> Option<&'static str> {
    ALL.into_iter().find(|url| short_name(url) == Some(name))
}
