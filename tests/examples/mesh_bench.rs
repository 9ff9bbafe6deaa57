//! The network-namespace scenarios of `cargo xtask bench`: Braid's real
//! data plane (release `braid-control`, `braid-proxy ztunnel` and
//! `sidecar`, `braid-cni`) on the e2e harness's two-node "cluster"
//! (`tests/tests/ambient/`), measured against a direct (unmeshed) path in
//! the same run.
//!
//! ```text
//! direct           plain (legacy, mode none, node-a)  →  legacy (mode none, node-b)
//! ambient          client (shop, node-a)  → ztunnel a → HBONE → ztunnel b →  api (inventory, node-b)
//! sidecar→sidecar  orders (sidecar, node-a) → HBONE →  ledger (orders, sidecar, node-b)
//! sidecar→ambient  orders (sidecar, node-a) → HBONE → ztunnel b →  api
//! ambient→waypoint→ambient  client → ztunnel a → waypoint dwp (node-b) → ztunnel b → stock (depot)
//! sidecar→waypoint→ambient  orders (sidecar) → waypoint dwp → ztunnel b → stock
//! …, 1 000 routes  the first, to a Service whose route table at the waypoint has 1 000 routes
//! nginx            plain → nginx (plain's loopback) → legacy   (L7 reference)
//! ```
//!
//! `plain`, `ledger` and namespace `depot` ([`waypoint`]) are added to the
//! harness's topology here; every other pod, process and rule is the e2e
//! test's. One scenario per run:
//!
//! ```sh
//! mesh_bench --scenario mesh-l4-throughput|mesh-http-latency|mesh-memory [--quick]
//! mesh_bench --scenario mesh-http-latency --nginx /usr/sbin/nginx   # with the L7 reference
//! ```
//!
//! prints one JSON line (what `cargo xtask bench` turns into rows). Needs
//! root; otherwise prints `{"scenario": ..., "skipped": ...}`. Set
//! `BRAID_E2E_BIN_DIR` to the release binaries (xtask does). Every loop is
//! bounded in count and time; dropping the cluster stops every process and
//! deletes every namespace, also when a step fails.

#[path = "../tests/ambient/support.rs"]
mod support;

#[path = "mesh_bench/load.rs"]
mod load;
#[path = "mesh_bench/nginx.rs"]
mod nginx;
#[path = "mesh_bench/servers.rs"]
mod servers;
#[path = "mesh_bench/waypoint.rs"]
mod waypoint;

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use braid_capture::testing::{TestPod, require_root};
use serde_json::{Value, json};
use support::{Cluster, PodDef, pod_document, sidecar_token_yaml};

use crate::{
    load::Plan,
    nginx::Nginx,
    servers::{HoldStats, SinkStats},
};

/// The TCP sink (throughput), in every server pod.
const SINK_PORT: u16 = 5201;
/// The HTTP/1.1 server (latency, CPU), in every server pod.
const HTTP_PORT: u16 = 8088;
/// The idle-connection server (memory), in every server pod.
const HOLD_PORT: u16 = 5301;

/// The direct path's client: not meshed (namespace `legacy` is mode none).
const PLAIN: PodDef = PodDef {
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
const LEDGER: PodDef = PodDef {
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
struct Path {
    name: &'static str,
    client: &'static str,
    server: &'static str,
    /// The Service the HTTP load goes to, when not the server pod itself.
    service: Option<SocketAddr>,
    /// (role, process) of each proxy on the path, client side first.
    proxies: &'static [(&'static str, Proxy)],
}

/// A proxy process of the cluster, or the nginx reference.
#[derive(Debug, Clone, Copy)]
enum Proxy {
    Ztunnel(&'static str),
    Sidecar(&'static str),
    /// The waypoint running in the named pod.
    Waypoint(&'static str),
    /// The master and worker of [`Bench::nginx`].
    Nginx,
}

impl Proxy {
    /// "ztunnel node-a", "sidecar orders".
    fn label(self) -> String {
        match self {
            Proxy::Ztunnel(node) => format!("ztunnel {node}"),
            Proxy::Sidecar(pod) => format!("sidecar {pod}"),
            Proxy::Waypoint(pod) => format!("waypoint {pod}"),
            Proxy::Nginx => "nginx".to_owned(),
        }
    }
}

const DIRECT: Path = Path {
    name: "direct",
    client: "plain",
    server: "legacy",
    service: None,
    proxies: &[],
};
const AMBIENT: Path = Path {
    name: "ambient",
    client: "client",
    server: "api",
    service: None,
    proxies: &[
        ("client ztunnel", Proxy::Ztunnel("node-a")),
        ("server ztunnel", Proxy::Ztunnel("node-b")),
    ],
};
const SIDECARS: Path = Path {
    name: "sidecar→sidecar",
    client: "orders",
    server: "ledger",
    service: None,
    proxies: &[
        ("client sidecar", Proxy::Sidecar("orders")),
        ("server sidecar", Proxy::Sidecar("ledger")),
    ],
};
const SIDECAR_AMBIENT: Path = Path {
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
const NGINX: Path = Path {
    name: "nginx",
    client: DIRECT.client,
    server: DIRECT.server,
    service: None,
    proxies: &[("nginx", Proxy::Nginx)],
};

const WAYPOINT: Proxy = Proxy::Waypoint(waypoint::DWP.name);
const AMBIENT_WAYPOINT: Path = Path {
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
const SIDECAR_WAYPOINT: Path = Path {
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
const WAYPOINT_ROUTES: Path = Path {
    name: "ambient→waypoint→ambient, 1 000 routes",
    service: Some(waypoint::ROUTED_VIP),
    ..AMBIENT_WAYPOINT
};

/// The server pods (each runs the three servers).
const SERVER_PODS: [&str; 4] = ["legacy", "api", "ledger", waypoint::STOCK.name];

struct Args {
    scenario: String,
    quick: bool,
    /// The nginx binary of the L7 reference (mesh-http-latency only).
    nginx: Option<PathBuf>,
}

fn args() -> anyhow::Result<Args> {
    let mut scenario = None;
    let mut quick = false;
    let mut nginx = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--scenario") => {
                let name = args.next().context("--scenario takes a name")?;
                scenario = Some(
                    name.into_string()
                        .map_err(|n| anyhow::anyhow!("--scenario {n:?}"))?,
                );
            }
            Some("--quick") => quick = true,
            Some("--nginx") => {
                nginx = Some(PathBuf::from(
                    args.next().context("--nginx takes the nginx binary")?,
                ))
            }
            _ => bail!("unknown argument {arg:?}"),
        }
    }
    let scenario = scenario.context("--scenario NAME is required")?;
    if nginx.is_some() && scenario != "mesh-http-latency" {
        bail!("--nginx is for mesh-http-latency only, not {scenario}");
    }
    Ok(Args {
        scenario,
        quick,
        nginx,
    })
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    if !["mesh-l4-throughput", "mesh-http-latency", "mesh-memory"].contains(&args.scenario.as_str())
    {
        bail!("unknown scenario {:?}", args.scenario);
    }
    if !require_root() {
        println!(
            "{}",
            json!({"scenario": args.scenario, "skipped": "needs root (network namespaces, iptables)"})
        );
        return Ok(());
    }
    let nofile = raise_nofile();
    let started = Instant::now();
    // Only the latency scenario sends through the waypoint and measures
    // the route table; the memory scenario's idle proxies hold a small
    // configuration, and node-b's ztunnel captures one pod.
    let depot = match args.scenario.as_str() {
        "mesh-http-latency" => Depot::Measured {
            routes: waypoint::ROUTES,
        },
        _ => Depot::Idle,
    };
    let mut bench = Bench::start(depot)?;
    let setup = started.elapsed().as_secs_f64();
    eprintln!("mesh_bench: cluster ready in {setup:.1}s");
    let mut report = match args.scenario.as_str() {
        "mesh-l4-throughput" => throughput(&bench, args.quick)?,
        "mesh-http-latency" => {
            if let Some(binary) = &args.nginx {
                bench.start_nginx(binary)?;
            }
            latency(&bench, args.quick)?
        }
        _ => memory(&bench, args.quick, nofile)?,
    };
    bench
        .cluster
        .check_processes()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    report["scenario"] = json!(args.scenario);
    report["quick"] = json!(args.quick);
    report["setup_seconds"] = json!(setup);
    report["seconds"] = json!(started.elapsed().as_secs_f64());
    // Stops nginx (if started), the servers and the cluster.
    drop(bench);
    println!("{report}");
    Ok(())
}

/// Raises RLIMIT_NOFILE (soft and hard, as root) so this process and the
/// proxies it starts (they inherit it) can hold the idle connections;
/// returns the soft limit in force.
fn raise_nofile() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    const WANTED: u64 = 65_536;
    let current = getrlimit(Resource::Nofile);
    if current.current.is_some_and(|c| c >= WANTED) {
        return current.current.unwrap_or(WANTED);
    }
    let raised = Rlimit {
        current: Some(WANTED),
        maximum: Some(current.maximum.map_or(WANTED, |m| m.max(WANTED))),
    };
    if let Err(e) = setrlimit(Resource::Nofile, raised) {
        // Without CAP_SYS_RESOURCE the hard limit stays: use all of it.
        eprintln!(
            "mesh_bench: cannot raise RLIMIT_NOFILE to {WANTED} ({e}); using the hard limit {:?}",
            current.maximum
        );
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: current.maximum,
                maximum: current.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(0)
}

/// How much of namespace `depot` ([`waypoint`]) a run sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depot {
    /// The waypoint runs, `stock` is not captured: nothing goes through it.
    Idle,
    /// `stock` captured and the waypoint paths ready, with `routes`
    /// HTTPRoutes on `stock-routed`.
    Measured { routes: usize },
}

/// The cluster with the bench's pods, servers and sidecars, ready.
struct Bench {
    // Dropped in this order: the servers, nginx, then the cluster.
    runtime: Option<tokio::runtime::Runtime>,
    /// The L7 reference, when asked for.
    nginx: Option<Nginx>,
    sinks: Vec<(&'static str, Arc<SinkStats>)>,
    holds: Vec<(&'static str, Arc<HoldStats>)>,
    cluster: Cluster,
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Bench {
    fn start(depot: Depot) -> anyhow::Result<Bench> {
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

    fn pod(&self, name: &str) -> &TestPod {
        self.cluster.pod(name)
    }

    /// Starts nginx in front of the direct path's server, inside its
    /// client, and waits until a request through it succeeds.
    fn start_nginx(&mut self, binary: &std::path::Path) -> anyhow::Result<()> {
        let nginx = Nginx::start(
            binary,
            self.pod(NGINX.client),
            self.addr(NGINX, HTTP_PORT),
            &self.cluster.root,
        )?;
        self.nginx = Some(nginx);
        self.wait_ready(NGINX)
    }

    fn nginx(&self) -> anyhow::Result<&Nginx> {
        self.nginx
            .as_ref()
            .context("nginx was not started (--nginx)")
    }

    /// Where `path`'s HTTP load goes: its server, or nginx in front of it.
    fn http_addr(&self, path: Path) -> anyhow::Result<SocketAddr> {
        if path.proxies.iter().any(|(_, p)| matches!(p, Proxy::Nginx)) {
            return Ok(self.nginx()?.addr);
        }
        if let Some(service) = path.service {
            return Ok(service);
        }
        Ok(self.addr(path, HTTP_PORT))
    }

    fn addr(&self, path: Path, port: u16) -> SocketAddr {
        SocketAddr::from((self.pod(path.server).ip, port))
    }

    fn pid(&self, proxy: Proxy) -> anyhow::Result<u32> {
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
    fn wait_ready(&mut self, path: Path) -> anyhow::Result<()> {
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

    fn sink(&self, path: Path) -> anyhow::Result<&SinkStats> {
        self.sinks
            .iter()
            .find(|(name, _)| *name == path.server)
            .map(|(_, s)| s.as_ref())
            .context("no sink")
    }

    fn hold_stats(&self, path: Path) -> anyhow::Result<&HoldStats> {
        self.holds
            .iter()
            .find(|(name, _)| *name == path.server)
            .map(|(_, s)| s.as_ref())
            .context("no hold server")
    }

    /// CPU ticks of each proxy on `path` (nginx's: master and workers).
    fn cpu_ticks(&self, path: Path) -> anyhow::Result<Vec<u64>> {
        path.proxies
            .iter()
            .map(|(_, proxy)| match proxy {
                Proxy::Nginx => self.nginx()?.cpu_ticks(),
                _ => load::process_cpu_ticks(self.pid(*proxy)?),
            })
            .collect()
    }

    /// RSS of each proxy on `path`.
    fn rss(&self, path: Path) -> anyhow::Result<Vec<u64>> {
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

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some(f64::midpoint(sorted[n / 2 - 1], sorted[n / 2])),
    }
}

// === mesh-l4-throughput ===

/// Bulk TCP, one stream and 8 in parallel, over direct, ambient and
/// sidecar→sidecar, in alternating rounds; the sink measures from its
/// first byte to its last. Medians of the rounds.
fn throughput(bench: &Bench, quick: bool) -> anyhow::Result<Value> {
    let (rounds, bytes, limit) = if quick {
        (3, 1u64 << 30, Duration::from_secs(2))
    } else {
        (4, 4u64 << 30, Duration::from_secs(5))
    };
    let paths = [DIRECT, AMBIENT, SIDECARS];
    let streams = [1usize, 8];
    let mut results: Vec<(Path, usize, Vec<f64>)> = paths
        .iter()
        .flat_map(|p| streams.iter().map(|s| (*p, *s, Vec::new())))
        .collect();
    for round in 0..rounds {
        for (path, n, gbits) in &mut results {
            let sink = bench.sink(*path)?;
            sink.reset();
            // Each stream carries its share of the byte bound.
            let sent = load::bulk(
                bench.pod(path.client),
                bench.addr(*path, SINK_PORT),
                *n,
                bytes / *n as u64,
                limit,
            )
            .with_context(|| format!("{} bulk, {n} streams", path.name))?;
            // Until the sink saw every byte and every stream's end (bounded).
            let waited = Instant::now();
            while (sink.bytes() < sent || sink.closed() < *n as u64)
                && waited.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            let rate = load::gbit_per_s(sink.bytes(), sink.span());
            eprintln!(
                "mesh_bench: round {round}: {} x{n}: {} of {} bytes, {:.2} Gbit/s",
                path.name,
                sink.bytes(),
                sent,
                rate.unwrap_or(f64::NAN)
            );
            if sink.bytes() < sent {
                bail!(
                    "{} x{n}: the sink received {} of {sent} bytes",
                    path.name,
                    sink.bytes()
                );
            }
            gbits.push(rate.unwrap_or(f64::NAN));
        }
    }
    let out: Vec<Value> = results
        .iter()
        .map(|(path, n, gbits)| {
            json!({
                "path": path.name,
                "streams": n,
                "rounds_gbit_s": gbits,
                "gbit_s": median(gbits),
            })
        })
        .collect();
    Ok(json!({
        "rounds": rounds,
        "bytes_limit": bytes,
        "seconds_limit": limit.as_secs_f64(),
        "results": out,
    }))
}

// === mesh-http-latency (and CPU per request) ===

/// Open-loop HTTP/1.1 at fixed rates over the four paths (and nginx when
/// started), alternating paths in each round; histograms merged over the
/// rounds. The proxies' CPU (utime + stime) is read before and after each
/// run.
fn latency(bench: &Bench, quick: bool) -> anyhow::Result<Value> {
    let (rates, rounds, measure): (&[f64], usize, Duration) = if quick {
        (&[1000.0], 1, Duration::from_secs(5))
    } else {
        (&[1000.0, 5000.0], 2, Duration::from_secs(10))
    };
    let connections = 16;
    let warmup = Duration::from_secs(1);
    let mut paths = vec![
        DIRECT,
        AMBIENT,
        SIDECARS,
        SIDECAR_AMBIENT,
        AMBIENT_WAYPOINT,
        SIDECAR_WAYPOINT,
        WAYPOINT_ROUTES,
    ];
    if bench.nginx.is_some() {
        paths.push(NGINX);
    }
    let ticks_per_second = rustix::param::clock_ticks_per_second();
    struct Acc {
        path: Path,
        rate: f64,
        result: load::LoadResult,
        /// Per proxy: CPU ticks spent during the runs.
        ticks: Vec<u64>,
    }
    let mut accs = Vec::new();
    for &rate in rates {
        for &path in &paths {
            accs.push(Acc {
                path,
                rate,
                result: load::LoadResult::empty()?,
                ticks: vec![0; path.proxies.len()],
            });
        }
    }
    // The proxies' CPU while nothing flows (xDS, timers): what the per
    // request figures include besides the requests.
    let idle_seconds = 2.0;
    let mut all = vec![AMBIENT, SIDECARS, AMBIENT_WAYPOINT];
    if bench.nginx.is_some() {
        all.push(NGINX);
    }
    let idle_before: Vec<Vec<u64>> = all
        .iter()
        .map(|p| bench.cpu_ticks(*p))
        .collect::<anyhow::Result<_>>()?;
    std::thread::sleep(Duration::from_secs_f64(idle_seconds));
    let mut idle = serde_json::Map::new();
    for (path, before) in all.iter().zip(&idle_before) {
        let after = bench.cpu_ticks(*path)?;
        for (((_, proxy), b), a) in path.proxies.iter().zip(before).zip(&after) {
            idle.insert(
                proxy.label(),
                json!(a.saturating_sub(*b) as f64 / ticks_per_second as f64 / idle_seconds),
            );
        }
    }
    for round in 0..rounds {
        for acc in &mut accs {
            let plan = Plan {
                rate: acc.rate,
                connections,
                warmup,
                measure,
            };
            let before = bench.cpu_ticks(acc.path)?;
            let result =
                load::open_loop(bench.pod(acc.path.client), bench.http_addr(acc.path)?, plan)
                    .with_context(|| format!("{} at {} rps", acc.path.name, acc.rate))?;
            let after = bench.cpu_ticks(acc.path)?;
            for (total, (b, a)) in acc.ticks.iter_mut().zip(before.iter().zip(&after)) {
                *total += a.saturating_sub(*b);
            }
            let p = load::percentiles_ms(&result.latency).unwrap_or([f64::NAN; 3]);
            eprintln!(
                "mesh_bench: round {round}: {} at {} rps: {} ok, {} errors, {} unsent, p50 {:.3} p90 {:.3} p99 {:.3} ms",
                acc.path.name, acc.rate, result.ok, result.errors, result.unsent, p[0], p[1], p[2]
            );
            acc.result.merge(&result)?;
        }
    }
    let out: Vec<Value> = accs
        .iter()
        .map(|acc| {
            let r = &acc.result;
            let p = load::percentiles_ms(&r.latency);
            let lateness = load::percentiles_ms(&r.lateness);
            let proxies: Vec<Value> = acc
                .path
                .proxies
                .iter()
                .zip(&acc.ticks)
                .map(|((role, _), ticks)| {
                    json!({
                        "role": role,
                        "cpu_seconds": *ticks as f64 / ticks_per_second as f64,
                        "cpu_us_per_request": load::cpu_us_per_request(*ticks, ticks_per_second, r.ok),
                    })
                })
                .collect();
            json!({
                "path": acc.path.name,
                "rate": acc.rate,
                "requests_ok": r.ok,
                "errors": r.errors,
                "unsent": r.unsent,
                "first_error": r.first_error,
                "recorded": r.latency.len(),
                "p50_ms": p.map(|p| p[0]),
                "p90_ms": p.map(|p| p[1]),
                "p99_ms": p.map(|p| p[2]),
                "max_ms": (!r.latency.is_empty()).then(|| r.latency.max() as f64 / 1e6),
                "send_lateness_p99_ms": lateness.map(|p| p[2]),
                "proxies": proxies,
            })
        })
        .collect();
    Ok(json!({
        "connections": connections,
        "rounds": rounds,
        "warmup_seconds": warmup.as_secs_f64(),
        "seconds_per_round": measure.as_secs_f64(),
        "seconds_per_run_max": (warmup + measure).as_secs_f64() + 10.0,
        "response_bytes": servers::RESPONSE_BYTES,
        "clock_ticks_per_second": ticks_per_second,
        "idle_cpu_seconds_per_second": idle,
        "nginx": bench.nginx.as_ref().map(Nginx::describe),
        "results": out,
    }))
}

// === mesh-memory ===

/// RSS of the idle proxies, then with idle connections held open through
/// ambient and sidecar→sidecar.
fn memory(bench: &Bench, quick: bool, nofile: u64) -> anyhow::Result<Value> {
    // Let start-up settle (the readiness requests, xDS pushes).
    std::thread::sleep(Duration::from_secs(1));
    let idle = json!({
        "ztunnel_one_pod": load::process_rss(bench.pid(Proxy::Ztunnel("node-b"))?)?,
        "ztunnel_two_pods": load::process_rss(bench.pid(Proxy::Ztunnel("node-a"))?)?,
        "sidecar_orders": load::process_rss(bench.pid(Proxy::Sidecar("orders"))?)?,
        "sidecar_ledger": load::process_rss(bench.pid(Proxy::Sidecar("ledger"))?)?,
        "waypoint": load::process_rss(bench.pid(WAYPOINT)?)?,
    });
    let mut counts = vec![1000usize];
    if !quick {
        counts.push(connections_that_fit(10_000, nofile));
    }
    let mut runs = Vec::new();
    for n in counts {
        if n < 1000 {
            eprintln!("mesh_bench: idle connections do not fit RLIMIT_NOFILE {nofile}; skipped");
            runs.push(
                json!({"connections_wanted": 10_000, "skipped": format!("RLIMIT_NOFILE {nofile}")}),
            );
            continue;
        }
        for path in [AMBIENT, SIDECARS] {
            runs.push(idle_connections(bench, path, n)?);
        }
    }
    Ok(json!({
        "idle_rss_bytes": idle,
        "rlimit_nofile": nofile,
        "idle_connections": runs,
    }))
}

/// How many of `wanted` idle connections fit `nofile` descriptors, in
/// thousands: each is two descriptors in this process (the client's end
/// and the server's), plus a thousand for everything else. The proxies
/// inherit the limit and hold one or two per connection.
fn connections_that_fit(wanted: usize, nofile: u64) -> usize {
    let room = usize::try_from(nofile.saturating_sub(1000) / 2).unwrap_or(usize::MAX);
    wanted.min(room / 1000 * 1000)
}

/// Holds `n` connections over `path` (at most 90 s to open them), reads
/// the proxies' RSS before and after, then closes them and waits (at most
/// 20 s) until the server saw them go.
fn idle_connections(bench: &Bench, path: Path, n: usize) -> anyhow::Result<Value> {
    let hold = bench.hold_stats(path)?;
    let before = bench.rss(path)?;
    let started = Instant::now();
    let (conns, failures) = load::hold(
        bench.pod(path.client),
        bench.addr(path, HOLD_PORT),
        n,
        started + Duration::from_secs(90),
    );
    let opened = started.elapsed();
    // Let the proxies' buffers and the allocator settle.
    std::thread::sleep(Duration::from_secs(1));
    let after = bench.rss(path)?;
    let held = conns.len();
    let server_open = hold.open();
    // How many tunnels carry them: connections into the server pod's
    // HBONE port (:15008, its ztunnel's or its sidecar's).
    let tunnels = support::established(bench.pod(path.server), 15008).len();
    eprintln!(
        "mesh_bench: {}: {held} of {n} idle connections open in {:.1}s ({} failures; server sees {server_open})",
        path.name,
        opened.as_secs_f64(),
        failures.len()
    );
    drop(conns);
    let closing = Instant::now();
    while hold.open() > 0 && closing.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let proxies: Vec<Value> = path
        .proxies
        .iter()
        .zip(before.iter().zip(&after))
        .map(|((role, _), (b, a))| {
            json!({
                "role": role,
                "rss_before": b,
                "rss_after": a,
                "bytes_per_connection": load::bytes_per_connection(*b, *a, held),
            })
        })
        .collect();
    Ok(json!({
        "path": path.name,
        "connections_wanted": n,
        "connections": held,
        "server_saw": server_open,
        "hbone_connections": tunnels,
        "failures": failures.len(),
        "first_failure": failures.first(),
        "seconds_to_open": opened.as_secs_f64(),
        "still_open_after_close": hold.open(),
        "proxies": proxies,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_rounds() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
    }

    #[test]
    fn idle_connections_are_bounded_by_the_descriptor_limit() {
        assert_eq!(connections_that_fit(10_000, 65_536), 10_000);
        // The usual hard limit here: 20 000 descriptors hold 9 000.
        assert_eq!(connections_that_fit(10_000, 20_000), 9_000);
        assert_eq!(connections_that_fit(10_000, 1_024), 0);
    }

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
