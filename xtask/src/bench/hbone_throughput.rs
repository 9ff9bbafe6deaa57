//! Scenario `hbone-throughput`: bulk TCP throughput over one HBONE hop (an
//! outbound proxy opening an mTLS HTTP/2 CONNECT tunnel to an HBONE server)
//! against direct loopback TCP, both measured by the `braid-proxy` example
//! `hbone_throughput` in alternating rounds. Two plain TCP relays in a row
//! are measured too: the floor any two-proxy path pays for its extra copies.

use std::{process::Command, time::Duration};

use anyhow::Context as _;

use super::{Context, Outcome, Row, Target};

const NAME: &str = "hbone-throughput";
/// The bench issue's target: HBONE keeps at least half of direct throughput.
const MIN_RATIO: f64 = 0.5;
/// Bounds the whole run; the example also bounds each round.
const LIMIT: Duration = Duration::from_secs(600);

/// Runs the example and turns its JSON into rows.
pub(super) fn run(context: &Context) -> anyhow::Result<Outcome> {
    let (rounds, bytes) = if context.quick {
        ("3", "268435456")
    } else {
        ("5", "1073741824")
    };
    eprintln!("    {rounds} rounds of {bytes} bytes per path");
    let out = super::run_bounded(
        Command::new(context.example("hbone_throughput"))
            .args(["--rounds", rounds, "--bytes", bytes]),
        LIMIT,
    )?;
    let raw: serde_json::Value = super::last_json(&out, "hbone_throughput")?;
    Ok(Outcome {
        rows: rows(&raw)?,
        raw,
    })
}

/// The example's report as rows: HBONE against direct (with the target),
/// and the plain two-relay reference.
fn rows(raw: &serde_json::Value) -> anyhow::Result<Vec<Row>> {
    let field = |name: &str| -> anyhow::Result<Option<f64>> {
        let value = raw
            .get(name)
            .with_context(|| format!("no `{name}` in the example's JSON"))?;
        // NaN (a path not run) comes out as null.
        Ok(value.as_f64())
    };
    let direct = field("direct_gbit_s")?;
    Ok(vec![
        Row {
            scenario: NAME,
            metric: "throughput, one HBONE hop (Gbit/s)".to_owned(),
            direct,
            braid: field("hbone_gbit_s")?,
            target: Target::AtLeast(MIN_RATIO),
        },
        Row {
            scenario: NAME,
            metric: "throughput, two plain TCP relays: reference (Gbit/s)".to_owned(),
            direct,
            braid: field("plain_relay_gbit_s")?,
            target: Target::Informational,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_json_becomes_two_rows() {
        let raw = serde_json::json!({
            "scenario": "hbone-throughput",
            "bytes_per_round": 268_435_456,
            "rounds": 3,
            "direct_gbit_s": 40.0,
            "hbone_gbit_s": 24.0,
            "ratio": 0.6,
            "plain_relay_gbit_s": 30.0,
            "plain_relay_ratio": 0.75,
        });
        let rows = rows(&raw).expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].ratio(), Some(0.6));
        assert_eq!(rows[0].target, Target::AtLeast(0.5));
        assert_eq!(rows[1].ratio(), Some(0.75));
        assert_eq!(rows[1].target, Target::Informational);
    }

    #[test]
    fn a_path_not_run_is_null() {
        let raw = serde_json::json!({
            "direct_gbit_s": 40.0,
            "hbone_gbit_s": null,
            "plain_relay_gbit_s": 30.0,
        });
        assert_eq!(rows(&raw).expect("rows")[0].braid, None);
        assert!(rows(&serde_json::json!({})).is_err());
    }
}
