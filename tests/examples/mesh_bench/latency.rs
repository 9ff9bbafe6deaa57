//! `mesh-http-latency`: open-loop HTTP/1.1 over every path, and the
//! proxies' CPU per request.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::{
    bench::Bench,
    load::{self, Plan},
    nginx::Nginx,
    paths::*,
    servers,
};

/// Open-loop HTTP/1.1 at fixed rates over the four paths (and nginx when
/// started), alternating paths in each round; histograms merged over the
/// rounds. The proxies' CPU (utime + stime) is read before and after each
/// run.
pub(crate) fn run(bench: &Bench, quick: bool) -> anyhow::Result<Value> {
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
