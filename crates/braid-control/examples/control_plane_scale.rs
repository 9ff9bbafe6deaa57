//! Control-plane scale, measured against the real `braid-control` binary:
//! its memory with a large mesh in the YAML source, how long 1 000 xDS
//! clients take to receive a change, and how long they take to be in sync
//! again after the control plane restarts (a reconnect storm).
//!
//! Run by `cargo xtask bench` (scenario `control-plane`), or by hand:
//!
//! ```sh
//! cargo run --release -p braid-control --example control_plane_scale -- \
//!     --control target/release/braid-control --workloads 10000 --services 2000 --clients 1000
//! ```
//!
//! Every client watches AuthorizationPolicies (the change the bench makes);
//! `--full-clients` of them also watch every Workload and Service, as a
//! ztunnel does, so the large pushes are part of the load. Prints one JSON
//! line with the results. Every wait is bounded.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use braid_model::{AuthorizationPolicy, PeerAuthentication, Service, Workload};
use braid_xds::{Client, ClientHandle, Delta, NodeInfo, Subscription};

/// Bounds each wait for the control plane or the clients.
const WAIT: Duration = Duration::from_secs(120);

struct Args {
    control: PathBuf,
    workloads: usize,
    services: usize,
    clients: usize,
    full_clients: usize,
    changes: usize,
}

/// When each client saw each policy (by change index).
type Seen = Arc<Mutex<Vec<Vec<Option<Instant>>>>>;

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config)?;
    write_mesh(&config, args.workloads, args.services)?;

    let xds = free_port()?;
    let admin = free_port()?;
    let started = Instant::now();
    let mut control = start_control(&args.control, &config, xds, admin, dir.path())?;
    wait_until("braid-control /ready", || {
        Ok(http_get(admin, "/ready").is_ok_and(|(code, _)| code == 200))
    })?;
    let ready_s = started.elapsed().as_secs_f64();
    let rss_ready = rss_kib(control.id())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let seen: Seen = Arc::new(Mutex::new(vec![vec![None; args.changes]; args.clients]));
    let uri = format!("http://{xds}");
    let handles: Vec<ClientHandle> = runtime.block_on(async {
        (0..args.clients)
            .map(|i| spawn_client(&uri, i, i < args.full_clients, seen.clone()))
            .collect::<anyhow::Result<_>>()
    })?;
    let started = Instant::now();
    wait_until("every client synced", || {
        Ok(handles.iter().all(|h| h.status().is_synced()))
    })?;
    let initial_sync_s = started.elapsed().as_secs_f64();
    let rss_clients = rss_kib(control.id())?;

    // Changes: one new policy each, timed from the file write until each
    // client applied it (an ACK follows at once).
    let mut latencies_ms = Vec::new();
    for k in 0..args.changes {
        let written = Instant::now();
        write_policy(&config, k)?;
        wait_until(&format!("every client to see change {k}"), || {
            let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            Ok(seen.iter().all(|c| c[k].is_some()))
        })?;
        let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        latencies_ms.extend(
            seen.iter()
                .filter_map(|c| c[k])
                .map(|at| at.saturating_duration_since(written).as_secs_f64() * 1e3),
        );
    }
    latencies_ms.sort_by(f64::total_cmp);

    // Reconnect storm: the control plane restarts; every client reconnects
    // (with its backoff) and must be in sync again.
    let _ = control.kill();
    let _ = control.wait();
    // Every client must have noticed, or "in sync" below could be stale.
    wait_until("every client to see the control plane gone", || {
        Ok(handles.iter().all(|h| !h.status().is_connected()))
    })?;
    let restarted = Instant::now();
    control = start_control(&args.control, &config, xds, admin, dir.path())?;
    wait_until("every client connected again", || {
        Ok(handles
            .iter()
            .all(|h| h.status().is_connected() && h.status().is_synced()))
    })?;
    let storm_s = restarted.elapsed().as_secs_f64();
    let rss_after_storm = rss_kib(control.id())?;

    for h in &handles {
        h.shutdown();
    }
    let _ = control.kill();
    let _ = control.wait();
    let report = serde_json::json!({
        "workloads": args.workloads,
        "services": args.services,
        "clients": args.clients,
        "full_clients": args.full_clients,
        "changes": args.changes,
        "ready_s": ready_s,
        "rss_ready_mb": rss_ready as f64 / 1024.0,
        "rss_with_clients_mb": rss_clients as f64 / 1024.0,
        "rss_after_storm_mb": rss_after_storm as f64 / 1024.0,
        "initial_sync_s": initial_sync_s,
        "change_to_ack_p50_ms": percentile(&latencies_ms, 0.50),
        "change_to_ack_p99_ms": percentile(&latencies_ms, 0.99),
        "change_to_ack_max_ms": latencies_ms.last().copied(),
        "reconnect_storm_s": storm_s,
    });
    println!("{report}");
    Ok(())
}

fn spawn_client(uri: &str, i: usize, full: bool, seen: Seen) -> anyhow::Result<ClientHandle> {
    let kind = if full { "ztunnel" } else { "sidecar" };
    let mut builder = Client::builder(uri, NodeInfo::new(format!("{kind}~bench-{i}")))
        .max_message_size(64 << 20)
        .watch::<AuthorizationPolicy>(Subscription::Wildcard, move |delta: Delta<_>| {
            let now = Instant::now();
            let Ok(mut seen) = seen.lock() else { return };
            for updated in &delta.updated {
                let k = updated
                    .name
                    .rsplit_once("bench-")
                    .and_then(|(_, k)| k.parse::<usize>().ok());
                if let Some(slot) = k.and_then(|k| seen[i].get_mut(k)) {
                    slot.get_or_insert(now);
                }
            }
        });
    if full {
        builder = builder
            .watch::<Workload>(Subscription::Wildcard, |_: Delta<_>| {})
            .watch::<Service>(Subscription::Wildcard, |_: Delta<_>| {})
            .watch::<PeerAuthentication>(Subscription::Wildcard, |_: Delta<_>| {});
    }
    let (handle, _task) = builder.build()?.spawn();
    Ok(handle)
}

/// `ns-0..ns-49`, `workloads` pods spread over them and `services` Services,
/// each selecting the pods of one app label.
fn write_mesh(dir: &Path, workloads: usize, services: usize) -> anyhow::Result<()> {
    const NAMESPACES: usize = 50;
    let mut out = String::new();
    for n in 0..NAMESPACES {
        let mode = if n % 2 == 0 { "ambient" } else { "sidecar" };
        out.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-{n}\n  labels:\n    braid.dev/mode: {mode}\n---\n"
        ));
    }
    std::fs::write(dir.join("namespaces.yaml"), out)?;
    let apps = services.max(1);
    let mut out = String::new();
    for p in 0..workloads {
        let (ns, app) = (p % NAMESPACES, p % apps);
        let ip = format!("198.18.{}.{}", p / 250, p % 250 + 1);
        out.push_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-{p}\n  namespace: ns-{ns}\n  labels:\n    app: app-{app}\nspec:\n  nodeName: node-{}\n  serviceAccountName: sa-{app}\n  containers:\n  - name: app\n    image: example/app:1\n    ports:\n    - name: http\n      containerPort: 8080\nstatus:\n  phase: Running\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n  conditions:\n  - type: Ready\n    status: \"True\"\n---\n",
            p % 100
        ));
    }
    std::fs::write(dir.join("pods.yaml"), out)?;
    let mut out = String::new();
    for s in 0..services {
        // Services live with the pods they select (app-s is in ns s % 50).
        let ip = format!("198.19.{}.{}", s / 250, s % 250 + 1);
        out.push_str(&format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: app-{s}\n  namespace: ns-{}\nspec:\n  clusterIP: {ip}\n  selector:\n    app: app-{s}\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n---\n",
            s % NAMESPACES
        ));
    }
    std::fs::write(dir.join("services.yaml"), out)?;
    Ok(())
}

fn write_policy(dir: &Path, k: usize) -> anyhow::Result<()> {
    let text = format!(
        "apiVersion: braid.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata:\n  name: bench-{k}\n  namespace: ns-0\nspec:\n  action: DENY\n  rules:\n  - from:\n      namespaces: [\"ns-{k}\"]\n"
    );
    // Atomically, as an editor or `kubectl cp` would not half-write it.
    let tmp = dir.join(format!(".bench-{k}.yaml.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(format!("bench-{k}.yaml")))?;
    Ok(())
}

fn start_control(
    bin: &Path,
    config: &Path,
    xds: SocketAddr,
    admin: SocketAddr,
    dir: &Path,
) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("braid-control.log"))?;
    Command::new(bin)
        .arg("--config-dir")
        .arg(config)
        .args(["--xds-listen", &xds.to_string()])
        .args(["--admin-listen", &admin.to_string()])
        .env("BRAID_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {}", bin.display()))
}

fn wait_until(what: &str, mut done: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let started = Instant::now();
    while !done()? {
        if started.elapsed() > WAIT {
            bail!("timed out after {WAIT:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// VmRSS of `pid`, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// The value at quantile `q` of sorted `values` (nearest rank).
fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status line")?;
    Ok((code, text))
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        control: PathBuf::from("target/release/braid-control"),
        workloads: 10_000,
        services: 2_000,
        clients: 1_000,
        full_clients: 10,
        changes: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .with_context(|| format!("{flag} {value}"))
        };
        match flag.as_str() {
            "--control" => args.control = PathBuf::from(&value),
            "--workloads" => args.workloads = number()?,
            "--services" => args.services = number()?,
            "--clients" => args.clients = number()?,
            "--full-clients" => args.full_clients = number()?,
            "--changes" => args.changes = number()?,
            other => bail!("unknown flag {other}"),
        }
    }
    ensure!(args.changes > 0, "--changes must be at least 1");
    ensure!(
        args.workloads <= 60_000,
        "--workloads: at most 60000 (the address plan)"
    );
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[3.0], 0.99), Some(3.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
