//! `mesh-memory`: RSS of the idle proxies, and per idle connection held
//! open through them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{bench::Bench, load, paths::*, support};

/// RSS of the idle proxies, then with idle connections held open through
/// ambient and sidecar→sidecar.
pub(crate) fn run(bench: &Bench, quick: bool, nofile: u64) -> anyhow::Result<Value> {
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
    fn idle_connections_are_bounded_by_the_descriptor_limit() {
        assert_eq!(connections_that_fit(10_000, 65_536), 10_000);
        // The usual hard limit here: 20 000 descriptors hold 9 000.
        assert_eq!(connections_that_fit(10_000, 20_000), 9_000);
        assert_eq!(connections_that_fit(10_000, 1_024), 0);
    }
}
