//! The bench's cluster: the e2e harness's two nodes with the bench's pods,
//! servers, sidecars and waypoint, ready; and what the scenarios read from
//! it (addresses, proxy PIDs, CPU and RSS).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use braid_capture::testing::TestPod;
use serde_json::Value;

use crate::{
    load,
    nginx::Nginx,
    paths::*,
    servers::{self, HoldStats, SinkStats},
    support::{self, Cluster, PodDef, pod_document, sidecar_token_yaml},
    waypoint,
};

/// How much of namespace `depot` ([`waypoint`]) a run sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Depot {
    /// The waypoint runs, `stock` is not captured: nothing goes through it.
    Idle,
    /// `stock` captured and the waypoint paths ready, with `routes`
    /// HTTPRoutes on `stock-routed`.
    Measured { routes: usize },
}

/// The cluster with the bench's pods, servers and sidecars, ready.
pub(crate) struct Bench {
    // Dropped in this order: the servers, nginx, then the cluster.
    runtime: Option<tokio::runtime::Runtime>,
    /// The L7 reference, when asked for.
    pub(crate) nginx: Option<Nginx>,
    sinks: Vec<(&'static str, Arc<SinkStats>)>,
    holds: Vec<(&'static str, Arc<HoldStats>)>,
    pub(crate) cluster: Cluster,
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Bench {
    pub(crate) fn start(depot: Depot) -> anyhow::Result<Bench> {
        let (routes, captured) = match depot {
            Depot::Idle => (0, vec![PLAIN, LEDGER]),
            Depot::Measured { routes } => (routes, vec![PLAIN, LEDGER, waypoint::STOCK]),
        };
        let mut cluster = Cluster::start();
        for def in [PLAIN, LEDGER, waypoint::STOCK, waypoint::DWP] {
            cluster.add_extra_pod(&def);
        }
        cluster.write_config(
            "bench-pods.yaml",
            &[
                pod_document(&PLAIN),
                pod_document(&LEDGER),
                sidecar_token_yaml(&LEDGER),
            ]
            .join("---\n"),
        );
        cluster.write_config("bench-depot.yaml", &waypoint::depot_yaml(HTTP_PORT, routes));
        // The waypoint's pod is addressed, never captured: no CNI ADD.
        for def in &captured {
            wait_for_workload(&cluster, def)?;
            cluster
                .cni_add_extra(def)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bench-server")
            .enable_all()
            .build()?;
        let mut bench = Bench {
            runtime: None,
            nginx: None,
            sinks: Vec::new(),
            holds: Vec::new(),
            cluster,
        };
        for name in SERVER_PODS {
            let pod = bench.cluster.pod(name).clone();
            bench
                .sinks
                .push((name, servers::start_sink(&runtime, &pod, SINK_PORT)?));
            servers::start_http(&runtime, &pod, HTTP_PORT)?;
            bench
                .holds
                .push((name, servers::start_hold(&runtime, &pod, HOLD_PORT)?));
        }
        bench.runtime = Some(runtime);
        bench.cluster.start_sidecar("orders");
        bench
            .cluster
            .start_sidecar_for(&LEDGER)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        bench
            .cluster
            .start_waypoint_for(&waypoint::DWP, waypoint::WAYPOINT)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut paths = vec![DIRECT, AMBIENT, SIDECARS, SIDECAR_AMBIENT];
        if depot != Depot::Idle {
            paths.extend([AMBIENT_WAYPOINT, SIDECAR_WAYPOINT, WAYPOINT_ROUTES]);
        }
        for path in paths {
            bench.wait_ready(path)?;
            for (role, proxy) in path.proxies {
                let pid = bench.pid(*proxy)?;
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() != "braid-proxy" {
                    bail!(
                        "{} {role}: pid {pid} is {comm:?}, not braid-proxy",
                        path.name
                    );
                }
            }
        }
        if depot == Depot::Idle {
            bench.wait_waypoint_ready()?;
        }
        Ok(bench)
    }

    /// Until the waypoint's readiness endpoint (in its pod, port 15021)
    /// answers 200: every xDS type synced; at most 30 s.
    fn wait_waypoint_ready(&mut self) -> anyhow::Result<()> {
        use std::io::{Read as _, Write as _};
        let pod = self.pod(waypoint::DWP.name).clone();
        let readiness = SocketAddr::from(([127, 0, 0, 1], 15021));
        let started = Instant::now();
        loop {
            let answer = load::connect(&pod, readiness).and_then(|mut tcp| {
                tcp.write_all(b"GET /healthz/ready HTTP/1.0\r\n\r\n")?;
                let mut text = String::new();
                tcp.read_to_string(&mut text)?;
                Ok(text)
            });
            match answer {
                Ok(text)
                    if text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200") =>
                {
                    return Ok(());
                }
                other if started.elapsed() > Duration::from_secs(30) => {
                    bail!("the waypoint was not ready within 30 s: {other:?}");
                }
                _ => {
                    self.cluster
                        .check_processes()
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    pub(crate) fn pod(&self, name: &str) -> &TestPod {
        self.cluster.pod(name)
    }

    /// Starts nginx in front of the direct path's server, inside its
    /// client, and waits until a request through it succeeds.
    pub(crate) fn start_nginx(&mut self, binary: &std::path::Path) -> anyhow::Result<()> {
        let nginx = Nginx::start(
            binary,
            self.pod(NGINX.client),
            self.addr(NGINX, HTTP_PORT),
            &self.cluster.root,
        )?;
        self.nginx = Some(nginx);
        self.wait_ready(NGINX)
    }

    pub(crate) fn nginx(&self) -> anyhow::Result<&Nginx> {
        self.nginx
            .as_ref()
            .context("nginx was not started (--nginx)")
    }

    /// Where `path`'s HTTP load goes: its server, or nginx in front of it.
    pub(crate) fn http_addr(&self, path: Path) -> anyhow::Result<SocketAddr> {
        if path.proxies.iter().any(|(_, p)| matches!(p, Proxy::Nginx)) {
            return Ok(self.nginx()?.addr);
        }
        if let Some(service) = path.service {
            return Ok(service);
        }
        Ok(self.addr(path, HTTP_PORT))
    }

    pub(crate) fn addr(&self, path: Path, port: u16) -> SocketAddr {
        SocketAddr::from((self.pod(path.server).ip, port))
    }

    pub(crate) fn pid(&self, proxy: Proxy) -> anyhow::Result<u32> {
        match proxy {
            Proxy::Ztunnel(node) => self.cluster.ztunnel_pid(node),
            Proxy::Sidecar(pod) => self.cluster.sidecar_pid(pod),
            Proxy::Waypoint(pod) => self.cluster.waypoint_pid(pod),
            Proxy::Nginx => self.nginx.as_ref().map(|n| n.master()),
        }
        .with_context(|| format!("no process for {proxy:?}"))
    }

    /// Until an HTTP request over `path` succeeds (certificates, xDS and
    /// capture all in place); at most 30 s.
    pub(crate) fn wait_ready(&mut self, path: Path) -> anyhow::Result<()> {
        let started = Instant::now();
        let to = self.http_addr(path)?;
        loop {
            let attempt =
                load::HttpConn::connect(self.pod(path.client), to).and_then(|mut c| c.get());
            match attempt {
                Ok(()) => {
                    eprintln!(
                        "mesh_bench: {} ready after {:.1}s",
                        path.name,
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(());
                }
                Err(e) if started.elapsed() > Duration::from_secs(30) => {
                    return Err(e.context(format!("{} never answered within 30 s", path.name)));
                }
                Err(_) => {
                    self.cluster
                        .check_processes()
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    pub(crate) fn sink(&self, path: Path) -> anyhow::Result<&SinkStats> {
        self.sinks
            .iter()
            .find(|(name, _)| *name == path.server)
            .map(|(_, s)| s.as_ref())
            .context("no sink")
    }

    pub(crate) fn hold_stats(&self, path: Path) -> anyhow::Result<&HoldStats> {
        self.holds
            .iter()
            .find(|(name, _)| *name == path.server)
            .map(|(_, s)| s.as_ref())
            .context("no hold server")
    }

    /// CPU ticks of each proxy on `path` (nginx's: master and workers).
    pub(crate) fn cpu_ticks(&self, path: Path) -> anyhow::Result<Vec<u64>> {
        path.proxies
            .iter()
            .map(|(_, proxy)| match proxy {
                Proxy::Nginx => self.nginx()?.cpu_ticks(),
                _ => load::process_cpu_ticks(self.pid(*proxy)?),
            })
            .collect()
    }

    /// RSS of each proxy on `path`.
    pub(crate) fn rss(&self, path: Path) -> anyhow::Result<Vec<u64>> {
        path.proxies
            .iter()
            .map(|(_, proxy)| load::process_rss(self.pid(*proxy)?))
            .collect()
    }
}

/// Waits (at most 15 s) until `def`'s node's ztunnel knows the workload, as
/// a kubelet's CNI ADD comes after the pod exists.
fn wait_for_workload(cluster: &Cluster, def: &PodDef) -> anyhow::Result<()> {
    let admin = cluster
        .nodes
        .iter()
        .find(|n| n.name == def.node)
        .map(|n| n.admin)
        .context("the pod's node")?;
    let started = Instant::now();
    loop {
        let seen = support::http_get(admin, "/config_dump")
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .is_some_and(|dump| {
                dump["workloads"]
                    .as_array()
                    .is_some_and(|w| w.iter().any(|w| w["name"] == def.name))
            });
        if seen {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(15) {
            bail!("{}'s ztunnel never saw workload {}", def.node, def.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
