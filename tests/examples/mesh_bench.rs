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

#[path = "mesh_bench/bench.rs"]
mod bench;
#[path = "mesh_bench/latency.rs"]
mod latency;
#[path = "mesh_bench/load.rs"]
mod load;
#[path = "mesh_bench/memory.rs"]
mod memory;
#[path = "mesh_bench/nginx.rs"]
mod nginx;
#[path = "mesh_bench/paths.rs"]
mod paths;
#[path = "mesh_bench/servers.rs"]
mod servers;
#[path = "mesh_bench/throughput.rs"]
mod throughput;
#[path = "mesh_bench/waypoint.rs"]
mod waypoint;

use std::{path::PathBuf, time::Instant};

use anyhow::{Context as _, bail};
use braid_capture::testing::require_root;
use serde_json::json;

use crate::{
    bench::{Bench, Depot},
    waypoint::ROUTES,
};

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
        "mesh-http-latency" => Depot::Measured { routes: ROUTES },
        _ => Depot::Idle,
    };
    let mut bench = Bench::start(depot)?;
    let setup = started.elapsed().as_secs_f64();
    eprintln!("mesh_bench: cluster ready in {setup:.1}s");
    let mut report = match args.scenario.as_str() {
        "mesh-l4-throughput" => throughput::run(&bench, args.quick)?,
        "mesh-http-latency" => {
            if let Some(binary) = &args.nginx {
                bench.start_nginx(binary)?;
            }
            latency::run(&bench, args.quick)?
        }
        _ => memory::run(&bench, args.quick, nofile)?,
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
