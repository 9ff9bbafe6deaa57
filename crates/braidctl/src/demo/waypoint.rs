//! What the waypoint step adds to the mesh: in the ambient namespace
//! `inventory`, a Service `catalog` with two versions (`catalog-v1` on
//! node-a, `catalog-v2` on node-b) behind a waypoint (Gateway `waypoint`,
//! its proxy in pod `waypoint-0`), and an HTTPRoute on `catalog` sending
//! `x-canary: yes` to v2 and everything else 80/20 to v1/v2.
//!
//! The client is inventory's own ambient pod: its ztunnel only carries
//! bytes, so the split and the header match it sees can only come from the
//! waypoint reading each request.

use std::net::Ipv4Addr;

use super::topology::{self, APPS};

/// The step's configuration file.
pub(crate) const FILE: &str = "waypoint.yaml";
/// The Gateway (and the waypoint pod's `gateway-name` label).
pub(crate) const GATEWAY: &str = "waypoint";
/// The Service the route applies to.
pub(crate) const SERVICE: &str = "catalog";
/// The Services' port (what the client dials on the VIP).
pub(crate) const SERVICE_PORT: u16 = 80;
/// The versions' HTTP port.
pub(crate) const APP_PORT: u16 = 9191;
/// The header match of the route.
pub(crate) const CANARY_HEADER: (&str, &str) = ("x-canary", "yes");
/// The route's weights of v1 and v2 for requests without the header.
pub(crate) const WEIGHTS: [u32; 2] = [80, 20];
/// The label naming the Gateway a pod serves (Gateway API convention).
const GATEWAY_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// One pod of the step (the two versions and the waypoint's pod).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepPod {
    /// Pod name and service account.
    pub(crate) name: &'static str,
    /// The node whose ztunnel serves it.
    pub(crate) node: &'static str,
    /// Its address in the demo's /24.
    pub(crate) ip: Ipv4Addr,
    /// `v1`/`v2`, or `None` for the waypoint's pod.
    pub(crate) version: Option<&'static str>,
    /// `K8S_POD_UID`, distinct from the applications' (see `Pod::uid`).
    pub(crate) uid: &'static str,
}

/// The versions, then the waypoint's pod. Addresses follow the
/// applications' (.11–.3x) in the demo's /24, leaving room for rollouts.
pub(crate) const PODS: [StepPod; 3] = [
    StepPod {
        name: "catalog-v1",
        node: "node-a",
        ip: Ipv4Addr::new(198, 19, 64, 41),
        version: Some("v1"),
        uid: "b7a1d000-0000-4000-8000-00000000c0a1",
    },
    StepPod {
        name: "catalog-v2",
        node: "node-b",
        ip: Ipv4Addr::new(198, 19, 64, 42),
        version: Some("v2"),
        uid: "b7a1d000-0000-4000-8000-00000000c0a2",
    },
    StepPod {
        name: "waypoint-0",
        node: "node-b",
        ip: Ipv4Addr::new(198, 19, 64, 43),
        version: None,
        uid: "b7a1d000-0000-4000-8000-00000000c0f0",
    },
];
/// (Service, extra selector, VIP): `catalog` selects both versions, the
/// per-version Services are the route's backends. The VIPs are virtual (no
/// interface holds them): the client's ztunnel resolves them.
pub(crate) const SERVICES: [(&str, &str, Ipv4Addr); 3] = [
    (SERVICE, "", Ipv4Addr::new(198, 19, 64, 200)),
    (
        "catalog-v1",
        ", version: v1",
        Ipv4Addr::new(198, 19, 64, 201),
    ),
    (
        "catalog-v2",
        ", version: v2",
        Ipv4Addr::new(198, 19, 64, 202),
    ),
];

/// The namespace of the step: inventory, ambient from the start.
pub(crate) fn namespace() -> &'static str {
    APPS[1].namespace
}

/// The Service's hostname (the `Host` the client sends).
pub(crate) fn host() -> String {
    format!("{SERVICE}.{}.svc.cluster.local", namespace())
}

/// The answer a version's server gives; [`super::canary`] reads the
/// version back from it.
pub(crate) fn body(pod: &StepPod) -> String {
    format!("hello from {}/{}\n", namespace(), pod.name)
}

/// The step's documents: pods, Services, Gateway, HTTPRoute, and the
/// waypoint pod's proxy token (`token`), in one file.
pub(crate) fn yaml(token: &str) -> String {
    let ns = namespace();
    let mut docs = Vec::new();
    for p in &PODS {
        let (labels, containers) = match p.version {
            Some(version) => (
                format!("    app: {SERVICE}\n    version: {version}\n"),
                format!(
                    "  - name: app\n    image: example/{SERVICE}:{version}\n    ports:\n    - name: http\n      containerPort: {APP_PORT}\n"
                ),
            ),
            None => (
                format!("    {GATEWAY_LABEL}: {GATEWAY}\n"),
                "  - name: braid-proxy\n    image: braid/proxy:dev\n".to_owned(),
            ),
        };
        docs.push(format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n{labels}spec:\n  nodeName: {node}\n  serviceAccountName: {name}\n  containers:\n{containers}status:\n  phase: Running\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n  conditions:\n  - type: Ready\n    status: \"True\"\n",
            name = p.name,
            node = p.node,
            ip = p.ip,
        ));
    }
    for (name, selector, vip) in SERVICES {
        docs.push(format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{braid.dev/waypoint: {GATEWAY}}}\nspec:\n  clusterIP: {vip}\n  selector: {{app: {SERVICE}{selector}}}\n  ports:\n  - name: http\n    port: {SERVICE_PORT}\n    targetPort: {APP_PORT}\n"
        ));
    }
    docs.push(topology::token_yaml(
        &format!("waypoint-{}", PODS[2].name),
        token,
        None,
        Some(&format!("{ns}/{}", PODS[2].name)),
    ));
    docs.push(format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {GATEWAY}, namespace: {ns}}}\nspec:\n  gatewayClassName: braid-waypoint\n  listeners: [{{name: mesh, port: 15008, protocol: HBONE}}]\n"
    ));
    let (header, value) = CANARY_HEADER;
    let [v1, v2] = WEIGHTS;
    docs.push(format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {SERVICE}, namespace: {ns}}}\nspec:\n  parentRefs: [{{group: '', kind: Service, name: {SERVICE}, port: {SERVICE_PORT}}}]\n  rules:\n  - matches:\n    - headers: [{{name: {header}, value: '{value}'}}]\n    backendRefs: [{{name: catalog-v2, port: {SERVICE_PORT}}}]\n  - backendRefs:\n    - {{name: catalog-v1, port: {SERVICE_PORT}, weight: {v1}}}\n    - {{name: catalog-v2, port: {SERVICE_PORT}, weight: {v2}}}\n"
    ));
    docs.join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    type Doc = serde_yaml_ng::Value;

    fn docs() -> Vec<Doc> {
        yaml("0123456789abcdef0123456789abcdef")
            .split("---\n")
            .map(|d| serde_yaml_ng::from_str(d).expect("each document is YAML"))
            .collect()
    }

    fn of_kind(docs: &[Doc], kind: &str) -> Vec<Doc> {
        docs.iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .cloned()
            .collect()
    }

    #[test]
    fn the_documents_are_the_pods_services_gateway_route_and_token() {
        let docs = docs();
        let kinds: Vec<_> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            [
                "Pod",
                "Pod",
                "Pod",
                "Service",
                "Service",
                "Service",
                "Secret",
                "Gateway",
                "HTTPRoute"
            ]
        );
        // Only the waypoint's pod names the Gateway; the versions are
        // selected by the Services.
        let pods = of_kind(&docs, "Pod");
        let gateway_of = |p: &Doc| {
            p["metadata"]["labels"][GATEWAY_LABEL]
                .as_str()
                .map(str::to_owned)
        };
        assert_eq!(
            pods.iter().map(gateway_of).collect::<Vec<_>>(),
            [None, None, Some(GATEWAY.to_owned())]
        );
        for s in of_kind(&docs, "Service") {
            assert_eq!(
                s["metadata"]["labels"]["braid.dev/waypoint"].as_str(),
                Some(GATEWAY)
            );
            assert_eq!(s["spec"]["selector"]["app"].as_str(), Some(SERVICE));
        }
        let gw = &of_kind(&docs, "Gateway")[0];
        assert_eq!(
            gw["spec"]["gatewayClassName"].as_str(),
            Some("braid-waypoint")
        );
        assert_eq!(
            gw["spec"]["listeners"][0]["protocol"].as_str(),
            Some("HBONE")
        );
        assert_eq!(gw["spec"]["listeners"][0]["port"].as_u64(), Some(15008));
        let secret = &of_kind(&docs, "Secret")[0];
        assert_eq!(
            secret["stringData"]["pod"].as_str(),
            Some("inventory/waypoint-0")
        );
    }

    #[test]
    fn the_route_matches_the_header_then_splits_80_20() {
        let route = &of_kind(&docs(), "HTTPRoute")[0];
        let parent = &route["spec"]["parentRefs"][0];
        assert_eq!(
            (
                parent["kind"].as_str(),
                parent["name"].as_str(),
                parent["group"].as_str()
            ),
            (Some("Service"), Some(SERVICE), Some(""))
        );
        let rules = &route["spec"]["rules"];
        let header = &rules[0]["matches"][0]["headers"][0];
        assert_eq!(
            (header["name"].as_str(), header["value"].as_str()),
            (Some("x-canary"), Some("yes"))
        );
        assert_eq!(
            rules[0]["backendRefs"][0]["name"].as_str(),
            Some("catalog-v2")
        );
        let split: Vec<_> = rules[1]["backendRefs"]
            .as_sequence()
            .expect("backends")
            .iter()
            .map(|b| (b["name"].as_str().map(str::to_owned), b["weight"].as_u64()))
            .collect();
        assert_eq!(
            split,
            [
                (Some("catalog-v1".to_owned()), Some(80)),
                (Some("catalog-v2".to_owned()), Some(20))
            ]
        );
    }

    #[test]
    fn addresses_do_not_clash_with_the_applications_pods() {
        let mut all: Vec<Ipv4Addr> = PODS.iter().map(|p| p.ip).collect();
        all.extend(SERVICES.iter().map(|s| s.2));
        // Every application pod a run creates (up to a few rollouts).
        for app in 0..APPS.len() {
            for generation in 1..=5 {
                all.push(
                    topology::Pod {
                        app,
                        generation,
                        sidecar: false,
                    }
                    .ip(),
                );
            }
        }
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), count, "an address is used twice");
    }

    /// The control plane accepts the step's documents next to the demo's
    /// namespaces with no configuration error.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_control_plane_accepts_the_step() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let modes = APPS.map(|a| a.initial_mode);
        std::fs::write(
            dir.path().join("namespaces.yaml"),
            topology::namespaces_yaml(&modes),
        )?;
        std::fs::write(
            dir.path().join(FILE),
            yaml("0123456789abcdef0123456789abcdef"),
        )?;
        topology::tests::loads_cleanly(dir.path()).await
    }
}
