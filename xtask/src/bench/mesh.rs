//! The network-namespace scenarios: Braid's real data plane (release
//! `braid-control`, `braid-proxy`, `braid-cni`) on the e2e harness's
//! two-node cluster, driven by the `braid-tests` example `mesh_bench`
//! (`tests/examples/mesh_bench.rs`), one cluster per scenario:
//!
//! * `mesh-l4-throughput`: bulk TCP, one stream and 8, direct vs ambient
//!   vs sidecar→sidecar.
//! * `mesh-http-latency`: open-loop HTTP/1.1 (1 KiB answers, 16
//!   connections) at 1 000 rps (and 5 000 rps in the full run), direct vs
//!   ambient vs sidecar→sidecar vs sidecar→ambient, and through a waypoint
//!   (ambient→waypoint→ambient, sidecar→waypoint→ambient, and the first to
//!   a Service with 1 000 routes): p50/p90/p99 and the mesh's added
//!   latency; the proxies' CPU per request; what the waypoint adds over
//!   ambient and what 1 000 routes add at the waypoint. The same load
//!   through nginx is the L7 reference ([`super::nginx`]).
//! * `mesh-memory`: RSS of idle proxies (ztunnels, sidecars, a waypoint),
//!   and per idle connection held open through them.
//!
//! Root only: otherwise each scenario reports one skipped row.

use std::{ffi::OsString, process::Command, time::Duration};

use anyhow::Context as _;
use serde_json::Value;

use super::{Context, Outcome, Row, Target};

pub(super) const THROUGHPUT: &str = "mesh-l4-throughput";
pub(super) const LATENCY: &str = "mesh-http-latency";
pub(super) const MEMORY: &str = "mesh-memory";

/// The targets.
const MIN_SINGLE_STREAM_RATIO: f64 = 0.5;
const MAX_ADDED_P99_MS: f64 = 0.3;
const MAX_SIDECAR_CPU_US: f64 = 100.0;
const MAX_WAYPOINT_CPU_US: f64 = 100.0;
const MAX_WAYPOINT_ADDED_P50_MS: f64 = 0.5;
const MAX_ROUTES_ADDED_CPU_US: f64 = 5.0;
const MAX_IDLE_WAYPOINT_MIB: f64 = 20.0;
const MAX_IDLE_ZTUNNEL_MIB: f64 = 12.0;
const MAX_IDLE_SIDECAR_MIB: f64 = 15.0;
const MAX_KIB_PER_CONNECTION: f64 = 4.0;

const MIB: f64 = 1024.0 * 1024.0;

pub(super) fn run_throughput(context: &Context) -> anyhow::Result<Outcome> {
    run(context, THROUGHPUT, &[], &throughput_rows)
}

/// With nginx as the L7 reference when it is (or can be) installed;
/// otherwise its rows say why not.
pub(super) fn run_latency(context: &Context) -> anyhow::Result<Outcome> {
    let nginx = if context.root {
        super::nginx::locate_or_install()
    } else {
        Err("needs root".to_owned())
    };
    let args: Vec<OsString> = match &nginx {
        Ok(binary) => vec!["--nginx".into(), binary.into()],
        Err(why) => {
            eprintln!("    nginx L7 reference skipped: {why}");
            Vec::new()
        }
    };
    let skipped = nginx.err();
    run(context, LATENCY, &args, &|raw| {
        latency_rows(raw, skipped.as_deref())
    })
}

pub(super) fn run_memory(context: &Context) -> anyhow::Result<Outcome> {
    run(context, MEMORY, &[], &memory_rows)
}

/// Runs `mesh_bench --scenario NAME ARGS` (unless not root) and turns its
/// JSON into rows with `rows`.
fn run(
    context: &Context,
    name: &'static str,
    args: &[OsString],
    rows: &dyn Fn(&Value) -> anyhow::Result<Vec<Row>>,
) -> anyhow::Result<Outcome> {
    if !context.root {
        eprintln!("    skipped: needs root (network namespaces, iptables)");
        return Ok(Outcome {
            rows: vec![skipped(name, "needs root (network namespaces, iptables)")],
            raw: serde_json::json!({"skipped": "not root"}),
        });
    }
    let mut command = Command::new(context.example("mesh_bench"));
    command
        .args(["--scenario", name])
        .args(args)
        .env("BRAID_E2E_BIN_DIR", &context.release_dir);
    if context.quick {
        command.arg("--quick");
    }
    // The proxies log at their production default, not the e2e tests' debug.
    if std::env::var_os("BRAID_LOG").is_none() {
        command.env("BRAID_LOG", "info");
    }
    // Well above what the example's own bounds add up to: only a hang
    // reaches it.
    let limit = Duration::from_secs(if context.quick { 300 } else { 900 });
    // Orphans of a killed example (its proxies, agents, control plane)
    // become this process's children, so they can be stopped by PID.
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        eprintln!("    cannot become a child subreaper ({e}): a killed run may leave processes");
    }
    let out = super::run_bounded_then(&mut command, limit, clean_up_after)?;
    let raw: Value = super::last_json(&out, "mesh_bench")?;
    if let Some(why) = raw.get("skipped").and_then(Value::as_str) {
        return Ok(Outcome {
            rows: vec![skipped(name, why)],
            raw,
        });
    }
    Ok(Outcome {
        rows: rows(&raw)?,
        raw,
    })
}

/// After the example (PID `pid`) was killed: stops its orphaned children
/// (now ours: we are their subreaper) by PID, deletes the namespaces its
/// cluster created (`bt-amb-<pid>-*`, pods before the fabric) and the
/// cluster's temporary directory (named in the children's arguments).
fn clean_up_after(pid: u32) {
    use rustix::process::{Pid, Signal, WaitOptions, kill_process, waitpid};
    eprintln!("    cleaning up after mesh_bench (pid {pid})");
    let ours = rustix::process::getpid().as_raw_nonzero().get();
    let orphans: Vec<Pid> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let raw: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            (parent_pid(&stat)? == ours).then_some(())?;
            Pid::from_raw(raw)
        })
        .collect();
    let mut dirs: Vec<std::path::PathBuf> = orphans
        .iter()
        .filter_map(|p| std::fs::read(format!("/proc/{}/cmdline", p.as_raw_nonzero())).ok())
        .flat_map(|cmdline| {
            cmdline
                .split(|b| *b == 0)
                .filter_map(|arg| cluster_dir(&String::from_utf8_lossy(arg)))
                .collect::<Vec<_>>()
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for orphan in &orphans {
        eprintln!("    stopping pid {}", orphan.as_raw_nonzero());
        let _ = kill_process(*orphan, Signal::TERM);
    }
    if !orphans.is_empty() {
        std::thread::sleep(Duration::from_secs(3));
    }
    for orphan in &orphans {
        let _ = kill_process(*orphan, Signal::KILL);
        let _ = waitpid(Some(*orphan), WaitOptions::empty());
    }
    let listed = Command::new("ip").args(["netns", "list"]).output();
    let text = listed
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut namespaces = cluster_namespaces(&text, pid);
    // Pods (`<fabric>-<pod>`) before their fabric.
    namespaces.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for ns in namespaces {
        eprintln!("    deleting network namespace {ns}");
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    }
    for dir in dirs {
        eprintln!("    deleting {}", dir.display());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The harness's temporary directory (`<tmp>/braid-ambient-XXXXXX`) an
/// argument of one of its processes lies in, if any.
fn cluster_dir(arg: &str) -> Option<std::path::PathBuf> {
    let tmp = std::env::temp_dir();
    let rest = std::path::Path::new(arg).strip_prefix(&tmp).ok()?;
    let first = rest.components().next()?.as_os_str().to_str()?;
    first
        .strip_prefix("braid-ambient-")
        .filter(|suffix| !suffix.is_empty())
        .map(|_| tmp.join(first))
}

/// The parent PID in the text of `/proc/<pid>/stat`.
fn parent_pid(stat: &str) -> Option<i32> {
    // Fields after the command name, which may hold ')': state, ppid, ...
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The namespaces the harness's network (`TestNet::new("amb")`) of
/// process `pid` created, from `ip netns list`.
fn cluster_namespaces(list: &str, pid: u32) -> Vec<String> {
    let prefix = format!("bt-amb-{pid}-");
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

fn skipped(scenario: &'static str, why: &str) -> Row {
    Row {
        scenario,
        metric: format!("skipped: {why}"),
        direct: None,
        braid: None,
        target: Target::Skipped,
    }
}

fn results(raw: &Value) -> anyhow::Result<&Vec<Value>> {
    raw.get("results")
        .and_then(Value::as_array)
        .context("no `results` in mesh_bench's JSON")
}

/// The entry of `results` whose fields match `pairs`.
fn find<'a>(results: &'a [Value], pairs: &[(&str, Value)]) -> anyhow::Result<&'a Value> {
    results
        .iter()
        .find(|r| pairs.iter().all(|(k, v)| r.get(*k) == Some(v)))
        .with_context(|| format!("no result with {pairs:?} in mesh_bench's JSON"))
}

/// `1 000`, `5 000`, `10 000`: thousands separated by a space.
fn count(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

// === mesh-l4-throughput ===

fn throughput_rows(raw: &Value) -> anyhow::Result<Vec<Row>> {
    let results = results(raw)?;
    let gbit = |path: &str, streams: u64| -> anyhow::Result<Option<f64>> {
        Ok(find(
            results,
            &[("path", path.into()), ("streams", streams.into())],
        )?
        .get("gbit_s")
        .and_then(Value::as_f64))
    };
    let mut rows = Vec::new();
    for streams in [1u64, 8] {
        let direct = gbit("direct", streams)?;
        for path in ["ambient", "sidecar→sidecar"] {
            let what = if streams == 1 {
                "one stream".to_owned()
            } else {
                format!("{streams} streams")
            };
            // The HBONE target, on the end-to-end HBONE path.
            let target = if streams == 1 && path == "ambient" {
                Target::AtLeast(MIN_SINGLE_STREAM_RATIO)
            } else {
                Target::Informational
            };
            rows.push(Row {
                scenario: THROUGHPUT,
                metric: format!("{what}, {path} (Gbit/s)"),
                direct,
                braid: gbit(path, streams)?,
                target,
            });
        }
    }
    Ok(rows)
}

// === mesh-http-latency ===

/// The rows of `mesh-http-latency`; `nginx_skipped` says why nginx was not
/// measured (then its rows are one skipped row).
fn latency_rows(raw: &Value, nginx_skipped: Option<&str>) -> anyhow::Result<Vec<Row>> {
    let results = results(raw)?;
    let mut rates: Vec<f64> = results
        .iter()
        .filter_map(|r| r.get("rate").and_then(Value::as_f64))
        .collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    let mut rows = Vec::new();
    for rate in rates {
        let at = |path: &str| find(results, &[("path", path.into()), ("rate", rate.into())]);
        let direct = at("direct")?;
        let rps = count(rate);
        for path in MESHED {
            let result = at(path)?;
            for p in ["p50", "p90", "p99"] {
                let key = format!("{p}_ms");
                let target =
                    if path == "ambient" && p == "p99" && (rate - 1000.0).abs() < f64::EPSILON {
                        Target::AddedAtMost {
                            limit: MAX_ADDED_P99_MS,
                            unit: "ms",
                        }
                    } else {
                        Target::Informational
                    };
                rows.push(Row {
                    scenario: LATENCY,
                    metric: format!("{p} latency, {path}, {rps} rps (ms)"),
                    direct: direct.get(&key).and_then(Value::as_f64),
                    braid: result.get(&key).and_then(Value::as_f64),
                    target,
                });
            }
        }
        // The load generator's own lag (it shares the cores): latencies
        // are measured from when a request was due, so this is in them.
        let lag = |r: &Value| r.get("send_lateness_p99_ms").and_then(Value::as_f64);
        rows.push(Row {
            scenario: LATENCY,
            metric: format!("load generator's send lag p99, ambient, {rps} rps (ms)"),
            direct: lag(direct),
            braid: lag(at("ambient")?),
            target: Target::Informational,
        });
        let mut measured = vec!["direct"];
        measured.extend(MESHED);
        if nginx_skipped.is_none() {
            measured.push("nginx");
        }
        for path in measured {
            let result = at(path)?;
            for (key, what) in [
                ("errors", "failed requests"),
                ("unsent", "requests not sent in time (saturated)"),
            ] {
                let n = result.get(key).and_then(Value::as_f64).unwrap_or(0.0);
                if n > 0.0 {
                    rows.push(Row {
                        scenario: LATENCY,
                        metric: format!("{what}, {path}, {rps} rps"),
                        direct: None,
                        braid: Some(n),
                        target: Target::Informational,
                    });
                }
            }
        }
        for path in MESHED {
            for proxy in proxies(at(path)?, path)? {
                let role = proxy.get("role").and_then(Value::as_str).unwrap_or("proxy");
                let limit = if role.contains("sidecar") {
                    Some(MAX_SIDECAR_CPU_US)
                } else if role == "waypoint" && path != WAYPOINT_ROUTES {
                    Some(MAX_WAYPOINT_CPU_US)
                } else {
                    None
                };
                let target = limit.map_or(Target::Informational, |limit| Target::AbsoluteAtMost {
                    limit,
                    unit: "µs",
                });
                rows.push(Row {
                    scenario: LATENCY,
                    metric: format!("CPU per request, {path}, {rps} rps: {role} (µs)"),
                    direct: None,
                    braid: proxy.get("cpu_us_per_request").and_then(Value::as_f64),
                    target,
                });
            }
        }
        rows.extend(waypoint_rows(&at, rate, &rps)?);
        if nginx_skipped.is_none() {
            rows.extend(super::nginx::rows(&at, &rps)?);
        }
    }
    if rows.is_empty() {
        anyhow::bail!("mesh_bench measured no rate");
    }
    if let Some(why) = nginx_skipped {
        rows.push(super::nginx::skipped(why));
    }
    Ok(rows)
}

/// The meshed paths of `mesh-http-latency`, as mesh_bench names them.
const MESHED: [&str; 6] = [
    "ambient",
    "sidecar→sidecar",
    "sidecar→ambient",
    AMBIENT_WAYPOINT,
    "sidecar→waypoint→ambient",
    WAYPOINT_ROUTES,
];
const AMBIENT_WAYPOINT: &str = "ambient→waypoint→ambient";
/// [`AMBIENT_WAYPOINT`] to a Service with 1 000 routes at the waypoint.
const WAYPOINT_ROUTES: &str = "ambient→waypoint→ambient, 1 000 routes";

/// The `proxies` of a path's result.
fn proxies<'a>(result: &'a Value, path: &str) -> anyhow::Result<&'a Vec<Value>> {
    result
        .get("proxies")
        .and_then(Value::as_array)
        .with_context(|| format!("no proxies for {path}"))
}

/// The waypoint's CPU per request on `path`.
fn waypoint_cpu(result: &Value, path: &str) -> anyhow::Result<Option<f64>> {
    Ok(proxies(result, path)?
        .iter()
        .find(|p| p.get("role").and_then(Value::as_str) == Some("waypoint"))
        .with_context(|| format!("no waypoint on {path}"))?
        .get("cpu_us_per_request")
        .and_then(Value::as_f64))
}

/// What a waypoint adds, against the mesh without one rather than against
/// the direct path (the `direct` column holds that baseline): p50 over
/// ambient, and the waypoint's CPU per request with 1 000 routes over
/// none. The targets hold at 1 000 rps.
fn waypoint_rows<'r>(
    at: &dyn Fn(&str) -> anyhow::Result<&'r Value>,
    rate: f64,
    rps: &str,
) -> anyhow::Result<Vec<Row>> {
    let targeted = (rate - 1000.0).abs() < f64::EPSILON;
    let target = |limit, unit| {
        if targeted {
            Target::AddedAtMost { limit, unit }
        } else {
            Target::Informational
        }
    };
    let p50 = |r: &Value| r.get("p50_ms").and_then(Value::as_f64);
    Ok(vec![
        Row {
            scenario: LATENCY,
            metric: format!(
                "p50 latency, {AMBIENT_WAYPOINT} over ambient (direct column: ambient), {rps} rps (ms)"
            ),
            direct: p50(at("ambient")?),
            braid: p50(at(AMBIENT_WAYPOINT)?),
            target: target(MAX_WAYPOINT_ADDED_P50_MS, "ms"),
        },
        Row {
            scenario: LATENCY,
            metric: format!(
                "waypoint CPU per request, 1 000 routes over none (direct column: none), {rps} rps (µs)"
            ),
            direct: waypoint_cpu(at(AMBIENT_WAYPOINT)?, AMBIENT_WAYPOINT)?,
            braid: waypoint_cpu(at(WAYPOINT_ROUTES)?, WAYPOINT_ROUTES)?,
            target: target(MAX_ROUTES_ADDED_CPU_US, "µs"),
        },
    ])
}

// === mesh-memory ===

fn memory_rows(raw: &Value) -> anyhow::Result<Vec<Row>> {
    let idle = raw
        .get("idle_rss_bytes")
        .context("no `idle_rss_bytes` in mesh_bench's JSON")?;
    let mib = |key: &str| idle.get(key).and_then(Value::as_f64).map(|b| b / MIB);
    let absolute = |limit, unit| Target::AbsoluteAtMost { limit, unit };
    let mut rows = vec![
        Row {
            scenario: MEMORY,
            metric: "RSS, idle ztunnel, one captured pod (MiB)".to_owned(),
            direct: None,
            braid: mib("ztunnel_one_pod"),
            target: absolute(MAX_IDLE_ZTUNNEL_MIB, "MiB"),
        },
        Row {
            scenario: MEMORY,
            metric: "RSS, idle ztunnel, two captured pods (MiB)".to_owned(),
            direct: None,
            braid: mib("ztunnel_two_pods"),
            target: Target::Informational,
        },
    ];
    for (pod, key) in [("orders", "sidecar_orders"), ("ledger", "sidecar_ledger")] {
        rows.push(Row {
            scenario: MEMORY,
            metric: format!("RSS, idle sidecar ({pod}) (MiB)"),
            direct: None,
            braid: mib(key),
            target: absolute(MAX_IDLE_SIDECAR_MIB, "MiB"),
        });
    }
    rows.push(Row {
        scenario: MEMORY,
        metric: "RSS, idle waypoint, two Services (MiB)".to_owned(),
        direct: None,
        braid: mib("waypoint"),
        target: absolute(MAX_IDLE_WAYPOINT_MIB, "MiB"),
    });
    let runs = raw
        .get("idle_connections")
        .and_then(Value::as_array)
        .context("no `idle_connections` in mesh_bench's JSON")?;
    for run in runs {
        let wanted = run
            .get("connections_wanted")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if let Some(why) = run.get("skipped").and_then(Value::as_str) {
            rows.push(skipped(
                MEMORY,
                &format!("{} idle connections ({why})", count(wanted)),
            ));
            continue;
        }
        let path = run.get("path").and_then(Value::as_str).unwrap_or("?");
        let held = run
            .get("connections")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let proxies = run
            .get("proxies")
            .and_then(Value::as_array)
            .context("no proxies in an idle-connection run")?;
        for proxy in proxies {
            let role = proxy.get("role").and_then(Value::as_str).unwrap_or("proxy");
            rows.push(Row {
                scenario: MEMORY,
                metric: format!(
                    "RSS per idle connection, {path}, {} held: {role} (KiB)",
                    count(held)
                ),
                direct: None,
                braid: proxy
                    .get("bytes_per_connection")
                    .and_then(Value::as_f64)
                    .map(|b| b / 1024.0),
                target: absolute(MAX_KIB_PER_CONNECTION, "KiB"),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Verdict;

    #[test]
    fn a_killed_runs_namespaces_and_children_are_found() {
        let list = "bt-amb-4242-0-client (id: 3)\nbt-amb-4242-0\nbt-amb-42420-0-web (id: 5)\nbt-sc-4242-0\n";
        assert_eq!(
            cluster_namespaces(list, 4242),
            ["bt-amb-4242-0-client", "bt-amb-4242-0"]
        );
        assert_eq!(
            parent_pid("77 (ip netns (x)) S 4242 77 77 0 -1"),
            Some(4242)
        );
        assert_eq!(parent_pid("garbage"), None);
        let tmp = std::env::temp_dir();
        let config = tmp.join("braid-ambient-Ab12Cd/config");
        assert_eq!(
            cluster_dir(&config.display().to_string()),
            Some(tmp.join("braid-ambient-Ab12Cd"))
        );
        assert_eq!(cluster_dir("--config-dir"), None);
        assert_eq!(
            cluster_dir(&tmp.join("braid-ambient-").display().to_string()),
            None
        );
        assert_eq!(cluster_dir("/etc/braid-ambient-x/y"), None);
    }

    #[test]
    fn counts_have_thousands_separated() {
        assert_eq!(count(1000.0), "1 000");
        assert_eq!(count(10_000.0), "10 000");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(123_456_789.0), "123 456 789");
    }

    #[test]
    fn throughput_json_becomes_rows_with_the_hbone_target_on_one_ambient_stream() {
        let raw = serde_json::json!({"results": [
            {"path": "direct", "streams": 1, "gbit_s": 20.0},
            {"path": "direct", "streams": 8, "gbit_s": 24.0},
            {"path": "ambient", "streams": 1, "gbit_s": 12.0},
            {"path": "ambient", "streams": 8, "gbit_s": 6.0},
            {"path": "sidecar→sidecar", "streams": 1, "gbit_s": 2.0},
            {"path": "sidecar→sidecar", "streams": 8, "gbit_s": null},
        ]});
        let rows = throughput_rows(&raw).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].metric, "one stream, ambient (Gbit/s)");
        assert_eq!(rows[0].ratio(), Some(0.6));
        assert_eq!(rows[0].verdict(), Verdict::Pass);
        assert_eq!(rows[1].verdict(), Verdict::Info);
        assert_eq!(rows[3].metric, "8 streams, sidecar→sidecar (Gbit/s)");
        assert_eq!(rows[3].braid, None);
        assert!(throughput_rows(&serde_json::json!({"results": []})).is_err());
    }

    fn latency_result(path: &str, rate: f64, p99: f64, cpu: &[(&str, f64)]) -> Value {
        serde_json::json!({
            "path": path, "rate": rate, "errors": 0,
            "p50_ms": p99 / 4.0, "p90_ms": p99 / 2.0, "p99_ms": p99,
            "proxies": cpu.iter().map(|(role, us)| serde_json::json!({
                "role": role, "cpu_us_per_request": us,
            })).collect::<Vec<_>>(),
        })
    }

    /// The three waypoint paths at `rate`: the waypoint costs `cpu` µs a
    /// request, `routes_cpu` with 1 000 routes; p99 `p99` ms.
    fn waypoint_results(rate: f64, p99: f64, cpu: f64, routes_cpu: f64) -> [Value; 3] {
        let ztunnels = |waypoint: f64| {
            [
                ("client ztunnel", 40.0),
                ("waypoint", waypoint),
                ("server ztunnel", 40.0),
            ]
        };
        [
            latency_result(AMBIENT_WAYPOINT, rate, p99, &ztunnels(cpu)),
            latency_result(
                "sidecar→waypoint→ambient",
                rate,
                p99,
                &[
                    ("client sidecar", 90.0),
                    ("waypoint", cpu),
                    ("server ztunnel", 40.0),
                ],
            ),
            latency_result(WAYPOINT_ROUTES, rate, p99, &ztunnels(routes_cpu)),
        ]
    }

    /// `results` with the waypoint paths at 1 000 rps.
    fn with_waypoints(mut results: Vec<Value>, p99: f64, cpu: f64, routes_cpu: f64) -> Value {
        results.extend(waypoint_results(1000.0, p99, cpu, routes_cpu));
        serde_json::json!({ "results": results })
    }

    #[test]
    fn latency_rows_add_the_mesh_latency_and_cpu_per_request() {
        let raw = with_waypoints(
            vec![
                latency_result("direct", 1000.0, 0.4, &[]),
                latency_result(
                    "ambient",
                    1000.0,
                    0.6,
                    &[("client ztunnel", 40.0), ("server ztunnel", 41.0)],
                ),
                latency_result(
                    "sidecar→sidecar",
                    1000.0,
                    1.0,
                    &[("client sidecar", 90.0), ("server sidecar", 120.0)],
                ),
                latency_result(
                    "sidecar→ambient",
                    1000.0,
                    0.9,
                    &[("client sidecar", 95.0), ("server ztunnel", 40.0)],
                ),
                latency_result("nginx", 1000.0, 0.5, &[("nginx", 100.0)]),
            ],
            2.0,
            80.0,
            83.0,
        );
        let rows = latency_rows(&raw, None).unwrap();
        // 6 paths × 3 percentiles, the generator's lag, 15 proxies, the 2
        // waypoint rows, then nginx's 8 rows.
        assert_eq!(rows.len(), 44);
        assert!(rows[36..].iter().all(|r| r.metric.contains("nginx")));
        let p99 = rows
            .iter()
            .find(|r| r.metric == "p99 latency, ambient, 1 000 rps (ms)")
            .unwrap();
        assert_eq!(p99.direct, Some(0.4));
        assert!((p99.added().unwrap() - 0.2).abs() < 1e-9);
        assert_eq!(p99.verdict(), Verdict::Pass);
        let sidecar_p99 = rows
            .iter()
            .find(|r| r.metric == "p99 latency, sidecar→sidecar, 1 000 rps (ms)")
            .unwrap();
        assert_eq!(sidecar_p99.verdict(), Verdict::Info);
        assert_eq!(
            rows[18].metric,
            "load generator's send lag p99, ambient, 1 000 rps (ms)"
        );
        let cpu: Vec<(&str, Verdict)> = rows[19..25]
            .iter()
            .map(|r| (r.metric.as_str(), r.verdict()))
            .collect();
        assert_eq!(
            cpu,
            [
                (
                    "CPU per request, ambient, 1 000 rps: client ztunnel (µs)",
                    Verdict::Info
                ),
                (
                    "CPU per request, ambient, 1 000 rps: server ztunnel (µs)",
                    Verdict::Info
                ),
                (
                    "CPU per request, sidecar→sidecar, 1 000 rps: client sidecar (µs)",
                    Verdict::Pass
                ),
                (
                    "CPU per request, sidecar→sidecar, 1 000 rps: server sidecar (µs)",
                    Verdict::Fail
                ),
                (
                    "CPU per request, sidecar→ambient, 1 000 rps: client sidecar (µs)",
                    Verdict::Pass
                ),
                (
                    "CPU per request, sidecar→ambient, 1 000 rps: server ztunnel (µs)",
                    Verdict::Info
                ),
            ]
        );
        assert!(rows[19..34].iter().all(|r| r.direct.is_none()));
        let waypoint_cpu: Vec<(&str, Verdict)> = rows[19..34]
            .iter()
            .filter(|r| r.metric.ends_with("waypoint (µs)"))
            .map(|r| (r.metric.as_str(), r.verdict()))
            .collect();
        assert_eq!(
            waypoint_cpu,
            [
                (
                    "CPU per request, ambient→waypoint→ambient, 1 000 rps: waypoint (µs)",
                    Verdict::Pass
                ),
                (
                    "CPU per request, sidecar→waypoint→ambient, 1 000 rps: waypoint (µs)",
                    Verdict::Pass
                ),
                (
                    "CPU per request, ambient→waypoint→ambient, 1 000 routes, 1 000 rps: waypoint (µs)",
                    Verdict::Info
                ),
            ]
        );
        // What the waypoint adds over ambient (p50 0.5 vs 0.15 ms) and what
        // 1 000 routes add (3 µs).
        let over = &rows[34..36];
        assert_eq!(over[0].direct, Some(0.15));
        assert_eq!(over[0].braid, Some(0.5));
        assert_eq!(over[0].verdict(), Verdict::Pass);
        assert!(
            over[1]
                .metric
                .starts_with("waypoint CPU per request, 1 000 routes")
        );
        assert!((over[1].added().unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(over[1].verdict(), Verdict::Pass);
    }

    #[test]
    fn a_costly_route_table_or_slow_waypoint_fails_only_at_1000_rps() {
        let mut results = vec![
            latency_result("direct", 1000.0, 0.4, &[]),
            latency_result("ambient", 1000.0, 0.6, &[]),
            latency_result("sidecar→sidecar", 1000.0, 1.0, &[]),
            latency_result("sidecar→ambient", 1000.0, 0.9, &[]),
        ];
        for rate in [1000.0, 5000.0] {
            if rate > 1000.0 {
                for path in ["direct", "ambient", "sidecar→sidecar", "sidecar→ambient"] {
                    results.push(latency_result(path, rate, 0.6, &[]));
                }
            }
            results.extend(waypoint_results(rate, 4.0, 120.0, 130.0));
        }
        let rows =
            latency_rows(&serde_json::json!({ "results": results }), Some("no nginx")).unwrap();
        let verdict = |metric: &str| {
            rows.iter()
                .find(|r| r.metric == metric)
                .unwrap_or_else(|| panic!("no row {metric}"))
                .verdict()
        };
        for (rps, expected) in [("1 000", Verdict::Fail), ("5 000", Verdict::Info)] {
            // The waypoint's own CPU target holds at every rate, like a
            // sidecar's.
            assert_eq!(
                verdict(&format!(
                    "CPU per request, ambient→waypoint→ambient, {rps} rps: waypoint (µs)"
                )),
                Verdict::Fail
            );
            assert_eq!(
                verdict(&format!(
                    "p50 latency, ambient→waypoint→ambient over ambient (direct column: ambient), {rps} rps (ms)"
                )),
                expected
            );
            assert_eq!(
                verdict(&format!(
                    "waypoint CPU per request, 1 000 routes over none (direct column: none), {rps} rps (µs)"
                )),
                expected
            );
        }
    }

    #[test]
    fn a_slow_ambient_p99_fails_and_failed_requests_are_shown() {
        let mut direct = latency_result("direct", 1000.0, 0.4, &[]);
        direct["errors"] = 3.into();
        direct["unsent"] = 2.into();
        let raw = with_waypoints(
            vec![
                direct,
                latency_result("ambient", 1000.0, 0.75, &[]),
                latency_result("sidecar→sidecar", 1000.0, 1.0, &[]),
                latency_result("sidecar→ambient", 1000.0, 0.9, &[]),
            ],
            1.0,
            50.0,
            51.0,
        );
        let rows = latency_rows(&raw, Some("nginx is not installed")).unwrap();
        let p99 = rows
            .iter()
            .find(|r| r.metric == "p99 latency, ambient, 1 000 rps (ms)")
            .unwrap();
        assert_eq!(p99.verdict(), Verdict::Fail);
        assert!(
            rows.iter()
                .any(|r| r.metric == "failed requests, direct, 1 000 rps" && r.braid == Some(3.0))
        );
        assert!(rows.iter().any(|r| r.metric
            == "requests not sent in time (saturated), direct, 1 000 rps"
            && r.braid == Some(2.0)));
        // Without nginx, one skipped row says why.
        let last = rows.last().unwrap();
        assert_eq!(
            last.metric,
            "skipped: nginx L7 reference: nginx is not installed"
        );
        assert_eq!(last.verdict(), Verdict::Skipped);
        assert!(rows.iter().filter(|r| r.metric.contains("nginx")).count() == 1);
    }

    #[test]
    fn measured_nginx_results_are_required() {
        let raw = with_waypoints(
            vec![
                latency_result("direct", 1000.0, 0.4, &[]),
                latency_result("ambient", 1000.0, 0.6, &[]),
                latency_result("sidecar→sidecar", 1000.0, 1.0, &[]),
                latency_result("sidecar→ambient", 1000.0, 0.9, &[]),
            ],
            1.0,
            50.0,
            51.0,
        );
        let err = latency_rows(&raw, None).unwrap_err();
        assert!(format!("{err:#}").contains("nginx"), "{err:#}");
    }

    #[test]
    fn memory_rows_are_absolute_with_skips() {
        let raw = serde_json::json!({
            "idle_rss_bytes": {
                "ztunnel_one_pod": 11.0 * MIB,
                "ztunnel_two_pods": 11.5 * MIB,
                "sidecar_orders": 16.0 * MIB,
                "sidecar_ledger": 12.0 * MIB,
                "waypoint": 21.0 * MIB,
            },
            "idle_connections": [
                {"path": "ambient", "connections_wanted": 1000, "connections": 1000, "proxies": [
                    {"role": "client ztunnel", "bytes_per_connection": 3072.0},
                    {"role": "server ztunnel", "bytes_per_connection": 8192.0},
                ]},
                {"connections_wanted": 10000, "skipped": "RLIMIT_NOFILE 4096"},
            ],
        });
        let rows = memory_rows(&raw).unwrap();
        let verdicts: Vec<Verdict> = rows.iter().map(Row::verdict).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Pass,
                Verdict::Info,
                Verdict::Fail,
                Verdict::Pass,
                Verdict::Fail,
                Verdict::Pass,
                Verdict::Fail,
                Verdict::Skipped,
            ]
        );
        assert_eq!(rows[0].braid, Some(11.0));
        assert_eq!(rows[4].metric, "RSS, idle waypoint, two Services (MiB)");
        assert_eq!(
            rows[5].metric,
            "RSS per idle connection, ambient, 1 000 held: client ztunnel (KiB)"
        );
        assert_eq!(rows[5].braid, Some(3.0));
        assert_eq!(
            rows[7].metric,
            "skipped: 10 000 idle connections (RLIMIT_NOFILE 4096)"
        );
    }
}
