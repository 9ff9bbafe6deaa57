//! The ambient-mode "cluster" of `tests/ambient.rs`: two logical nodes, each
//! with a real `braid-proxy ztunnel` and a real `braid-cni agent` process,
//! one real `braid-control` process on a YAML directory, and five pods (one
//! of them a sidecar pod running `braid-proxy init` and `sidecar`) as
//! network namespaces on one bridge (`braid_capture::testing::TestNet`).
//!
//! Everything is driven the way production drives it: pods are announced to
//! the agents by running the `braid-cni` plugin binary with a CNI
//! environment and stdin; configuration changes are file edits in the
//! control plane's directory; processes are started from the binaries
//! `cargo build` produces. Every wait has a deadline; nothing sleeps except
//! the short interval between two polls.
//!
//! Dropping a [`Cluster`] stops the processes it started (by PID: SIGTERM,
//! then SIGKILL), the echo servers, deletes the namespaces and the temporary
//! directory. When the test is panicking it first prints the tail of every
//! process log (set `BRAID_E2E_KEEP=1` to keep the directory as well).

// Two test targets include this with different needs: what one leaves
// unused the other uses.
#![allow(unreachable_pub, dead_code, unused_imports)]

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
};

use braid_capture::testing::{TestNet, TestPod};
use serde_json::{Value, json};

// === the topology ===

/// The `web` Service's virtual IP and port (→ targetPort 8080).
pub const WEB_VIP: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 10), 80));

/// One pod of the topology.
#[derive(Clone, Copy, Debug)]
pub struct PodDef {
    pub name: &'static str,
    pub namespace: &'static str,
    pub service_account: &'static str,
    pub node: &'static str,
    pub ip: Ipv4Addr,
    /// The TCP echo port the pod serves, if any.
    pub port: Option<u16>,
    /// Whether the pod's effective mode is ambient (from its namespace).
    pub ambient: bool,
    /// Whether the pod runs a braid-proxy sidecar (its namespace is in
    /// sidecar mode; the test starts `init` and `sidecar` in it).
    pub sidecar: bool,
    /// `K8S_POD_UID` as the runtime passes it.
    pub uid: &'static str,
}

impl PodDef {
    /// `ip:port` of the pod's echo server.
    pub fn echo_addr(&self) -> SocketAddr {
        let port = self.port.expect("this pod serves no echo port");
        SocketAddr::V4(SocketAddrV4::new(self.ip, port))
    }
}

/// The nodes; each runs one ztunnel and one agent.
pub const NODES: [&str; 2] = ["node-a", "node-b"];

/// Namespaces and their `braid.dev/mode` label.
pub const NAMESPACES: [(&str, &str); 4] = [
    ("shop", "ambient"),
    ("inventory", "ambient"),
    ("legacy", "none"),
    ("orders", "sidecar"),
];

/// node-a: client, web (shop); node-b: api (inventory), legacy (legacy, not meshed).
pub const PODS: [PodDef; 5] = [
    PodDef {
        name: "client",
        namespace: "shop",
        service_account: "client",
        node: "node-a",
        ip: Ipv4Addr::new(198, 18, 0, 11),
        port: None,
        ambient: true,
        sidecar: false,
        uid: "0b7e4a2c-0000-4000-8000-00000000c11e",
    },
    PodDef {
        name: "web",
        namespace: "shop",
        service_account: "web",
        node: "node-a",
        ip: Ipv4Addr::new(198, 18, 0, 12),
        port: Some(8080),
        ambient: true,
        sidecar: false,
        uid: "0b7e4a2c-0000-4000-8000-0000000000eb",
    },
    PodDef {
        name: "api",
        namespace: "inventory",
        service_account: "api",
        node: "node-b",
        ip: Ipv4Addr::new(198, 18, 1, 21),
        port: Some(9090),
        ambient: true,
        sidecar: false,
        uid: "0b7e4a2c-0000-4000-8000-000000000a91",
    },
    PodDef {
        name: "legacy",
        namespace: "legacy",
        service_account: "legacy",
        node: "node-b",
        ip: Ipv4Addr::new(198, 18, 1, 22),
        port: Some(7070),
        ambient: false,
        sidecar: false,
        uid: "0b7e4a2c-0000-4000-8000-0000000001e9",
    },
    PodDef {
        name: "orders",
        namespace: "orders",
        service_account: "orders",
        node: "node-a",
        ip: Ipv4Addr::new(198, 18, 0, 31),
        port: Some(8081),
        ambient: false,
        sidecar: true,
        uid: "0b7e4a2c-0000-4000-8000-0000000003d5",
    },
];

/// A pod outside [`PODS`], added by the last step: it starts in mode none
/// (namespace `late`) and its namespace turns ambient while it runs.
pub const LATE: PodDef = PodDef {
    name: "late",
    namespace: "late",
    service_account: "late",
    node: "node-a",
    ip: Ipv4Addr::new(198, 18, 0, 41),
    port: Some(8082),
    ambient: false,
    sidecar: false,
    uid: "0b7e4a2c-0000-4000-8000-00000000014e",
};

/// A pod that was running before the node's agent knew of it (no CNI ADD
/// until the test sends one), in its own namespace in mode none: step 9.
pub const EARLY: PodDef = PodDef {
    name: "early",
    namespace: "early",
    service_account: "early",
    node: "node-a",
    ip: Ipv4Addr::new(198, 18, 0, 42),
    port: Some(8083),
    ambient: false,
    sidecar: false,
    uid: "0b7e4a2c-0000-4000-8000-00000000014f",
};

/// The host's address on the bridge: the control plane listens there, so
/// sidecars inside pods reach it.
pub const HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 254);

/// The token of a sidecar pod's proxy (a `braid.dev/proxy-token` Secret).
pub fn pod_token(name: &str) -> String {
    format!("sidecar-{name}-0123456789abcdef0123456789abcdef")
}

/// The pod named `name`.
pub fn pod_def(name: &str) -> PodDef {
    *PODS
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no pod {name} in the topology"))
}

/// The bootstrap token of `node`'s proxies (a `braid.dev/proxy-token` Secret).
pub fn node_token(node: &str) -> String {
    format!("{node}-e2e-token-0123456789abcdef0123456789abcdef")
}

/// The configuration directory's files: namespaces, pods, the Service and
/// the node tokens.
pub fn base_config() -> Vec<(&'static str, String)> {
    let namespaces = namespaces_yaml(&[]);
    let pods = pods_yaml(&[]);
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  clusterIP: {}\n  selector:\n    app: web\n  ports:\n  - name: http\n    port: {}\n    targetPort: 8080\n",
        WEB_VIP.ip(),
        WEB_VIP.port()
    );
    let tokens = NODES
        .iter()
        .map(|node| {
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ztunnel-{node}\n  namespace: braid-system\ntype: braid.dev/proxy-token\nstringData:\n  token: {}\n  node: {node}\n",
                node_token(node)
            )
        })
        .chain(PODS.iter().filter(|p| p.sidecar).map(|p| {
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sidecar-{name}\n  namespace: braid-system\ntype: braid.dev/proxy-token\nstringData:\n  token: {}\n  pod: {ns}/{name}\n",
                pod_token(p.name),
                name = p.name,
                ns = p.namespace,
            )
        }))
        .collect::<Vec<_>>()
        .join("---\n");
    vec![
        ("namespaces.yaml", namespaces),
        ("pods.yaml", pods),
        ("web-service.yaml", service),
        ("tokens.yaml", tokens),
    ]
}

/// `namespaces.yaml`: every namespace with its mode, except those
/// `overrides` gives another mode as `(namespace, mode)`.
pub fn namespaces_yaml(overrides: &[(&str, &str)]) -> String {
    NAMESPACES
        .iter()
        .map(|(name, mode)| {
            let mode = overrides
                .iter()
                .find(|(ns, _)| ns == name)
                .map_or(*mode, |(_, m)| *m);
            namespace_yaml(name, mode)
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// One Namespace document with its `braid.dev/mode` label.
pub fn namespace_yaml(name: &str, mode: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    braid.dev/mode: {mode}\n"
    )
}

/// `pods.yaml`: every pod of [`PODS`], or its replacement in `overrides`
/// (same name).
pub fn pods_yaml(overrides: &[PodDef]) -> String {
    PODS.iter()
        .map(|p| overrides.iter().find(|o| o.name == p.name).unwrap_or(p))
        .map(pod_yaml)
        .collect::<Vec<_>>()
        .join("---\n")
}

fn pod_yaml(p: &PodDef) -> String {
    let mut ports = p.port.map_or_else(String::new, |port| {
        format!("    ports:\n    - name: tcp\n      containerPort: {port}\n")
    });
    if p.sidecar {
        ports.push_str("  - name: braid-proxy\n    image: braid/proxy:dev\n");
    }
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    app: {name}\nspec:\n  nodeName: {node}\n  serviceAccountName: {sa}\n  containers:\n  - name: app\n    image: example/{name}:1\n{ports}status:\n  phase: Running\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n  conditions:\n  - type: Ready\n    status: \"True\"\n",
        name = p.name,
        ns = p.namespace,
        node = p.node,
        sa = p.service_account,
        ip = p.ip,
    )
}

/// An AuthorizationPolicy denying every connection from `source_ns` to the
/// workloads of `ns`.
pub fn deny_from_namespace(ns: &str, name: &str, source_ns: &str) -> String {
    format!(
        "apiVersion: braid.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  action: DENY\n  rules:\n  - from:\n      namespaces: [{source_ns}]\n"
    )
}

/// An AuthorizationPolicy allowing only `principal` to `port` of the
/// workloads of `ns` (ALLOW is exclusive: everything else is refused).
pub fn allow_principal(ns: &str, name: &str, principal: &str, port: u16) -> String {
    format!(
        "apiVersion: braid.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  action: ALLOW\n  rules:\n  - from:\n      principals: [\"{principal}\"]\n    to:\n      ports: [{port}]\n"
    )
}

/// A namespace-wide PeerAuthentication.
pub fn peer_authentication(ns: &str, name: &str, mode: &str) -> String {
    format!(
        "apiVersion: braid.dev/v1alpha1\nkind: PeerAuthentication\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  mtls:\n    mode: {mode}\n"
    )
}

mod cluster;
mod cni;
mod hbone;
pub mod kube;
mod process;
mod traffic;

pub use cluster::*;
pub use cni::*;
pub use hbone::*;
pub use process::*;
pub use traffic::*;
