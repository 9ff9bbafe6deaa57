//! The demo mesh's processes and configuration: `braid-control` on a YAML
//! directory, per node a `braid-proxy ztunnel` and a `braid-cni agent`,
//! driven the way a cluster drives them (configuration files the control
//! plane watches, the CNI plugin binary run with a runtime's environment).

use std::{
    ffi::OsString,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{
    http,
    metrics::Source,
    net,
    preflight::Binaries,
    state::Owned,
    topology::{self, APPS, Mode, NODES, Pod},
    traffic::{Endpoint, Endpoints},
};

mod pods;
mod waypoint;

pub(crate) use waypoint::WaypointStep;

/// How long the control plane and the proxies may take to come up.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a configuration change may take to reach the proxies.
const PROPAGATION_LIMIT: Duration = Duration::from_secs(10);

/// One node's endpoints.
#[derive(Debug)]
struct Node {
    name: &'static str,
    /// The ztunnel's admin endpoint (`/metrics`, `/config_dump`).
    admin: SocketAddr,
    agent_socket: PathBuf,
}

/// The running mesh. Processes and namespaces belong to [`Owned`], which
/// removes them; this holds what the walk-through needs to drive them.
#[derive(Debug)]
pub(crate) struct Mesh {
    bins: Binaries,
    dir: PathBuf,
    config_dir: PathBuf,
    ca_root: PathBuf,
    xds: SocketAddr,
    nodes: Vec<Node>,
    /// Each application's namespace mode (indexes of [`APPS`]).
    modes: [Mode; 3],
    /// The pods that exist now, with their servers and namespaces.
    pods: Vec<pods::LivePod>,
    /// The current pod of each application, which the traffic targets.
    pub(crate) endpoints: Endpoints,
}

// === impl Mesh ===

impl Mesh {
    /// Builds the network, starts the control plane and both nodes, creates
    /// the first pod of every application and waits until every edge works.
    pub(crate) async fn start(bins: &Binaries, owned: &mut Owned) -> anyhow::Result<Mesh> {
        let started = Instant::now();
        net::create_fabric(owned).await?;
        let dir = owned.dir().to_path_buf();
        let mut mesh = Mesh {
            bins: bins.clone(),
            config_dir: dir.join("config"),
            ca_root: dir.join("ca").join("root-cert.pem"),
            xds: SocketAddr::from((net::HOST, 0)),
            dir,
            nodes: Vec::new(),
            modes: APPS.map(|a| a.initial_mode),
            pods: Vec::new(),
            endpoints: Arc::new(RwLock::new(Vec::new())),
        };
        std::fs::create_dir_all(&mesh.config_dir)
            .with_context(|| format!("cannot create {}", mesh.config_dir.display()))?;
        mesh.write_config("namespaces.yaml", &topology::namespaces_yaml(&mesh.modes))?;
        let mut tokens = Vec::new();
        for node in NODES {
            let token = random_token()?;
            let file = mesh.dir.join(format!("{node}.token"));
            std::fs::write(&file, &token)
                .with_context(|| format!("cannot write {}", file.display()))?;
            tokens.push(topology::token_yaml(
                &format!("ztunnel-{node}"),
                &token,
                Some(node),
                None,
            ));
        }
        mesh.write_config("node-tokens.yaml", &tokens.join("---\n"))?;
        mesh.start_control_plane(owned).await?;
        for node in NODES {
            mesh.start_node(owned, node).await?;
        }
        let mut endpoints = Vec::new();
        for (app, def) in APPS.iter().enumerate() {
            let pod = Pod {
                app,
                generation: 1,
                sidecar: def.initial_mode == Mode::Sidecar,
            };
            endpoints.push(mesh.add_pod(owned, pod).await?);
        }
        if let Ok(mut current) = mesh.endpoints.write() {
            *current = endpoints;
        }
        mesh.wait_for_edges(owned).await?;
        println!(
            "demo: mesh up in {:.1}s (control plane, 2 ztunnels, 2 CNI agents, {} pods)",
            started.elapsed().as_secs_f64(),
            mesh.pods.len()
        );
        Ok(mesh)
    }

    /// Writes a configuration file atomically (a hidden temporary file,
    /// which the control plane ignores, renamed into place).
    pub(crate) fn write_config(&self, file: &str, text: &str) -> anyhow::Result<()> {
        let tmp = self.config_dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, self.config_dir.join(file))
            .with_context(|| format!("cannot write {}", self.config_dir.join(file).display()))
    }

    /// Deletes a configuration file.
    pub(crate) fn remove_config(&self, file: &str) -> anyhow::Result<()> {
        let path = self.config_dir.join(file);
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))
    }

    /// The configuration directory.
    pub(crate) fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The current mode of application `app`'s namespace.
    pub(crate) fn mode(&self, app: usize) -> Mode {
        self.modes[app]
    }

    /// Every proxy's metrics endpoint: the ztunnels and the sidecars.
    pub(crate) fn metric_sources(&self) -> Vec<(String, Source)> {
        let ztunnels = self
            .nodes
            .iter()
            .map(|n| (format!("ztunnel {}", n.name), Source::Host(n.admin)));
        let sidecars = self.pods.iter().filter(|p| p.pod.sidecar).map(|p| {
            (
                format!("sidecar {}", p.pod.name()),
                Source::Pod(
                    Arc::clone(&p.netns),
                    SocketAddr::from(([127, 0, 0, 1], 15000)),
                ),
            )
        });
        ztunnels.chain(sidecars).collect()
    }

    /// The current pods, as (netns name, address:port, app index).
    pub(crate) fn current_pods(&self) -> Vec<(String, SocketAddr, usize)> {
        let endpoints = self.endpoints.read().map(|e| e.clone()).unwrap_or_default();
        endpoints
            .iter()
            .enumerate()
            .filter_map(|(app, e)| {
                let live = self.pods.iter().find(|p| p.pod.name() == e.pod)?;
                Some((live.net.netns.clone(), e.addr, app))
            })
            .collect()
    }

    /// Starts `braid-control` on the host link (sidecars in pods dial it);
    /// picks other ports if one was taken meanwhile.
    async fn start_control_plane(&mut self, owned: &mut Owned) -> anyhow::Result<()> {
        for attempt in 1..=3 {
            self.xds = SocketAddr::from((net::HOST, free_port(net::HOST.into())?));
            let admin = SocketAddr::from(([127, 0, 0, 1], free_port([127, 0, 0, 1].into())?));
            let name = format!("braid-control#{attempt}");
            let args: Vec<OsString> = vec![
                "--config-dir".into(),
                self.config_dir.clone().into(),
                "--xds-listen".into(),
                self.xds.to_string().into(),
                "--admin-listen".into(),
                admin.to_string().into(),
                "--webhook-listen".into(),
                "127.0.0.1:0".into(),
                "--ca-dir".into(),
                self.dir.join("ca").into(),
                "--debounce-ms".into(),
                "20".into(),
                "--max-debounce-ms".into(),
                "200".into(),
            ];
            owned.spawn(&name, &self.bins.control, &self.bins.control, &args)?;
            let deadline = Instant::now() + START_LIMIT;
            loop {
                if let Err(e) = owned.check(&name) {
                    if format!("{e}").contains("in use") && attempt < 3 {
                        owned.stop(&name).await?;
                        break;
                    }
                    return Err(e);
                }
                if let Ok((200, _)) = http::get_local(admin, "/ready").await
                    && self.ca_root.is_file()
                {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    bail!(
                        "braid-control was not ready within {START_LIMIT:?}; see its log in {}",
                        self.dir.display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        bail!("braid-control could not bind its ports in 3 attempts")
    }

    /// Starts `node`'s ztunnel and CNI agent and waits for their sockets.
    async fn start_node(&mut self, owned: &mut Owned, node: &'static str) -> anyhow::Result<()> {
        let dir = self.dir.join(node);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let token = self.dir.join(format!("{node}.token"));
        let handoff = dir.join("ztunnel.sock");
        let agent_socket = dir.join("cni.sock");
        let control_plane = format!("http://{}", self.xds);
        let port = || free_port([127, 0, 0, 1].into()).map(|p| format!("127.0.0.1:{p}"));
        let admin: SocketAddr = port()?.parse().context("a loopback address")?;
        let ztunnel: Vec<OsString> = vec![
            "ztunnel".into(),
            "--admin-listen".into(),
            admin.to_string().into(),
            "--metrics-listen".into(),
            port()?.into(),
            "--readiness-listen".into(),
            port()?.into(),
            "--node".into(),
            node.into(),
            "--control-plane".into(),
            control_plane.clone().into(),
            "--ca-root".into(),
            self.ca_root.clone().into(),
            "--token-file".into(),
            token.clone().into(),
            "--handoff-socket".into(),
            handoff.clone().into(),
        ];
        let name = format!("ztunnel {node}");
        owned.spawn(&name, &self.bins.proxy, &self.bins.proxy, &ztunnel)?;
        wait_for_file(owned, &name, &handoff).await?;
        let agent: Vec<OsString> = vec![
            "agent".into(),
            "--node".into(),
            node.into(),
            "--socket".into(),
            agent_socket.clone().into(),
            "--ztunnel-socket".into(),
            handoff.into(),
            "--state-dir".into(),
            dir.join("cni-state").into(),
            "--control-plane".into(),
            control_plane.into(),
            "--ca-root".into(),
            self.ca_root.clone().into(),
            "--token-file".into(),
            token.into(),
            // Sidecar pods get their redirect rules from the plugin.
            "--sidecar-rules".into(),
        ];
        let name = format!("agent {node}");
        owned.spawn(&name, &self.bins.cni, &self.bins.cni, &agent)?;
        wait_for_file(owned, &name, &agent_socket).await?;
        self.nodes.push(Node {
            name: node,
            admin,
            agent_socket,
        });
        Ok(())
    }

    /// Sets application `app`'s namespace to `mode` and waits until the
    /// ztunnel of its node sees its current pod in that mode.
    pub(crate) async fn set_mode(&mut self, app: usize, mode: Mode) -> anyhow::Result<()> {
        self.modes[app] = mode;
        self.write_config("namespaces.yaml", &topology::namespaces_yaml(&self.modes))?;
        let pod = self.current(app)?.pod;
        self.until_node_dump(app, |dump| {
            dump["workloads"].as_array().is_some_and(|w| {
                w.iter()
                    .any(|w| w["name"] == pod.as_str() && w["mode"] == mode.label())
            })
        })
        .await
        .with_context(|| format!("the ztunnel did not see {pod} in mode {mode}"))
    }

    /// Waits until the ztunnel of application `app`'s node captures its
    /// current pod (its admin `/config_dump` lists it), then shows the pod
    /// as ambient; the pod's name.
    pub(crate) async fn wait_captured(&self, app: usize) -> anyhow::Result<String> {
        let pod = self.current(app)?.pod;
        let workload = format!("{}/{pod}", APPS[app].namespace);
        self.until_node_dump(app, |dump| {
            dump["captured_pods"]
                .as_array()
                .is_some_and(|pods| pods.iter().any(|p| p["workload"] == workload.as_str()))
        })
        .await
        .with_context(|| {
            format!("the ztunnel did not capture {workload}; is the braid-cni agent running (see its log)?")
        })?;
        // The view shows each pod's mode from its endpoint.
        if let Ok(mut endpoints) = self.endpoints.write()
            && let Some(slot) = endpoints.get_mut(app)
        {
            slot.mode = Mode::Ambient;
        }
        Ok(pod)
    }

    /// Polls the admin `/config_dump` of the ztunnel on application `app`'s
    /// node until `done` holds for it, for at most [`PROPAGATION_LIMIT`].
    async fn until_node_dump(
        &self,
        app: usize,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> anyhow::Result<()> {
        let node = APPS[app].node;
        let admin = self.node(node)?.admin;
        let deadline = Instant::now() + PROPAGATION_LIMIT;
        loop {
            if let Ok((200, body)) = http::get_local(admin, "/config_dump").await
                && let Ok(dump) = serde_json::from_str::<serde_json::Value>(&body)
                && done(&dump)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("waited {PROPAGATION_LIMIT:?} on {node}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn node(&self, name: &str) -> anyhow::Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .with_context(|| format!("no node {name}"))
    }

    /// Application `app`'s current endpoint.
    pub(crate) fn current(&self, app: usize) -> anyhow::Result<Endpoint> {
        self.endpoints
            .read()
            .ok()
            .and_then(|e| e.get(app).cloned())
            .with_context(|| format!("no pod of {}", APPS[app].label()))
    }
}

/// A port free on `ip` now (bound, read, released: a clash afterwards is
/// unlikely and then fails loudly).
fn free_port(ip: std::net::IpAddr) -> anyhow::Result<u16> {
    Ok(TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .with_context(|| format!("cannot find a free port on {ip}"))?
        .port())
}

/// Waits for `path` to appear while the process `name` runs.
async fn wait_for_file(owned: &mut Owned, name: &str, path: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_LIMIT;
    while !path.exists() {
        owned.check(name)?;
        if Instant::now() > deadline {
            bail!(
                "{name} did not create {} within {START_LIMIT:?}",
                path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// 64 hex digits from the kernel's random source.
fn random_token() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for a proxy token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
