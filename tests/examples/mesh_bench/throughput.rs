//! `mesh-l4-throughput`: bulk TCP over direct, ambient and
//! sidecar→sidecar.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::{bench::Bench, load, paths::*};

/// Bulk TCP, one stream and 8 in parallel, over direct, ambient and
/// sidecar→sidecar, in alternating rounds; the sink measures from its
/// first byte to its last. Medians of the rounds.
pub(crate) fn run(bench: &Bench, quick: bool) -> anyhow::Result<Value> {
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

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some(f64::midpoint(sorted[n / 2 - 1], sorted[n / 2])),
    }
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
}
