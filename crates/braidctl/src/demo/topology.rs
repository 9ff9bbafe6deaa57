//! What the demo mesh is made of: three applications in three namespaces,
//! the edges the traffic generator drives, and the YAML documents the
//! control plane reads for them.

use std::{fmt, net::Ipv4Addr};

/// The two logical nodes; each runs one ztunnel and one CNI agent.
pub(crate) const NODES: [&str; 2] = ["node-a", "node-b"];

/// A namespace's `braid.dev/mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A braid-proxy sidecar in every pod.
    Sidecar,
    /// The node's ztunnel captures the pods.
    Ambient,
    /// Not meshed.
    None,
}

/// One application: a namespace, a service account and an HTTP port.
#[derive(Debug, Clone, Copy)]
pub(crate) struct App {
    pub(crate) namespace: &'static str,
    /// Pod name prefix, `app` label and service account.
    pub(crate) name: &'static str,
    pub(crate) node: &'static str,
    pub(crate) port: u16,
    /// The namespace's mode when the demo starts.
    pub(crate) initial_mode: Mode,
    /// Last octet of the first pod's address; later pods count up.
    first_octet: u8,
}

/// The applications, in the order the view lists them.
pub(crate) const APPS: [App; 3] = [
    App {
        namespace: "shop",
        name: "web",
        node: "node-a",
        port: 8080,
        initial_mode: Mode::Sidecar,
        first_octet: 11,
    },
    App {
        namespace: "inventory",
        name: "stock",
        node: "node-b",
        port: 9090,
        initial_mode: Mode::Ambient,
        first_octet: 21,
    },
    App {
        namespace: "legacy",
        name: "ledger",
        node: "node-b",
        port: 7070,
        initial_mode: Mode::None,
        first_octet: 31,
    },
];

/// The edges the traffic generator drives, as (client app, server app)
/// indexes into [`APPS`].
pub(crate) const EDGES: [(usize, usize); 3] = [(2, 0), (0, 1), (1, 0)];

/// One pod of an application (a rollout replaces it with the next one).
#[derive(Debug, Clone)]
pub(crate) struct Pod {
    /// Index into [`APPS`].
    pub(crate) app: usize,
    /// 1 for the first pod, then one more per rollout.
    pub(crate) generation: u8,
    /// Whether it runs a braid-proxy sidecar.
    pub(crate) sidecar: bool,
}

// === impl Mode ===

impl Mode {
    /// The label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Mode::Sidecar => "sidecar",
            Mode::Ambient => "ambient",
            Mode::None => "none",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

// === impl App ===

impl App {
    /// `namespace/name`, how the view names the application.
    pub(crate) fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

// === impl Pod ===

impl Pod {
    /// The application.
    pub(crate) fn app(&self) -> &'static App {
        &APPS[self.app]
    }

    /// The pod's name, e.g. `web-1`.
    pub(crate) fn name(&self) -> String {
        format!("{}-{}", self.app().name, self.generation)
    }

    /// The pod's address.
    pub(crate) fn ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, 64, self.app().first_octet + self.generation - 1)
    }

    /// `K8S_POD_UID`: unique per pod, stable for its life.
    pub(crate) fn uid(&self) -> String {
        format!(
            "b7a1d000-0000-4000-8000-{:06x}{:06x}",
            self.app, self.generation
        )
    }

    /// Its Pod document (what the API server would hold).
    pub(crate) fn yaml(&self) -> String {
        let app = self.app();
        let mut containers = format!(
            "  - name: app\n    image: example/{}:1\n    ports:\n    - name: http\n      containerPort: {}\n",
            app.name, app.port
        );
        if self.sidecar {
            containers.push_str("  - name: braid-proxy\n    image: braid/proxy:dev\n");
        }
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    app: {app_name}\nspec:\n  nodeName: {node}\n  serviceAccountName: {app_name}\n  containers:\n{containers}status:\n  phase: Running\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n  conditions:\n  - type: Ready\n    status: \"True\"\n",
            name = self.name(),
            ns = app.namespace,
            app_name = app.name,
            node = app.node,
            ip = self.ip(),
        )
    }
}

/// `namespaces.yaml` for the given mode of each app's namespace.
pub(crate) fn namespaces_yaml(modes: &[Mode; 3]) -> String {
    APPS.iter()
        .zip(modes)
        .map(|(app, mode)| {
            format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n  labels:\n    braid.dev/mode: {mode}\n",
                app.namespace
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A proxy-token Secret for a node's proxies (`pod: None`) or one sidecar.
pub(crate) fn token_yaml(name: &str, token: &str, node: Option<&str>, pod: Option<&str>) -> String {
    let bound = match (node, pod) {
        (Some(node), _) => format!("  node: {node}\n"),
        (None, Some(pod)) => format!("  pod: {pod}\n"),
        (None, None) => String::new(),
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: braid-system\ntype: braid.dev/proxy-token\nstringData:\n  token: {token}\n{bound}"
    )
}

/// An AuthorizationPolicy denying every connection from `source_ns` to the
/// workloads of `ns`.
pub(crate) fn deny_yaml(name: &str, ns: &str, source_ns: &str) -> String {
    format!(
        "apiVersion: braid.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  action: DENY\n  rules:\n  - from:\n      namespaces: [{source_ns}]\n"
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Starts a control plane on the YAML directory `dir` and fails unless
    /// it rejected nothing there.
    pub(crate) async fn loads_cleanly(dir: &std::path::Path) -> anyhow::Result<()> {
        let cp = braid_control::ControlPlane::start(braid_control::Config::for_tests(dir)).await?;
        let errors = cp.config_errors();
        cp.shutdown().await;
        anyhow::ensure!(errors.is_empty(), "configuration errors: {errors:#?}");
        Ok(())
    }

    /// Every document the demo writes (both pods of a rollout, both sides
    /// of each mode switch, the tokens, the DENY policy) is accepted by the
    /// control plane with no configuration error.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_demo_configuration_is_valid() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let write = |file: &str, text: String| std::fs::write(dir.path().join(file), text);
        write(
            "namespaces.yaml",
            namespaces_yaml(&[Mode::Ambient, Mode::Ambient, Mode::Sidecar]),
        )?;
        let pods = [
            (0, 1, true),
            (0, 2, false),
            (1, 1, false),
            (2, 1, false),
            (2, 2, false),
        ];
        let docs: Vec<String> = pods
            .iter()
            .map(|&(app, generation, sidecar)| {
                Pod {
                    app,
                    generation,
                    sidecar,
                }
                .yaml()
            })
            .collect();
        write("pods.yaml", docs.join("---\n"))?;
        write(
            "tokens.yaml",
            [
                token_yaml(
                    "ztunnel-node-a",
                    "0123456789abcdef0123456789abcdef",
                    Some("node-a"),
                    None,
                ),
                token_yaml(
                    "sidecar-web-1",
                    "123456789abcdef0123456789abcdef0",
                    None,
                    Some("shop/web-1"),
                ),
            ]
            .join("---\n"),
        )?;
        write("deny.yaml", deny_yaml("deny-shop", "inventory", "shop"))?;
        loads_cleanly(dir.path()).await
    }

    #[test]
    fn pods_of_a_rollout_differ_in_name_address_and_uid() {
        let (a, b) = (
            Pod {
                app: 0,
                generation: 1,
                sidecar: true,
            },
            Pod {
                app: 0,
                generation: 2,
                sidecar: false,
            },
        );
        assert_eq!(
            (a.name(), b.name()),
            ("web-1".to_owned(), "web-2".to_owned())
        );
        assert_ne!(a.ip(), b.ip());
        assert_ne!(a.uid(), b.uid());
        assert!(a.yaml().contains("name: braid-proxy") && !b.yaml().contains("braid-proxy"));
    }
}
