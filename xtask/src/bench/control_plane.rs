//! Scenario `control-plane`: the release `braid-control` with 10 000
//! workloads and 2 000 services in its YAML directory, 1 000 xDS clients
//! connected (ten of them watching everything, as ztunnels do), a policy
//! change timed until every client has applied it, and a restart of the
//! control plane timed until every client is in sync again. Driven by the
//! `braid-control` example `control_plane_scale`; nothing here needs root.

use std::{path::Path, process::Command, time::Duration};

use anyhow::Context as _;

use super::{Context, Outcome, Row, Target};

const NAME: &str = "control-plane";
/// Bounds the whole run (it takes seconds).
const LIMIT: Duration = Duration::from_secs(300);

/// Builds the release control plane, runs the example, turns its JSON into
/// rows.
pub(super) fn run(context: &Context) -> anyhow::Result<Outcome> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask lives in the repository")?;
    crate::test::cargo(
        root,
        &[
            "build",
            "--release",
            "-p",
            "braid-control",
            "--bin",
            "braid-control",
        ],
    )?;
    let changes = if context.quick { "3" } else { "10" };
    let control = context.release_dir.join("braid-control");
    eprintln!("    10 000 workloads, 2 000 services, 1 000 clients, {changes} changes");
    let out = super::run_bounded(
        Command::new(context.example("control_plane_scale"))
            .arg("--control")
            .arg(&control)
            .args(["--workloads", "10000", "--services", "2000"])
            .args(["--clients", "1000", "--full-clients", "10"])
            .args(["--changes", changes]),
        LIMIT,
    )?;
    let raw: serde_json::Value = super::last_json(&out, "control_plane_scale")?;
    Ok(Outcome {
        rows: rows(&raw)?,
        raw,
    })
}

fn rows(raw: &serde_json::Value) -> anyhow::Result<Vec<Row>> {
    let field = |name: &str| -> anyhow::Result<f64> {
        raw.get(name)
            .and_then(serde_json::Value::as_f64)
            .with_context(|| format!("no number `{name}` in the example's JSON"))
    };
    let row = |metric: &str, value: f64, target: Target| Row {
        scenario: NAME,
        metric: metric.to_owned(),
        direct: None,
        braid: Some(value),
        target,
    };
    Ok(vec![
        row(
            "RSS with 10 000 workloads, 2 000 services (MiB)",
            field("rss_ready_mb")?,
            Target::AbsoluteAtMost {
                limit: 100.0,
                unit: "MiB",
            },
        ),
        row(
            "RSS with 1 000 xDS clients connected (MiB)",
            field("rss_with_clients_mb")?,
            Target::Informational,
        ),
        row(
            "1 000 clients' initial sync (s)",
            field("initial_sync_s")?,
            Target::Informational,
        ),
        row(
            "change to ACK on 1 000 clients, p50 (ms)",
            field("change_to_ack_p50_ms")?,
            Target::Informational,
        ),
        row(
            "change to ACK on 1 000 clients, p99 (ms)",
            field("change_to_ack_p99_ms")?,
            Target::AbsoluteAtMost {
                limit: 1000.0,
                unit: "ms",
            },
        ),
        row(
            "reconnect storm: 1 000 clients in sync after a restart (s)",
            field("reconnect_storm_s")?,
            Target::Informational,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_report_becomes_rows_with_targets() {
        let raw = serde_json::json!({
            "rss_ready_mb": 36.7, "rss_with_clients_mb": 125.8, "initial_sync_s": 1.2,
            "change_to_ack_p50_ms": 163.0, "change_to_ack_p99_ms": 1196.0,
            "reconnect_storm_s": 1.8,
        });
        let got = rows(&raw).expect("rows");
        assert_eq!(got.len(), 6);
        assert_eq!(got[0].verdict(), super::super::Verdict::Pass);
        assert_eq!(
            got[4].verdict(),
            super::super::Verdict::Fail,
            "p99 over 1 s"
        );
        assert!(
            rows(&serde_json::json!({})).is_err(),
            "missing fields are errors"
        );
    }
}
