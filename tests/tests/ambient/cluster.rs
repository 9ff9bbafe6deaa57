//! The cluster: control plane, one ztunnel and one agent per node, pods, sidecars.

// Two test targets include this with different needs: what one leaves
// unused the other uses.
#![allow(unreachable_pub, dead_code, unused_imports)]

use std::{
    collections::BTreeMap,
    ffi::OsString,
    io::Read as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use super::*;

// === the cluster ===

/// One node's processes and sockets.
pub struct Node {
    pub name: &'static str,
    /// The ztunnel's admin endpoint (`/metrics`, `/config_dump`, `/healthz/ready`).
    pub admin: SocketAddr,
    pub handoff_socket: PathBuf,
    pub agent_socket: PathBuf,
    /// The node's CNI configuration directory: the agent puts braid-cni
    /// in its chain, and the plugin runs take their configuration from it.
    pub cni_conf_dir: PathBuf,
    pub ztunnel: Option<Process>,
    pub agent: Option<Process>,
}

/// Everything the ambient tests share. See the module docs.
pub struct Cluster {
    pub bins: &'static Binaries,
    pub root: PathBuf,
    pub config_dir: PathBuf,
    pub ca_root: PathBuf,
    pub xds: SocketAddr,
    pub admin: SocketAddr,
    pub control: Option<Process>,
    pub nodes: Vec<Node>,
    pub echo: Vec<EchoServer>,
    pub pods: BTreeMap<&'static str, TestPod>,
    /// Sidecar processes started by [`Cluster::start_sidecar`].
    pub sidecars: Vec<Process>,
    /// Where the configuration goes: `None` writes the directory the control
    /// plane reads; `Some` applies it to a real API server instead.
    pub kube: Option<super::kube::ApiServer>,
    net: Option<TestNet>,
    dir: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Creates the namespaces and the configuration, starts the control
    /// plane and both nodes' ztunnel and agent, starts the echo servers and
    /// runs the CNI plugin's ADD for every pod.
    pub fn start() -> Cluster {
        Self::start_with(None)
    }

    /// [`Cluster::start`], with the control plane reading `kube`'s API
    /// server (`--source kube`), where the test applies the same objects.
    pub fn start_with(kube: Option<super::kube::ApiServer>) -> Cluster {
        let bins = binaries();
        let dir = tempfile::Builder::new()
            .prefix("braid-ambient-")
            .tempdir()
            .expect("create a temporary directory");
        let root = dir.path().to_path_buf();
        let net = TestNet::new("amb").expect("create the test network");
        let mut c = Cluster {
            bins,
            config_dir: root.join("config"),
            ca_root: root.join("ca").join("root-cert.pem"),
            xds: SocketAddr::from((HOST, free_port())),
            admin: SocketAddr::from(([127, 0, 0, 1], free_port())),
            root,
            control: None,
            nodes: Vec::new(),
            echo: Vec::new(),
            pods: BTreeMap::new(),
            sidecars: Vec::new(),
            kube,
            net: None,
            dir: Some(dir),
        };
        for def in &PODS {
            let pod = net.add_pod(def.name, def.ip).expect("add a pod namespace");
            c.pods.insert(def.name, pod);
        }
        net.add_host_link(HOST)
            .expect("plug the host into the bridge");
        c.net = Some(net);

        std::fs::create_dir_all(&c.config_dir).expect("create the config directory");
        for (file, text) in base_config() {
            c.write_config(file, &text);
        }
        c.start_control_plane();
        for node in NODES {
            c.start_node(node);
        }
        for def in &PODS {
            if let Some(port) = def.port {
                let server = EchoServer::start(c.pod(def.name), port);
                c.echo.push(server);
            }
        }
        for def in &PODS {
            c.cni_add(def);
        }
        c
    }

    /// The pod named `name`.
    pub fn pod(&self, name: &str) -> &TestPod {
        self.pods
            .get(name)
            .unwrap_or_else(|| panic!("no pod {name}"))
    }

    fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    fn log(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.log"))
    }

    /// Starts `braid-control` on two loopback ports picked here; picks
    /// again if another process took one of them in the meantime.
    fn start_control_plane(&mut self) {
        let log = self.log("braid-control");
        for attempt in 1..=3 {
            if attempt > 1 {
                self.xds = SocketAddr::from((HOST, free_port()));
                self.admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
            }
            let source: Vec<OsString> = match &self.kube {
                None => vec!["--config-dir".into(), self.config_dir.clone().into()],
                Some(kube) => vec![
                    "--source".into(),
                    "kube".into(),
                    "--kubeconfig".into(),
                    kube.kubeconfig.clone().into(),
                ],
            };
            let args: Vec<OsString> = source
                .into_iter()
                .chain([
                    "--xds-listen".into(),
                    self.xds.to_string().into(),
                    "--admin-listen".into(),
                    self.admin.to_string().into(),
                    "--ca-dir".into(),
                    self.root.join("ca").into(),
                    "--debounce-ms".into(),
                    "20".into(),
                    "--max-debounce-ms".into(),
                    "200".into(),
                ])
                .collect();
            let mut control = Process::start(
                "braid-control",
                &self.bins.control,
                args,
                child_env("info"),
                log.clone(),
            );
            let (admin, ca_root) = (self.admin, self.ca_root.clone());
            let mut clash = false;
            let (ready, _) = eventually("braid-control /ready", Duration::from_secs(20), || {
                if let Err(exited) = control.check_running() {
                    assert!(exited.contains("in use"), "{exited}");
                    clash = true;
                    return Ok(false);
                }
                match http_get(admin, "/ready") {
                    Ok((200, _)) if ca_root.is_file() => Ok(true),
                    Ok((status, body)) => Err(format!("/ready: {status} {body}")),
                    Err(e) => Err(format!("/ready: {e}")),
                }
            });
            if ready {
                self.control = Some(control);
                let errors = self.config_errors();
                assert!(
                    errors.trim() == "[]",
                    "the fixture's configuration has errors: {errors}"
                );
                return;
            }
            eprintln!("ambient e2e: braid-control's port was taken (clash: {clash}); retrying");
        }
        panic!(
            "braid-control could not bind its ports in 3 attempts; see {}",
            log.display()
        );
    }

    fn start_node(&mut self, node: &'static str) {
        let dir = self.root.join(node);
        std::fs::create_dir_all(&dir).expect("create the node directory");
        let token_file = dir.join("token");
        std::fs::write(&token_file, node_token(node)).expect("write the node token");
        let handoff_socket = dir.join("ztunnel.sock");
        let agent_socket = dir.join("cni.sock");
        let cni_conf_dir = dir.join("net.d");
        std::fs::create_dir_all(&cni_conf_dir).expect("create the CNI configuration directory");
        std::fs::write(cni_conf_dir.join(PRIMARY_FILE), PRIMARY_CONFLIST)
            .expect("write the primary CNI configuration");
        let control_plane = format!("http://{}", self.xds);
        // Two ztunnels share this host: each gets its own loopback ports.
        let port = || format!("127.0.0.1:{}", free_port());
        let admin: SocketAddr = port().parse().expect("a loopback address");

        let ztunnel_args: Vec<OsString> = vec![
            "ztunnel".into(),
            "--admin-listen".into(),
            admin.to_string().into(),
            "--metrics-listen".into(),
            port().into(),
            "--readiness-listen".into(),
            port().into(),
            "--node".into(),
            node.into(),
            "--control-plane".into(),
            control_plane.clone().into(),
            "--ca-root".into(),
            self.ca_root.clone().into(),
            "--token-file".into(),
            token_file.clone().into(),
            "--handoff-socket".into(),
            handoff_socket.clone().into(),
        ];
        let mut ztunnel = Process::start(
            &format!("ztunnel {node}"),
            &self.bins.proxy,
            ztunnel_args,
            child_env("debug"),
            self.log(&format!("ztunnel-{node}")),
        );
        eventually(
            &format!("the {node} ztunnel's hand-off socket"),
            Duration::from_secs(20),
            || {
                ztunnel.assert_running();
                handoff_socket
                    .exists()
                    .then_some(())
                    .ok_or_else(|| format!("{} does not exist", handoff_socket.display()))
            },
        );

        let agent_args: Vec<OsString> = vec![
            "agent".into(),
            "--node".into(),
            node.into(),
            "--socket".into(),
            agent_socket.clone().into(),
            "--ztunnel-socket".into(),
            handoff_socket.clone().into(),
            "--state-dir".into(),
            dir.join("cni-state").into(),
            "--control-plane".into(),
            control_plane.into(),
            "--ca-root".into(),
            self.ca_root.clone().into(),
            "--token-file".into(),
            token_file.into(),
            // Sidecar pods get their rules from the plugin too (init is
            // then a no-op).
            "--sidecar-rules".into(),
            "--cni-conf-dir".into(),
            cni_conf_dir.clone().into(),
        ];
        let mut agent = Process::start(
            &format!("agent {node}"),
            &self.bins.cni,
            agent_args,
            child_env("debug"),
            self.log(&format!("agent-{node}")),
        );
        eventually(
            &format!("the {node} agent's plugin socket, and braid-cni in its chain"),
            Duration::from_secs(20),
            || {
                agent.assert_running();
                if !agent_socket.exists() {
                    return Err(format!("{} does not exist", agent_socket.display()));
                }
                chained_conf(&cni_conf_dir).map(drop)
            },
        );
        self.nodes.push(Node {
            name: node,
            admin,
            handoff_socket,
            agent_socket,
            cni_conf_dir,
            ztunnel: Some(ztunnel),
            agent: Some(agent),
        });
    }

    /// Runs the `braid-cni` plugin binary with `command` for the pod named
    /// `name`, against its node's agent.
    pub fn cni(&self, command: &str, name: &str) -> CniOutcome {
        let def = pod_def(name);
        let socket = self
            .nodes
            .iter()
            .find(|n| n.name == def.node)
            .map(|n| n.cni_conf_dir.clone())
            .expect("the pod's node");
        run_cni(&self.bins.cni, command, &socket, &def, self.pod(name))
    }

    /// Runs the plugin's ADD for `def` and checks that the runtime gets the
    /// previous result back.
    fn cni_add(&mut self, def: &PodDef) {
        let out = self.cni("ADD", def.name);
        assert_eq!(
            out.code, 0,
            "CNI ADD of {}/{} failed: {out:?}",
            def.namespace, def.name
        );
        let result: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!("CNI ADD of {}: stdout is not JSON ({e}): {out:?}", def.name)
        });
        assert_eq!(
            result,
            prev_result(def, self.pod(def.name)),
            "CNI ADD of {} must pass the previous result through",
            def.name
        );
    }

    /// Writes a configuration file atomically (a hidden temporary file,
    /// which the control plane ignores, renamed into place).
    pub fn write_config(&self, file: &str, text: &str) {
        if let Some(kube) = &self.kube {
            return kube.apply(file, text);
        }
        let tmp = self.config_dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).expect("write a config file");
        std::fs::rename(&tmp, self.config_dir.join(file)).expect("rename a config file");
    }

    /// Deletes a configuration file.
    pub fn remove_config(&self, file: &str) {
        if let Some(kube) = &self.kube {
            return kube.delete(file);
        }
        std::fs::remove_file(self.config_dir.join(file)).expect("remove a config file");
    }

    /// The control plane's `/debug/config-errors` body.
    pub fn config_errors(&self) -> String {
        match http_get(self.admin, "/debug/config-errors") {
            Ok((_, body)) => body,
            Err(e) => format!("(cannot read /debug/config-errors: {e})"),
        }
    }

    /// `Err` naming every process we started that is no longer running.
    pub fn check_processes(&mut self) -> Result<(), String> {
        let mut dead = Vec::new();
        let procs = self.control.iter_mut().chain(
            self.nodes
                .iter_mut()
                .flat_map(|n| n.ztunnel.iter_mut().chain(n.agent.iter_mut())),
        );
        for p in procs {
            if let Err(e) = p.check_running() {
                dead.push(e);
            }
        }
        if dead.is_empty() {
            Ok(())
        } else {
            Err(dead.join("\n"))
        }
    }

    /// Panics naming every process we started that is no longer running.
    pub fn assert_processes(&mut self) {
        if let Err(e) = self.check_processes() {
            panic!("{e}");
        }
    }

    /// Runs `braid-proxy init` and then `braid-proxy sidecar` inside the
    /// sidecar pod `name`, as its init container and sidecar container
    /// would; the sidecar reaches the control plane over the host link.
    pub fn start_sidecar(&mut self, name: &str) {
        let def = pod_def(name);
        let pod = self.pod(name).clone();
        let in_pod = |args: &[&str]| -> Vec<OsString> {
            let mut all: Vec<OsString> =
                vec!["netns".into(), "exec".into(), pod.netns_name.clone().into()];
            all.push(self.bins.proxy.clone().into());
            all.extend(args.iter().map(OsString::from));
            all
        };
        let out = std::process::Command::new("ip")
            .args(in_pod(&["init"]))
            .output()
            .expect("run braid-proxy init");
        assert!(
            out.status.success(),
            "init in {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token_file = self.root.join(format!("{name}.token"));
        std::fs::write(&token_file, pod_token(name)).expect("write the pod token");
        let args = in_pod(&[
            "sidecar",
            "--pod",
            &format!("{}/{name}", def.namespace),
            "--control-plane",
            &format!("http://{}", self.xds),
            "--ca-root",
            &self.ca_root.display().to_string(),
            "--token-file",
            &token_file.display().to_string(),
        ]);
        let sidecar = Process::start(
            &format!("sidecar {name}"),
            Path::new("ip"),
            args,
            child_env("debug"),
            self.log(&format!("sidecar-{name}")),
        );
        self.sidecars.push(sidecar);
    }

    /// Re-creates pod `name` the way a rollout restart does, as a pod with
    /// (`sidecar`) or without a braid-proxy sidecar container: its sidecar
    /// stops, CNI DEL, its rules go (a new pod has a fresh namespace),
    /// `pods.yaml` describes the new pod, and once the ztunnel of its node
    /// sees it, CNI ADD and (with a sidecar) init and the sidecar again.
    pub fn restart_pod(&mut self, name: &str, sidecar: bool) {
        let prefix = format!("sidecar {name}");
        for mut p in std::mem::take(&mut self.sidecars) {
            if p.name == prefix {
                p.stop();
            } else {
                self.sidecars.push(p);
            }
        }
        let out = self.cni("DEL", name);
        assert_eq!(out.code, 0, "CNI DEL of {name}: {out:?}");
        let pod = self.pod(name).clone();
        let removed = std::process::Command::new("ip")
            .args(["netns", "exec", &pod.netns_name])
            .arg(&self.bins.proxy)
            .args(["init", "--remove"])
            .output()
            .expect("run braid-proxy init --remove");
        assert!(
            removed.status.success(),
            "init --remove in {name}: {removed:?}"
        );
        let def = PodDef {
            sidecar,
            ..pod_def(name)
        };
        self.write_config("pods.yaml", &pods_yaml(&[def]));
        let admin = self
            .nodes
            .iter()
            .find(|n| n.name == def.node)
            .map(|n| n.admin)
            .expect("the pod's node");
        eventually(
            &format!(
                "{}'s ztunnel to see {name} with sidecar={sidecar}",
                def.node
            ),
            Duration::from_secs(10),
            || {
                let dump = http_get(admin, "/config_dump")
                    .map_err(|e| e.to_string())?
                    .1;
                let dump: Value = serde_json::from_str(&dump).map_err(|e| e.to_string())?;
                let seen = dump["workloads"].as_array().is_some_and(|w| {
                    w.iter()
                        .any(|w| w["name"] == name && w["has_sidecar"] == sidecar)
                });
                seen.then_some(()).ok_or_else(|| "not yet".to_string())
            },
        );
        self.cni_add(&def);
        if sidecar {
            self.start_sidecar(name);
        }
    }

    /// The ztunnel process of `node`.
    pub fn ztunnel(&mut self, node: &str) -> &mut Process {
        self.node_mut(node)
            .ztunnel
            .as_mut()
            .expect("the node's ztunnel")
    }

    fn all_logs(&self) -> Vec<PathBuf> {
        let mut logs = vec![self.log("braid-control")];
        for node in NODES {
            logs.push(self.log(&format!("ztunnel-{node}")));
            logs.push(self.log(&format!("agent-{node}")));
        }
        logs
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let keep = std::env::var_os("BRAID_E2E_KEEP").is_some();
        if std::thread::panicking() {
            for log in self.all_logs().iter().filter(|l| l.exists()) {
                eprintln!(
                    "===== {} (last 80 lines) =====\n{}",
                    log.display(),
                    tail(log, 80)
                );
            }
        }
        // Agents and ztunnels first (reverse start order), then the control
        // plane; each by its own PID.
        self.sidecars.clear();
        for node in self.nodes.iter_mut().rev() {
            drop(node.agent.take());
            drop(node.ztunnel.take());
        }
        drop(self.control.take());
        self.echo.clear();
        self.pods.clear();
        // Deletes every namespace it created.
        drop(self.net.take());
        if let Some(dir) = self.dir.take()
            && keep
        {
            eprintln!("ambient e2e: keeping {}", dir.keep().display());
        }
    }
}

// === extra pods (the benchmarks of tests/examples/mesh_bench.rs) ===

impl Cluster {
    /// Adds a pod that is not one of [`PODS`]: its namespace on the bridge,
    /// nothing else (no configuration, no CNI ADD, no echo server). Its
    /// `def.name` must not clash with a pod of [`PODS`].
    pub fn add_extra_pod(&mut self, def: &PodDef) -> TestPod {
        let net = self.net.as_ref().expect("the test network");
        let pod = net
            .add_pod(def.name, def.ip)
            .expect("add an extra pod namespace");
        self.pods.insert(def.name, pod.clone());
        pod
    }

    /// Runs the plugin's ADD for `def` (a pod of [`PODS`] or one added with
    /// [`Cluster::add_extra_pod`]) against its node's agent; `Err` with the
    /// outcome if it failed.
    pub fn cni_add_extra(&self, def: &PodDef) -> Result<(), String> {
        self.cni_extra("ADD", def)
    }

    /// Runs the plugin's `command` for `def` (see [`Cluster::cni_add_extra`]).
    pub fn cni_extra(&self, command: &str, def: &PodDef) -> Result<(), String> {
        let socket = self
            .nodes
            .iter()
            .find(|n| n.name == def.node)
            .map(|n| n.cni_conf_dir.clone())
            .ok_or_else(|| format!("no node {}", def.node))?;
        let pod = self
            .pods
            .get(def.name)
            .ok_or_else(|| format!("no pod {}", def.name))?;
        let out = run_cni(&self.bins.cni, command, &socket, def, pod);
        if out.code == 0 {
            Ok(())
        } else {
            Err(format!("CNI {command} of {}: {out:?}", def.name))
        }
    }

    /// [`Cluster::start_sidecar`] for a pod given by its definition (one
    /// added with [`Cluster::add_extra_pod`], whose token Secret is in the
    /// configuration: see [`sidecar_token_yaml`]).
    pub fn start_sidecar_for(&mut self, def: &PodDef) -> Result<(), String> {
        let pod = self
            .pods
            .get(def.name)
            .cloned()
            .ok_or_else(|| format!("no pod {}", def.name))?;
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &pod.netns_name])
            .arg(&self.bins.proxy)
            .arg("init")
            .output()
            .map_err(|e| format!("run braid-proxy init: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "init in {}: {}",
                def.name,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        self.start_proxy_in(&pod, def, "sidecar", &[])
    }

    /// Runs `braid-proxy waypoint --waypoint <waypoint>` in the pod of
    /// `def` (added with [`Cluster::add_extra_pod`], its token Secret in
    /// the configuration), as the container of a waypoint's pod would: no
    /// redirect rules, a waypoint is addressed.
    pub fn start_waypoint_for(&mut self, def: &PodDef, waypoint: &str) -> Result<(), String> {
        let pod = self
            .pods
            .get(def.name)
            .cloned()
            .ok_or_else(|| format!("no pod {}", def.name))?;
        self.start_proxy_in(&pod, def, "waypoint", &["--waypoint", waypoint])
    }

    /// Starts `braid-proxy <mode> --pod ... <extra>` in `pod` with the
    /// pod's token, tracked with the sidecars.
    fn start_proxy_in(
        &mut self,
        pod: &TestPod,
        def: &PodDef,
        mode: &str,
        extra: &[&str],
    ) -> Result<(), String> {
        let token_file = self.root.join(format!("{}.token", def.name));
        std::fs::write(&token_file, pod_token(def.name))
            .map_err(|e| format!("write the pod token: {e}"))?;
        let mut args: Vec<OsString> = vec![
            "netns".into(),
            "exec".into(),
            pod.netns_name.clone().into(),
            self.bins.proxy.clone().into(),
        ];
        let pod_name = format!("{}/{}", def.namespace, def.name);
        let control_plane = format!("http://{}", self.xds);
        let ca_root = self.ca_root.display().to_string();
        let token = token_file.display().to_string();
        let flags = [
            mode,
            "--pod",
            &pod_name,
            "--control-plane",
            &control_plane,
            "--ca-root",
            &ca_root,
            "--token-file",
            &token,
        ];
        args.extend(flags.iter().chain(extra).map(OsString::from));
        let process = Process::start(
            &format!("{mode} {}", def.name),
            Path::new("ip"),
            args,
            child_env("debug"),
            self.log(&format!("{mode}-{}", def.name)),
        );
        self.sidecars.push(process);
        Ok(())
    }

    /// The PID of the sidecar of pod `name` (`ip netns exec` execs the
    /// proxy, so it is the proxy's), if one was started.
    pub fn sidecar_pid(&self, name: &str) -> Option<u32> {
        self.proxy_pid("sidecar", name)
    }

    /// The PID of the waypoint started in pod `name` with
    /// [`Cluster::start_waypoint_for`], if any.
    pub fn waypoint_pid(&self, name: &str) -> Option<u32> {
        self.proxy_pid("waypoint", name)
    }

    /// The PID of the `mode` proxy of pod `name`.
    fn proxy_pid(&self, mode: &str, name: &str) -> Option<u32> {
        let wanted = format!("{mode} {name}");
        self.sidecars
            .iter()
            .find(|p| p.name == wanted)
            .and_then(Process::pid)
    }

    /// The PID of `node`'s ztunnel.
    pub fn ztunnel_pid(&self, node: &str) -> Option<u32> {
        self.nodes
            .iter()
            .find(|n| n.name == node)
            .and_then(|n| n.ztunnel.as_ref())
            .and_then(Process::pid)
    }
}

/// The Pod document of `def`, as `pods.yaml` writes it (for a pod added
/// with [`Cluster::add_extra_pod`], in a configuration file of its own).
pub fn pod_document(def: &PodDef) -> String {
    pod_yaml(def)
}

/// The token Secret of a sidecar pod (what `tokens.yaml` holds for the
/// sidecar pods of [`PODS`]).
pub fn sidecar_token_yaml(def: &PodDef) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sidecar-{name}\n  namespace: braid-system\ntype: braid.dev/proxy-token\nstringData:\n  token: {}\n  pod: {ns}/{name}\n",
        pod_token(def.name),
        name = def.name,
        ns = def.namespace,
    )
}
