//! The xDS type URLs of Braid's resources.

/// Prefix every protobuf `Any` type URL carries.
pub const PREFIX: &str = "type.googleapis.com/";

/// `braid.workload.v1alpha1.Workload`; resource name: the workload uid.
pub const WORKLOAD: &str = "type.googleapis.com/braid.workload.v1alpha1.Workload";

/// `braid.workload.v1alpha1.Service`; resource name: `<namespace>/<name>`.
pub const SERVICE: &str = "type.googleapis.com/braid.workload.v1alpha1.Service";

/// `braid.security.v1alpha1.Authorization`; resource name: `<namespace>/<name>`.
pub const AUTHORIZATION: &str = "type.googleapis.com/braid.security.v1alpha1.Authorization";

/// `braid.security.v1alpha1.PeerAuthentication`; resource name: `<namespace>/<name>`.
pub const PEER_AUTHENTICATION: &str =
    "type.googleapis.com/braid.security.v1alpha1.PeerAuthentication";

/// `braid.route.v1alpha1.HttpRoute`; resource name: `<namespace>/<name>`.
pub const HTTP_ROUTE: &str = "type.googleapis.com/braid.route.v1alpha1.HttpRoute";

/// Every type URL the control plane serves.
pub const ALL: [&str; 5] = [
    WORKLOAD,
    SERVICE,
    AUTHORIZATION,
    PEER_AUTHENTICATION,
    HTTP_ROUTE,
];

/// The short name (`workload`, `service`, `authorization`,
/// `peerauthentication`, `httproute`) of a type URL, for CLIs and logs; `None` for a type
/// Braid does not serve.
pub fn short_name(type_url: &str) -> Option<&'static str> {
    match type_url {
        WORKLOAD => Some("workload"),
        SERVICE => Some("service"),
        AUTHORIZATION => Some("authorization"),
        PEER_AUTHENTICATION => Some("peerauthentication"),
        HTTP_ROUTE => Some("httproute"),
        _ => None,
    }
}

/// The type URL for a short name; `None` when unknown.
pub fn from_short_name(name: &str) -> Option<&'static str> {
    ALL.into_iter().find(|url| short_name(url) == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_type_has_a_short_name_that_round_trips() {
        for url in ALL {
            let short = short_name(url).expect("served types have a short name");
            assert_eq!(from_short_name(short), Some(url));
            assert!(url.starts_with(PREFIX), "{url}");
        }
        assert_eq!(
            from_short_name("peerauthentication"),
            Some(PEER_AUTHENTICATION)
        );
        assert_eq!(from_short_name("httproute"), Some(HTTP_ROUTE));
    }
}
