//! The bench's additions to the e2e topology (`plain`, `ledger`), the
//! ports its servers listen on, and the client→server paths it measures
//! with the proxies on each.

use std::net::{Ipv4Addr, SocketAddr};

use crate::{support::PodDef, waypoint};

/// The TCP sink (throughput), in every server pod.
pub(crate) const SINK_PORT: u16 = 5201;
/// The HTTP/1.1 server (latency, CPU), in every server pod.
pub(crate) const HTTP_PORT: u16 = 8088;
/// The idle-connection server (memory), in every server pod.
pub(crate) const HOLD_PORT: u16 = 5301;

/// The direct path's client: not meshed (namespace `legacy` is mode none).
pub(crate) const PLAIN: PodDef = PodDef {
    name: "plain",
    namespace: "legacy",
    service_account: "plain",
    node: "node-a",
    ip: Ipv4Addr::new(198, 18, 0, 40),
    port: None,
    ambient: false,
    sidecar: false,
    uid: "0b7e4a2c-0000-4000-8000-00000000b001",
};

/// The second sidecar pod (namespace `orders` is sidecar mode), on node-b.
pub(crate) const LEDGER: PodDef = PodDef {
    name: "ledger",
    namespace: "orders",
    service_account: "ledger",
    node: "node-b",
    ip: Ipv4Addr::new(198, 18, 1, 31),
    port: None,
    ambient: false,
    sidecar: true,
    uid: "0b7e4a2c-0000-4000-8000-00000000b002",
};

/// A client→server path and the proxies on it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Path {
    pub(crate) name: &'static str,
    pub(crate) client: &'static str,
    pub(crate) server: &'static str,
    /// The Service the HTTP load goes to, when not the server pod itself.
    pub(crate) service: Option<SocketAddr>,
    /// (role, process) of each proxy on the path, client side first.
    pub(crate) proxies: &'static [(&'static str, Proxy)],
}

/// A proxy process of the cluster, or the nginx reference.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Proxy {
    Ztunnel(&'static str),
    Sidecar(&'static str),
    /// The waypoint running in the named pod.
    Waypoint(&'static str),
    /// The master and worker of [`Bench::nginx`].
    Nginx,
}

impl Proxy {
    /// "ztunnel node-a", "sidecar orders".
    pub(crate) fn label(self) -> String {
        match self {
            Proxy::Ztunnel(node) => format!("ztunnel {node}"),
            Proxy::Sidecar(pod) => format!("sidecar {pod}"),
            Proxy::Waypoint(pod) => format!("waypoint {pod}"),
            Proxy::Nginx => "nginx".to_owned(),
        }
    }
}

pub(crate) const DIRECT: Path = Path {
    name: "direct",
    client: "plain",
    server: "legacy",
    service: None,
    proxies: &[],
};
pub(crate) const AMBIENT: Path = Path {
    name: "ambient",
    client: "client",
    server: "api",
    service: None,
    proxies: &[
        ("client ztunnel", Proxy::Ztunnel("node-a")),
        ("server ztunnel", Proxy::Ztunnel("node-b")),
    ],
};
pub(crate) const SIDECARS: Path = Path {
    name: "sidecar→sidecar",
    client: "orders",
    server: "ledger",
    service: None,
    proxies: &[
        ("client sidecar", Proxy::Sidecar("orders")),
        ("server sidecar", Proxy::Sidecar("ledger")),
    ],
};
pub(crate) const SIDECAR_AMBIENT: Path = Path {
    name: "sidecar→ambient",
    client: "orders",
    server: "api",
    service: None,
    proxies: &[
        ("client sidecar", Proxy::Sidecar("orders")),
        ("server ztunnel", Proxy::Ztunnel("node-b")),
    ],
};

/// The direct path with nginx in front of its server, inside its client.
pub(crate) const NGINX: Path = Path {
    name: "nginx",
    client: DIRECT.client,
    server: DIRECT.server,
    service: None,
    proxies: &[("nginx", Proxy::Nginx)],
};

pub(crate) const WAYPOINT: Proxy = Proxy::Waypoint(waypoint::DWP.name);
pub(crate) const AMBIENT_WAYPOINT: Path = Path {
    name: "ambient→waypoint→ambient",
    client: "client",
    server: waypoint::STOCK.name,
    service: Some(waypoint::STOCK_VIP),
    proxies: &[
        ("client ztunnel", Proxy::Ztunnel("node-a")),
        ("waypoint", WAYPOINT),
        ("server ztunnel", Proxy::Ztunnel("node-b")),
    ],
};
pub(crate) const SIDECAR_WAYPOINT: Path = Path {
    name: "sidecar→waypoint→ambient",
    client: "orders",
    server: waypoint::STOCK.name,
    service: Some(waypoint::STOCK_VIP),
    proxies: &[
        ("client sidecar", Proxy::Sidecar("orders")),
        ("waypoint", WAYPOINT),
        ("server ztunnel", Proxy::Ztunnel("node-b")),
    ],
};
/// [`AMBIENT_WAYPOINT`] to the Service with [`waypoint::ROUTES`] routes.
pub(crate) const WAYPOINT_ROUTES: Path = Path {
    name: "ambient→waypoint→ambient, 1 000 routes",
    service: Some(waypoint::ROUTED_VIP),
    ..AMBIENT_WAYPOINT
};

/// The server pods (each runs the three servers).
pub(crate) const SERVER_PODS: [&str; 4] = ["legacy", "api", "ledger", waypoint::STOCK.name];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support;

    #[test]
    fn the_bench_pods_fit_the_topology() {
        for def in [PLAIN, LEDGER, waypoint::STOCK, waypoint::DWP] {
            assert!(
                support::PODS
                    .iter()
                    .all(|p| p.name != def.name && p.ip != def.ip)
            );
        }
        for path in [
            DIRECT,
            AMBIENT,
            SIDECARS,
            SIDECAR_AMBIENT,
            NGINX,
            AMBIENT_WAYPOINT,
            SIDECAR_WAYPOINT,
            WAYPOINT_ROUTES,
        ] {
            assert!(SERVER_PODS.contains(&path.server), "{}", path.name);
        }
    }
}
