//! The L7 reference of `mesh-http-latency`: the same open-loop HTTP load
//! through nginx (the Debian package, a plain reverse proxy in the direct
//! path's client pod, see `tests/examples/mesh_bench/nginx.rs`), so the
//! sidecar's latency and CPU per request read as a ratio to an ordinary L7
//! proxy measured in the same run.
//!
//! Here: finding nginx (installing the package with apt-get when missing:
//! the mesh scenarios run as root) and turning its results into rows. The
//! issue's target, "sidecar requests/s per CPU ≥ nginx's", compares the
//! client sidecar of sidecar→sidecar with nginx at each rate.

use std::{path::PathBuf, process::Command, time::Duration};

use serde_json::Value;

use super::{Row, Target, mesh::LATENCY};

/// Where Debian puts nginx, searched besides `$PATH` (which may lack the
/// sbin directories).
const SBIN: [&str; 2] = ["/usr/sbin", "/usr/local/sbin"];

/// How long `apt-get install` may take.
const INSTALL_LIMIT: Duration = Duration::from_secs(240);

/// The path the client sidecar's CPU is compared on.
const SIDECAR_PATH: &str = "sidecar→sidecar";
const SIDECAR_ROLE: &str = "client sidecar";

/// The nginx binary, installed with `apt-get install -y nginx` first if
/// missing; `Err` says why the nginx rows are skipped. On a host with an
/// init system the package's scripts may also start Debian's own nginx
/// service; the bench never uses it.
pub(super) fn locate_or_install() -> Result<PathBuf, String> {
    if let Some(found) = locate() {
        return Ok(found);
    }
    let Some(apt) = find_in(&search_path(), "apt-get") else {
        return Err("nginx is not installed and apt-get is not available; install nginx".into());
    };
    eprintln!("==> nginx not found: apt-get install -y nginx (the L7 reference)");
    let mut install = Command::new(apt);
    install
        .args(["install", "-y", "nginx"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    if let Err(e) = super::run_bounded(&mut install, INSTALL_LIMIT) {
        return Err(format!(
            "nginx is not installed and `apt-get install -y nginx` failed ({e:#}); install nginx"
        ));
    }
    locate().ok_or_else(|| "apt-get installed nginx, but no nginx binary was found".into())
}

fn locate() -> Option<PathBuf> {
    find_in(&search_path(), "nginx")
}

/// `$PATH`, then the sbin directories.
fn search_path() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(SBIN.iter().map(PathBuf::from));
    dirs
}

/// The first executable file `name` in `dirs`.
fn find_in(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    dirs.iter().map(|d| d.join(name)).find(|candidate| {
        std::fs::metadata(candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The nginx rows at one rate: its latency against the direct path's (the
/// difference is what nginx adds), what the sidecar adds against what
/// nginx adds, nginx's CPU per request, and the target row.
/// `at(path)` is the mesh_bench result of `path` at this rate.
pub(super) fn rows<'r>(
    at: &dyn Fn(&str) -> anyhow::Result<&'r Value>,
    rps: &str,
) -> anyhow::Result<Vec<Row>> {
    let direct = at("direct")?;
    let nginx = at("nginx")?;
    let sidecar = at(SIDECAR_PATH)?;
    let ms = |r: &Value, p: &str| r.get(format!("{p}_ms")).and_then(Value::as_f64);
    let info = |metric: String, direct, braid| Row {
        scenario: LATENCY,
        metric,
        direct,
        braid,
        target: Target::Informational,
    };
    let mut rows = Vec::new();
    for p in ["p50", "p90", "p99"] {
        rows.push(info(
            format!("{p} latency, nginx (L7 reference), {rps} rps (ms)"),
            ms(direct, p),
            ms(nginx, p),
        ));
    }
    for p in ["p50", "p90", "p99"] {
        let added = |r: &Value| Some(ms(r, p)? - ms(direct, p)?);
        rows.push(info(
            format!(
                "added {p} latency: {SIDECAR_PATH} (braid column) vs nginx (direct column), {rps} rps (ms)"
            ),
            added(nginx),
            added(sidecar),
        ));
    }
    let nginx_us = cpu_us(nginx, "nginx");
    let sidecar_us = cpu_us(sidecar, SIDECAR_ROLE);
    rows.push(info(
        format!("CPU per request, nginx (L7 reference), {rps} rps: master + worker (µs)"),
        None,
        nginx_us,
    ));
    rows.push(Row {
        scenario: LATENCY,
        metric: format!(
            "requests/s per CPU: {SIDECAR_ROLE} of {SIDECAR_PATH} (braid column) vs nginx (direct column), {rps} rps"
        ),
        direct: nginx_us.and_then(per_cpu_second),
        braid: sidecar_us.and_then(per_cpu_second),
        // The sidecar's µs per request ≤ nginx's.
        target: Target::AtLeast(1.0),
    });
    Ok(rows)
}

/// CPU µs per request of the proxy `role` in a mesh_bench result.
fn cpu_us(result: &Value, role: &str) -> Option<f64> {
    result
        .get("proxies")?
        .as_array()?
        .iter()
        .find(|p| p.get("role").and_then(Value::as_str) == Some(role))?
        .get("cpu_us_per_request")?
        .as_f64()
}

/// Requests per CPU-second from CPU µs per request; `None` when no CPU
/// was measured (too few clock ticks to tell).
fn per_cpu_second(us_per_request: f64) -> Option<f64> {
    (us_per_request > 0.0 && us_per_request.is_finite()).then(|| 1e6 / us_per_request)
}

/// The nginx row when nginx was not measured.
pub(super) fn skipped(why: &str) -> Row {
    Row {
        scenario: LATENCY,
        metric: format!("skipped: nginx L7 reference: {why}"),
        direct: None,
        braid: None,
        target: Target::Skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Verdict;

    #[test]
    fn only_executable_files_are_found() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let found_in = |dir: &std::path::Path, name| find_in(&[dir.to_path_buf()], name).is_some();
        let file = dir.path().join("nginx");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        assert!(!found_in(dir.path(), "nginx"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(found_in(dir.path(), "nginx"));
        std::fs::create_dir(dir.path().join("apt-get")).unwrap();
        assert!(!found_in(dir.path(), "apt-get"));
    }

    fn result(path: &str, p50: f64, p99: f64, cpu: &[(&str, f64)]) -> Value {
        serde_json::json!({
            "path": path, "p50_ms": p50, "p90_ms": p50, "p99_ms": p99,
            "proxies": cpu.iter().map(|(role, us)| serde_json::json!({
                "role": role, "cpu_us_per_request": us,
            })).collect::<Vec<_>>(),
        })
    }

    fn rows_for(sidecar_us: f64, nginx_us: f64) -> Vec<Row> {
        let results = [
            result("direct", 0.2, 0.4, &[]),
            result("nginx", 0.3, 0.6, &[("nginx", nginx_us)]),
            result(
                SIDECAR_PATH,
                0.5,
                1.2,
                &[("client sidecar", sidecar_us), ("server sidecar", 1.0)],
            ),
        ];
        let at = |path: &str| {
            results
                .iter()
                .find(|r| r["path"] == path)
                .ok_or_else(|| anyhow::anyhow!("no {path}"))
        };
        rows(&at, "1 000").unwrap()
    }

    #[test]
    fn nginx_rows_show_its_added_latency_cpu_and_the_sidecar_against_it() {
        let rows = rows_for(40.0, 50.0);
        assert_eq!(rows.len(), 8);
        let p99 = &rows[2];
        assert_eq!(
            p99.metric,
            "p99 latency, nginx (L7 reference), 1 000 rps (ms)"
        );
        assert_eq!((p99.direct, p99.braid), (Some(0.4), Some(0.6)));
        assert!((p99.added().unwrap() - 0.2).abs() < 1e-9);
        // What the sidecar adds (0.8 ms) against what nginx adds (0.2 ms).
        let added = &rows[5];
        assert!(
            added
                .metric
                .starts_with("added p99 latency: sidecar→sidecar (braid column) vs nginx")
        );
        assert!((added.ratio().unwrap() - 4.0).abs() < 1e-9);
        assert_eq!(rows[6].braid, Some(50.0));
        assert_eq!(rows[6].verdict(), Verdict::Info);
        let target = &rows[7];
        assert_eq!(
            (target.direct, target.braid),
            (Some(20_000.0), Some(25_000.0))
        );
        assert_eq!(target.verdict(), Verdict::Pass);
        assert_eq!(target.target.describe(), "≥ 1.00");
    }

    #[test]
    fn a_sidecar_costlier_than_nginx_fails_the_target() {
        assert_eq!(rows_for(60.0, 50.0)[7].verdict(), Verdict::Fail);
        // The same cost passes; no CPU measured for nginx fails.
        assert_eq!(rows_for(50.0, 50.0)[7].verdict(), Verdict::Pass);
        assert_eq!(rows_for(50.0, 0.0)[7].verdict(), Verdict::Fail);
    }

    #[test]
    fn cpu_per_request_becomes_requests_per_cpu_second() {
        assert_eq!(per_cpu_second(50.0), Some(20_000.0));
        assert_eq!(per_cpu_second(0.0), None);
        assert_eq!(per_cpu_second(f64::NAN), None);
    }
}
