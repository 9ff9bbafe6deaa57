//! The waypoint part of the bench's topology: namespace `depot` (ambient)
//! with the server pod `stock` (node-b) and the waypoint `dwp` (its pod
//! `dwp-0` on node-b runs `braid-proxy waypoint`, declared as a Gateway of
//! class `braid-waypoint`).
//!
//! ```text
//! Service stock         198.19.0.60:80  braid.dev/waypoint: dwp   no route
//! Service stock-routed  198.19.0.61:80  braid.dev/waypoint: dwp   `routes` routes
//! ```
//!
//! Both Services select `stock`, so the two differ only in the route table
//! the waypoint matches each request against: `routes - 1` HTTPRoutes for
//! path prefixes the load never asks for, then one catch-all, which every
//! request reaches after trying the others.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use crate::support::{PodDef, sidecar_token_yaml};

/// The namespace of the waypoint paths.
const NAMESPACE: &str = "depot";
/// The waypoint's Gateway, as `braid-proxy waypoint --waypoint` names it.
pub(crate) const WAYPOINT: &str = "depot/dwp";
/// The number of HTTPRoutes on `stock-routed` when the route table is
/// measured.
pub(crate) const ROUTES: usize = 1000;
const GATEWAY_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// The server behind the waypoint (ambient, captured by node-b's ztunnel).
pub(crate) const STOCK: PodDef = PodDef {
    name: "stock",
    namespace: NAMESPACE,
    service_account: "stock",
    node: "node-b",
    ip: Ipv4Addr::new(198, 18, 1, 60),
    port: None,
    ambient: true,
    sidecar: false,
    uid: "0b7e4a2c-0000-4000-8000-00000000b003",
};

/// The waypoint's pod: addressed, never captured.
pub(crate) const DWP: PodDef = PodDef {
    name: "dwp-0",
    namespace: NAMESPACE,
    service_account: "dwp",
    node: "node-b",
    ip: Ipv4Addr::new(198, 18, 1, 61),
    port: None,
    ambient: false,
    sidecar: false,
    uid: "0b7e4a2c-0000-4000-8000-00000000b004",
};

/// The Service without routes.
pub(crate) const STOCK_VIP: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 60), 80));
/// The Service with the route table.
pub(crate) const ROUTED_VIP: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 61), 80));

/// The namespace, pods, Services, Gateway, routes and the waypoint pod's
/// token, as one configuration file; `http_port` is what `stock` serves,
/// `routes` the number of HTTPRoutes on `stock-routed`.
pub(crate) fn depot_yaml(http_port: u16, routes: usize) -> String {
    let mut docs = vec![format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n  labels:\n    braid.dev/mode: ambient\n"
    )];
    for (def, labels, proxy) in [
        (&STOCK, "app: stock".to_owned(), ""),
        (
            &DWP,
            format!("{GATEWAY_LABEL}: dwp"),
            "  - name: braid-proxy\n    image: braid/braid-proxy:bench\n",
        ),
    ] {
        docs.push(format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\n  labels:\n    {labels}\nspec:\n  nodeName: {node}\n  serviceAccountName: {sa}\n  containers:\n  - name: app\n    image: example/{name}:1\n{proxy}status:\n  phase: Running\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n  conditions:\n  - type: Ready\n    status: \"True\"\n",
            name = def.name,
            node = def.node,
            sa = def.service_account,
            ip = def.ip,
        ));
    }
    for (name, vip) in [("stock", STOCK_VIP), ("stock-routed", ROUTED_VIP)] {
        docs.push(format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\n  labels: {{braid.dev/waypoint: dwp}}\nspec:\n  clusterIP: {ip}\n  selector: {{app: stock}}\n  ports:\n  - name: http\n    port: {port}\n    targetPort: {http_port}\n",
            ip = vip.ip(),
            port = vip.port(),
        ));
    }
    docs.push(sidecar_token_yaml(&DWP));
    docs.push(format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: dwp, namespace: {NAMESPACE}}}\nspec:\n  gatewayClassName: braid-waypoint\n  listeners: [{{name: mesh, port: 15008, protocol: HBONE}}]\n"
    ));
    docs.extend(route_table("stock-routed", ROUTED_VIP.port(), routes));
    docs.join("---\n")
}

/// `count` HTTPRoutes on Service `service`: `count - 1` for the path
/// prefixes `/r0`, `/r1`, ... (the load asks for `/1k`), then a catch-all.
fn route_table(service: &str, port: u16, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let matches = if i + 1 < count {
                format!("  - matches: [{{path: {{type: PathPrefix, value: /r{i}}}}}]\n    backendRefs")
            } else {
                "  - backendRefs".to_owned()
            };
            format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {service}-{i}, namespace: {NAMESPACE}}}\nspec:\n  parentRefs: [{{group: '', kind: Service, name: {service}, port: {port}}}]\n  rules:\n{matches}: [{{name: {service}, port: {port}}}]\n"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depot_has_every_route_and_one_catch_all() {
        assert!(!depot_yaml(8088, 0).contains("kind: HTTPRoute"));
        let yaml = depot_yaml(8088, ROUTES);
        let docs: Vec<&str> = yaml.split("---\n").collect();
        let routes: Vec<&&str> = docs
            .iter()
            .filter(|d| d.contains("kind: HTTPRoute"))
            .collect();
        assert_eq!(routes.len(), ROUTES);
        assert_eq!(routes.iter().filter(|r| !r.contains("matches")).count(), 1);
        let services: Vec<&&str> = docs
            .iter()
            .filter(|d| d.starts_with("apiVersion: v1\nkind: Service\n"))
            .collect();
        assert_eq!(services.len(), 2);
        assert!(
            services
                .iter()
                .all(|s| s.contains("braid.dev/waypoint: dwp"))
        );
        assert!(yaml.contains("targetPort: 8088"));
    }
}
