//! Pods: created like a runtime creates them (namespace, Pod document, CNI
//! ADD, and for sidecar pods `braid-proxy init` and the sidecar), removed
//! the same way in reverse, and replaced by a rollout that moves traffic
//! only once the new pod answers through the mesh.

use std::{
    ffi::OsString,
    net::SocketAddr,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use braid_capture::NetNs;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;

use super::{Mesh, START_LIMIT, random_token};
use crate::demo::{
    http, net,
    state::Owned,
    topology::{self, APPS, EDGES, Mode, Pod},
    traffic::{self, Endpoint},
};

/// How long the CNI plugin may take (it waits for the control plane to
/// know the pod).
const CNI_LIMIT: Duration = Duration::from_secs(45);
/// Successive good requests that make a new pod "ready".
const READY_STREAK: u32 = 5;
/// After traffic moved to a new pod, how long requests already sent to the
/// old one get to finish before it goes.
const DRAIN: Duration = Duration::from_millis(2500);

/// What a CNI call says about a pod.
#[derive(Debug)]
pub(super) struct CniPod<'a> {
    /// The node whose agent the plugin calls.
    pub(super) node: &'a str,
    /// `K8S_POD_NAMESPACE`.
    pub(super) namespace: &'a str,
    /// `K8S_POD_NAME`.
    pub(super) name: String,
    /// `K8S_POD_UID`.
    pub(super) uid: String,
    /// The address the runtime gave `eth0` (the plugin's `prevResult`).
    pub(super) ip: std::net::Ipv4Addr,
}

/// A pod that exists, with its server task and namespace.
#[derive(Debug)]
pub(super) struct LivePod {
    pub(super) pod: Pod,
    pub(super) net: net::PodNet,
    pub(super) netns: Arc<NetNs>,
    server: tokio::task::JoinHandle<()>,
}

// === impl Mesh ===

impl Mesh {
    /// Creates `pod` and returns its endpoint (traffic does not go to it
    /// until the caller swaps it in).
    pub(super) async fn add_pod(
        &mut self,
        owned: &mut Owned,
        pod: Pod,
    ) -> anyhow::Result<Endpoint> {
        let name = pod.name();
        let app = pod.app();
        let net = net::add_pod(owned, &name, pod.ip()).await?;
        let netns = Arc::new(
            NetNs::open(&net.path)
                .with_context(|| format!("cannot open pod {name}'s namespace"))?,
        );
        let body = format!("hello from {}/{name}\n", app.namespace);
        let server = http::serve(&netns, app.port, body)?;
        let mode = match (pod.sidecar, self.modes[pod.app]) {
            (true, _) => Mode::Sidecar,
            (false, Mode::Ambient) => Mode::Ambient,
            (false, _) => Mode::None,
        };
        self.pods.push(LivePod {
            pod: pod.clone(),
            net: net.clone(),
            netns: Arc::clone(&netns),
            server,
        });
        self.write_pods()?;
        if pod.sidecar {
            let token = random_token()?;
            let file = self.dir.join(format!("{name}.token"));
            std::fs::write(&file, &token)
                .with_context(|| format!("cannot write {}", file.display()))?;
            let secret = topology::token_yaml(
                &format!("sidecar-{name}"),
                &token,
                None,
                Some(&format!("{}/{name}", app.namespace)),
            );
            self.write_config(&format!("token-{name}.yaml"), &secret)?;
        }
        self.cni(&pod, &net, "ADD").await?;
        if pod.sidecar {
            self.start_sidecar(owned, &pod, &net).await?;
        }
        Ok(Endpoint {
            pod: name,
            addr: SocketAddr::from((pod.ip(), app.port)),
            netns,
            mode,
        })
    }

    /// Removes a pod: sidecar stopped, CNI DEL, server stopped, namespace
    /// and Pod document deleted.
    async fn remove_pod(&mut self, owned: &mut Owned, name: &str) -> anyhow::Result<()> {
        let Some(i) = self.pods.iter().position(|p| p.pod.name() == name) else {
            return Ok(());
        };
        let live = self.pods.remove(i);
        if live.pod.sidecar {
            owned.stop(&format!("sidecar {name}")).await?;
            let _ = self.remove_config(&format!("token-{name}.yaml"));
        }
        self.cni(&live.pod, &live.net, "DEL").await?;
        live.server.abort();
        owned.delete_netns(&live.net.netns).await?;
        self.write_pods()
    }

    fn write_pods(&self) -> anyhow::Result<()> {
        let docs: Vec<String> = self.pods.iter().map(|p| p.pod.yaml()).collect();
        self.write_config("pods.yaml", &docs.join("---\n"))
    }

    /// Replaces application `app`'s pod by a new one in its namespace's
    /// current mode, the way a rolling restart does: the new pod first,
    /// traffic moved once it answers through the mesh, the old pod removed
    /// after requests to it finished. Returns the new pod's name.
    pub(crate) async fn rollout(
        &mut self,
        owned: &mut Owned,
        app: usize,
    ) -> anyhow::Result<String> {
        let old = self.current(app)?;
        let generation = self
            .pods
            .iter()
            .filter(|p| p.pod.app == app)
            .map(|p| p.pod.generation)
            .max()
            .unwrap_or(0)
            + 1;
        let pod = Pod {
            app,
            generation,
            sidecar: self.modes[app] == Mode::Sidecar,
        };
        let new = self.add_pod(owned, pod).await?;
        self.wait_until_serving(owned, app, &new).await?;
        if let Ok(mut endpoints) = self.endpoints.write()
            && let Some(slot) = endpoints.get_mut(app)
        {
            *slot = new.clone();
        }
        tokio::time::sleep(DRAIN).await;
        self.remove_pod(owned, &old.pod).await?;
        Ok(new.pod)
    }

    /// Waits until `candidate`, as application `app`, answers (and calls)
    /// on every edge it is part of, [`READY_STREAK`] times in a row.
    async fn wait_until_serving(
        &self,
        owned: &mut Owned,
        app: usize,
        candidate: &Endpoint,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_LIMIT;
        for (client, server) in EDGES.into_iter().filter(|(c, s)| *c == app || *s == app) {
            let pick = |i: usize| {
                if i == app {
                    Ok(candidate.clone())
                } else {
                    self.current(i)
                }
            };
            let (from, to) = (pick(client)?, pick(server)?);
            let mut streak = 0;
            while streak < READY_STREAK {
                owned.check_running()?;
                match traffic::request(&from, &to).await {
                    Ok(()) => streak += 1,
                    Err(e) if Instant::now() > deadline => bail!(
                        "{} → {} did not work within {START_LIMIT:?}: {e:#}",
                        from.pod,
                        to.pod
                    ),
                    Err(_) => {
                        streak = 0;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Waits until every edge works between the current pods.
    pub(super) async fn wait_for_edges(&self, owned: &mut Owned) -> anyhow::Result<()> {
        for app in 0..APPS.len() {
            let current = self.current(app)?;
            self.wait_until_serving(owned, app, &current).await?;
        }
        Ok(())
    }

    /// Runs `braid-proxy init` (a no-op with the agent's sidecar rules,
    /// kept as the init container would run it) and starts the sidecar.
    async fn start_sidecar(
        &self,
        owned: &mut Owned,
        pod: &Pod,
        net: &net::PodNet,
    ) -> anyhow::Result<()> {
        let name = pod.name();
        let init = tokio::process::Command::new("ip")
            .args(["netns", "exec", &net.netns])
            .arg(&self.bins.proxy)
            .arg("init")
            .stdin(Stdio::null())
            .output()
            .await
            .context("cannot run braid-proxy init")?;
        if !init.status.success() {
            bail!(
                "braid-proxy init in pod {name} failed: {}",
                String::from_utf8_lossy(&init.stderr).trim()
            );
        }
        let args: Vec<OsString> = vec![
            "netns".into(),
            "exec".into(),
            net.netns.clone().into(),
            self.bins.proxy.clone().into(),
            "sidecar".into(),
            "--pod".into(),
            format!("{}/{name}", pod.app().namespace).into(),
            "--control-plane".into(),
            format!("http://{}", self.xds).into(),
            "--ca-root".into(),
            self.ca_root.clone().into(),
            "--token-file".into(),
            self.dir.join(format!("{name}.token")).into(),
        ];
        owned.spawn(
            &format!("sidecar {name}"),
            std::path::Path::new("ip"),
            &self.bins.proxy,
            &args,
        )?;
        Ok(())
    }

    /// Runs the `braid-cni` plugin binary for `pod` exactly as a container
    /// runtime does: `CNI_*` environment, network configuration on stdin.
    async fn cni(&self, pod: &Pod, net: &net::PodNet, command: &str) -> anyhow::Result<()> {
        let target = CniPod {
            node: pod.app().node,
            namespace: pod.app().namespace,
            name: pod.name(),
            uid: pod.uid(),
            ip: pod.ip(),
        };
        self.cni_for(&target, net, command).await
    }

    /// [`Mesh::cni`] for any pod, also one outside [`APPS`] (the waypoint
    /// step's).
    pub(super) async fn cni_for(
        &self,
        pod: &CniPod<'_>,
        net: &net::PodNet,
        command: &str,
    ) -> anyhow::Result<()> {
        let node = self.node(pod.node)?;
        let prev = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": net.path}],
            "ips": [{"address": format!("{}/{}", pod.ip, net::PREFIX_LEN), "interface": 0}],
            "dns": {},
        });
        let conf = json!({
            "cniVersion": "1.0.0",
            "name": "braid-demo",
            "type": "braid-cni",
            "agentSocket": node.agent_socket,
            "prevResult": prev,
        });
        let uid = &pod.uid;
        let container = format!("c-{uid}");
        let mut child = tokio::process::Command::new(&self.bins.cni)
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &container)
            .env("CNI_NETNS", &net.path)
            .env("CNI_IFNAME", "eth0")
            .env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={container};K8S_POD_UID={uid}",
                    pod.namespace, pod.name
                ),
            )
            .env("CNI_PATH", "/opt/cni/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot run the braid-cni plugin")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(conf.to_string().as_bytes())
                .await
                .context("cannot write the CNI plugin's stdin")?;
        }
        let out = tokio::time::timeout(CNI_LIMIT, child.wait_with_output())
            .await
            .with_context(|| {
                format!(
                    "CNI {command} of pod {} took longer than {CNI_LIMIT:?}",
                    pod.name
                )
            })?
            .context("cannot wait for the CNI plugin")?;
        if !out.status.success() {
            bail!(
                "CNI {command} of pod {}/{} failed ({}): {} {}",
                pod.namespace,
                pod.name,
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}
