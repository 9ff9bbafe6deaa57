//! `cargo xtask bench`: Braid's benchmarks. Builds the release artefacts the
//! scenarios need, runs each scenario, and writes
//! `<target-dir>/bench/report.json` and `<target-dir>/bench/report.md`; with
//! `--update-book` it also rewrites the measured section of
//! `book/src/performance.md`.
//!
//! Every scenario measures a direct (unproxied) path in the same invocation
//! as the path through Braid, so a slow or busy machine moves both sides
//! alike. A row's target applies to the ratio braid / direct, to the
//! difference braid − direct (added latency), or, where there is no direct
//! side (a proxy's memory or CPU), to Braid's number itself.
//!
//! A scenario is an entry in [`SCENARIOS`]: a name, the release examples
//! and binaries it needs, and a function that runs them and returns
//! [`Row`]s. Each child process runs under a time limit ([`run_bounded`]).
//! The network-namespace scenarios (`mesh-*`, see [`mesh`]) need root and
//! report a skipped row otherwise.

use std::{
    fmt::Write as _,
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

mod control_plane;
mod hbone_throughput;
mod machine;
mod mesh;
mod nginx;

use machine::Machine;

use crate::test::cargo;

/// Arguments of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Fewer, smaller rounds: a smoke run in under 5 minutes, noisier numbers.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Run only this scenario (repeatable).
    #[arg(long, value_name = "NAME", value_parser = scenario_names())]
    pub(crate) only: Vec<String>,
    /// Also rewrite the measured section of book/src/performance.md (with
    /// every scenario, so not with --only, and not when one was skipped).
    #[arg(long, conflicts_with = "only")]
    pub(crate) update_book: bool,
}

/// One benchmark scenario.
struct Scenario {
    /// What `--only` selects and the report shows.
    name: &'static str,
    /// Release examples it runs, as (package, example); built before any
    /// scenario runs.
    examples: &'static [(&'static str, &'static str)],
    /// Needs root and the release `braid-control`, `braid-proxy` and
    /// `braid-cni` binaries (the network-namespace cluster); skipped, and
    /// nothing built for it, when not root.
    mesh: bool,
    /// Runs the scenario and returns its rows and its raw output (kept in
    /// report.json).
    run: fn(&Context) -> anyhow::Result<Outcome>,
}

/// The example driving the network-namespace scenarios.
const MESH_BENCH: (&str, &str) = ("braid-tests", "mesh_bench");

/// Every scenario, in the order they run (`mesh-http-latency` includes the
/// nginx L7 reference). To come (see the bench issue): gRPC latency.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "hbone-throughput",
        examples: &[("braid-proxy", "hbone_throughput")],
        mesh: false,
        run: hbone_throughput::run,
    },
    Scenario {
        name: mesh::THROUGHPUT,
        examples: &[MESH_BENCH],
        mesh: true,
        run: mesh::run_throughput,
    },
    Scenario {
        name: mesh::LATENCY,
        examples: &[MESH_BENCH],
        mesh: true,
        run: mesh::run_latency,
    },
    Scenario {
        name: mesh::MEMORY,
        examples: &[MESH_BENCH],
        mesh: true,
        run: mesh::run_memory,
    },
    Scenario {
        name: "control-plane",
        examples: &[("braid-control", "control_plane_scale")],
        mesh: false,
        run: control_plane::run,
    },
];

fn scenario_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(SCENARIOS.iter().map(|s| s.name))
}

/// What a scenario gets to run with.
struct Context {
    /// `--quick`.
    quick: bool,
    /// `<target-dir>/release`.
    release_dir: PathBuf,
    /// Running as root (the network-namespace scenarios run).
    root: bool,
}

impl Context {
    /// A release example built for the scenarios.
    fn example(&self, name: &str) -> PathBuf {
        self.release_dir.join("examples").join(name)
    }
}

/// What one scenario measured.
struct Outcome {
    rows: Vec<Row>,
    /// The measurement program's own report, kept verbatim in report.json.
    raw: serde_json::Value,
}

/// One line of the report: a metric measured directly and through Braid.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    scenario: &'static str,
    /// What was measured, with its unit.
    metric: String,
    /// Without Braid (`None` when not measured).
    direct: Option<f64>,
    /// Through Braid (or, for reference rows, through what the row names).
    braid: Option<f64>,
    /// Which way is better, and the target for the ratio braid / direct.
    target: Target,
}

/// The goal for a row.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    /// The ratio braid / direct must be at least this (throughput-like
    /// metrics).
    AtLeast(f64),
    /// What Braid adds, braid − direct, must be at most `limit` (in the
    /// row's unit, e.g. added latency in ms).
    AddedAtMost { limit: f64, unit: &'static str },
    /// Braid's number itself must be at most `limit`: rows with no direct
    /// side, such as a proxy's memory or CPU per request.
    AbsoluteAtMost { limit: f64, unit: &'static str },
    /// No target: the row is context, such as a reference path.
    Informational,
    /// Not measured here (e.g. not root); neither passes nor fails.
    Skipped,
}

/// A row's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail,
    Info,
    Skipped,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        match (self.direct, self.braid) {
            (Some(d), Some(b)) if d > 0.0 && d.is_finite() && b.is_finite() => Some(b / d),
            _ => None,
        }
    }

    /// What Braid adds: braid − direct.
    fn added(&self) -> Option<f64> {
        match (self.direct, self.braid) {
            (Some(d), Some(b)) if d.is_finite() && b.is_finite() => Some(b - d),
            _ => None,
        }
    }

    fn verdict(&self) -> Verdict {
        // A missing or non-finite measurement fails its target.
        let check = |value: Option<f64>, ok: &dyn Fn(f64) -> bool| match value {
            Some(v) if v.is_finite() && ok(v) => Verdict::Pass,
            _ => Verdict::Fail,
        };
        match self.target {
            Target::Informational => Verdict::Info,
            Target::Skipped => Verdict::Skipped,
            Target::AtLeast(min) => check(self.ratio(), &|r| r >= min),
            Target::AddedAtMost { limit, .. } => check(self.added(), &|a| a <= limit),
            Target::AbsoluteAtMost { limit, .. } => check(self.braid, &|b| b <= limit),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let (kind, limit, unit) = match self.target {
            Target::AtLeast(min) => ("ratio_at_least", Some(min), None),
            Target::AddedAtMost { limit, unit } => ("added_at_most", Some(limit), Some(unit)),
            Target::AbsoluteAtMost { limit, unit } => ("absolute_at_most", Some(limit), Some(unit)),
            Target::Informational => ("none", None, None),
            Target::Skipped => ("skipped", None, None),
        };
        serde_json::json!({
            "scenario": self.scenario,
            "metric": self.metric,
            "direct": self.direct.filter(|v| v.is_finite()),
            "braid": self.braid.filter(|v| v.is_finite()),
            "ratio": self.ratio(),
            "added": self.added(),
            "target": {"kind": kind, "limit": limit, "unit": unit},
            "target_min_ratio": match self.target {
                Target::AtLeast(min) => Some(min),
                _ => None,
            },
            "result": self.verdict().as_str(),
        })
    }
}

impl Target {
    /// How the table shows the target.
    fn describe(self) -> String {
        match self {
            Target::AtLeast(min) => format!("≥ {min:.2}"),
            Target::AddedAtMost { limit, unit } => format!("added ≤ {} {unit}", number(limit)),
            Target::AbsoluteAtMost { limit, unit } => format!("≤ {} {unit}", number(limit)),
            Target::Informational | Target::Skipped => "—".to_owned(),
        }
    }
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "FAIL",
            Self::Info => "info",
            Self::Skipped => "skipped",
        }
    }
}

/// When the whole run was taken, and on what.
struct Provenance {
    /// RFC 3339, UTC.
    date: String,
    /// `git rev-parse --short HEAD`, or "unknown".
    commit: String,
    /// The work tree differs from the commit.
    dirty: bool,
    machine: Machine,
    quick: bool,
}

impl Provenance {
    fn collect(root: &Path, quick: bool) -> Self {
        let now = time::OffsetDateTime::now_utc();
        let date = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| now.date().to_string());
        let git = |args: &[&str]| Command::new("git").args(args).current_dir(root).output();
        let commit = git(&["rev-parse", "--short", "HEAD"])
            .ok()
            .filter(|o| o.status.success())
            .map_or_else(
                || "unknown".to_owned(),
                |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            );
        // Read-only: `git diff` never writes the index (unlike `git status`).
        let dirty =
            git(&["diff", "--quiet", "HEAD", "--"]).is_ok_and(|o| o.status.code() == Some(1));
        Self {
            date,
            commit,
            dirty,
            machine: Machine::current(),
            quick,
        }
    }

    /// "2026-11-26 17:50 UTC by `cargo xtask bench --quick` at commit
    /// `abc1234` (with uncommitted changes), on AMD EPYC, 2 cores, …".
    fn summary(&self) -> String {
        let when = self.date.get(..16).unwrap_or(&self.date).replace('T', " ");
        let dirty = if self.dirty {
            " (with uncommitted changes)"
        } else {
            ""
        };
        let quick = if self.quick { " --quick" } else { "" };
        format!(
            "{when} UTC by `cargo xtask bench{quick}` at commit `{}`{dirty}, on {}",
            self.commit,
            self.machine.describe()
        )
    }
}

/// Runs the selected scenarios and writes the reports.
pub(crate) fn run(args: &Args, root: &Path) -> anyhow::Result<()> {
    let selected: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|o| o == s.name))
        .collect();
    let target_dir = target_dir(root);
    let is_root = rustix::process::geteuid().is_root();
    if !is_root && selected.iter().any(|s| s.mesh) {
        eprintln!(
            "==> not root: the network-namespace scenarios (mesh-*) are skipped; run as root to measure them"
        );
    }
    // Nothing is built for a scenario that will be skipped.
    let runnable = |s: &&&Scenario| is_root || !s.mesh;

    if is_root && selected.iter().any(|s| s.mesh) {
        // The mesh scenarios capture with iptables in network namespaces.
        crate::test::ensure_network_tools()?;
        eprintln!("==> building braid-control, braid-proxy and braid-cni (release)");
        cargo(
            root,
            &[
                "build",
                "--release",
                "-p",
                "braid-control",
                "-p",
                "braid-proxy",
                "-p",
                "braid-cni",
                "--bins",
            ],
        )?;
    }
    let mut examples: Vec<(&str, &str)> = selected
        .iter()
        .filter(runnable)
        .flat_map(|s| s.examples.iter().copied())
        .collect();
    examples.sort_unstable();
    examples.dedup();
    for (package, example) in examples {
        eprintln!("==> building {package} example {example} (release)");
        cargo(
            root,
            &["build", "--release", "-p", package, "--example", example],
        )?;
    }

    let context = Context {
        quick: args.quick,
        release_dir: target_dir.join("release"),
        root: is_root,
    };
    let provenance = Provenance::collect(root, args.quick);
    let mut rows = Vec::new();
    let mut results = Vec::new();
    // A scenario that fails is reported and fails the run at the end; the
    // others still run.
    let mut failed = Vec::new();
    for scenario in selected {
        eprintln!("==> {}", scenario.name);
        let start = Instant::now();
        let outcome = (scenario.run)(&context);
        let seconds = start.elapsed().as_secs_f64();
        eprintln!("    took {seconds:.1}s");
        match outcome {
            Ok(outcome) => {
                results.push(serde_json::json!({
                    "name": scenario.name,
                    "seconds": seconds,
                    "rows": outcome.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
                    "raw": outcome.raw,
                }));
                rows.extend(outcome.rows);
            }
            Err(e) => {
                eprintln!("    failed: {e:#}");
                results.push(serde_json::json!({
                    "name": scenario.name,
                    "seconds": seconds,
                    "error": format!("{e:#}"),
                }));
                failed.push(format!("{} did not run to the end ({e:#})", scenario.name));
            }
        }
    }
    if rows.is_empty() {
        bail!("no scenario produced a result: {}", failed.join("; "));
    }

    let table = render_table(&rows);
    let report = serde_json::json!({
        "date": provenance.date,
        "commit": provenance.commit,
        "dirty": provenance.dirty,
        "quick": provenance.quick,
        "machine": provenance.machine.to_json(),
        "scenarios": results,
    });
    let out = target_dir.join("bench");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let json_path = out.join("report.json");
    let md_path = out.join("report.md");
    write(&json_path, &(serde_json::to_string_pretty(&report)? + "\n"))?;
    let mut md = format!(
        "# cargo xtask bench\n\nMeasured {}.\n\n{table}",
        provenance.summary()
    );
    for failure in &failed {
        let _ = write!(md, "\n* {failure}\n");
    }
    write(&md_path, &md)?;
    let skipped = rows.iter().any(|r| r.verdict() == Verdict::Skipped);
    if args.update_book && !failed.is_empty() {
        eprintln!("==> not updating the book: not every scenario ran");
    } else if args.update_book && skipped {
        eprintln!("==> not updating the book: some scenarios were skipped (run as root)");
    } else if args.update_book {
        let page = root.join("book/src/performance.md");
        let text = std::fs::read_to_string(&page)
            .with_context(|| format!("cannot read {}", page.display()))?;
        let updated = replace_section(&text, &book_section(&provenance, &table))
            .with_context(|| format!("in {}", page.display()))?;
        write(&page, &updated)?;
        eprintln!("==> updated {}", page.display());
    }

    println!("\nMeasured {}.\n\n{table}", provenance.summary());
    println!(
        "reports: {}\n         {}",
        json_path.display(),
        md_path.display()
    );
    failed.extend(
        rows.iter()
            .filter(|r| r.verdict() == Verdict::Fail)
            .map(|r| {
                format!(
                    "{}: {} misses its target ({})",
                    r.scenario,
                    r.metric,
                    r.target.describe()
                )
            }),
    );
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

/// Markers around the generated part of book/src/performance.md.
const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";

/// What goes between the markers.
fn book_section(provenance: &Provenance, table: &str) -> String {
    format!("Measured {}.\n\n{table}", provenance.summary())
}

/// Replaces what lies between [`BEGIN`] and [`END`] with `section`, keeping
/// the markers and everything outside them.
fn replace_section(page: &str, section: &str) -> anyhow::Result<String> {
    let Some(begin) = page.find(BEGIN) else {
        bail!("no `{BEGIN}` marker");
    };
    let inner = begin + BEGIN.len();
    let Some(end) = page[inner..].find(END).map(|i| inner + i) else {
        bail!("no `{END}` marker after `{BEGIN}`");
    };
    if page[end + END.len()..].contains(BEGIN) {
        bail!("more than one `{BEGIN}` marker");
    }
    Ok(format!(
        "{}\n{}\n{}",
        &page[..inner],
        section.trim(),
        &page[end..]
    ))
}

/// The report as a Markdown table, one row per [`Row`]. "braid − direct"
/// is what Braid adds (added latency; negative for lost throughput).
fn render_table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | metric | direct | braid | ratio | braid − direct | target | result |\n\
         |---|---|---:|---:|---:|---:|---:|---|\n",
    );
    let cell = |v: Option<f64>| v.filter(|v| v.is_finite()).map_or("—".to_owned(), number);
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.metric,
            cell(row.direct),
            cell(row.braid),
            cell(row.ratio()),
            cell(row.added()),
            row.target.describe(),
            row.verdict().as_str(),
        );
    }
    out
}

/// A number with about three significant digits: 2 decimals from 1 up
/// (1 from 100 up), 3 below 1 (sub-millisecond latencies, ratios).
fn number(v: f64) -> String {
    let magnitude = v.abs();
    if magnitude >= 100.0 {
        format!("{v:.1}")
    } else if magnitude >= 1.0 || magnitude == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// `$CARGO_TARGET_DIR`, or `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

/// Runs `command` with its stderr shown and returns its stdout. Kills the
/// child (by its PID) when it runs longer than `limit`.
/// The last line of `out` that is a JSON object: what a measurement
/// program prints as its report (after any progress lines).
fn last_json(out: &str, program: &str) -> anyhow::Result<serde_json::Value> {
    out.lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("{program} printed no JSON"))
        .and_then(|l| serde_json::from_str(l).with_context(|| format!("{program}'s JSON")))
}

fn run_bounded(command: &mut Command, limit: Duration) -> anyhow::Result<String> {
    run_bounded_then(command, limit, |_| ())
}

/// [`run_bounded`], calling `after_kill` with the child's PID once it was
/// killed for running too long (to clean up what it left behind).
fn run_bounded_then(
    command: &mut Command,
    limit: Duration,
    after_kill: impl FnOnce(u32),
) -> anyhow::Result<String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let mut stdout = child.stdout.take().context("no stdout pipe")?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).map(|_| out)
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let pid = child.id();
            let _ = child.kill();
            let _ = child.wait();
            after_kill(pid);
            bail!(
                "{program} ran longer than {}s and was killed",
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = reader
        .join()
        .map_err(|_| anyhow::anyhow!("stdout reader panicked"))?
        .with_context(|| format!("cannot read the output of {program}"))?;
    if !status.success() {
        bail!("{program} failed ({status})");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        vec![
            Row {
                scenario: "hbone-throughput",
                metric: "throughput (Gbit/s)".into(),
                direct: Some(20.0),
                braid: Some(12.5),
                target: Target::AtLeast(0.5),
            },
            Row {
                scenario: "hbone-throughput",
                metric: "throughput (Gbit/s)".into(),
                direct: Some(20.0),
                braid: Some(5.0),
                target: Target::AtLeast(0.5),
            },
            Row {
                scenario: "hbone-throughput",
                metric: "reference".into(),
                direct: Some(20.0),
                braid: None,
                target: Target::Informational,
            },
        ]
    }

    #[test]
    fn table_has_one_line_per_row_with_ratio_difference_and_verdict() {
        let table = render_table(&rows());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert_eq!(
            lines[0],
            "| scenario | metric | direct | braid | ratio | braid − direct | target | result |"
        );
        assert_eq!(
            lines[2],
            "| hbone-throughput | throughput (Gbit/s) | 20.00 | 12.50 | 0.625 | -7.50 | ≥ 0.50 | pass |"
        );
        assert_eq!(
            lines[3],
            "| hbone-throughput | throughput (Gbit/s) | 20.00 | 5.00 | 0.250 | -15.00 | ≥ 0.50 | FAIL |"
        );
        assert_eq!(
            lines[4],
            "| hbone-throughput | reference | 20.00 | — | — | — | — | info |"
        );
        // Every line has the header's number of cells.
        for line in lines {
            assert_eq!(line.matches('|').count(), 9, "{line}");
        }
    }

    fn row(direct: Option<f64>, braid: Option<f64>, target: Target) -> Row {
        Row {
            scenario: "mesh-http-latency",
            metric: "p99 latency (ms)".into(),
            direct,
            braid,
            target,
        }
    }

    #[test]
    fn every_kind_of_target_has_a_verdict() {
        let added = Target::AddedAtMost {
            limit: 0.3,
            unit: "ms",
        };
        assert_eq!(row(Some(0.5), Some(0.75), added).verdict(), Verdict::Pass);
        assert_eq!(row(Some(0.5), Some(0.81), added).verdict(), Verdict::Fail);
        // Braid faster than direct (noise) passes an added-latency target.
        assert_eq!(row(Some(0.5), Some(0.4), added).verdict(), Verdict::Pass);
        assert_eq!(row(None, Some(0.4), added).verdict(), Verdict::Fail);

        let absolute = Target::AbsoluteAtMost {
            limit: 100.0,
            unit: "µs",
        };
        assert_eq!(row(None, Some(99.0), absolute).verdict(), Verdict::Pass);
        assert_eq!(row(None, Some(101.0), absolute).verdict(), Verdict::Fail);
        assert_eq!(row(None, None, absolute).verdict(), Verdict::Fail);
        assert_eq!(
            row(None, Some(f64::INFINITY), absolute).verdict(),
            Verdict::Fail
        );

        assert_eq!(row(None, None, Target::Skipped).verdict(), Verdict::Skipped);
        assert_eq!(
            row(None, None, Target::Informational).verdict(),
            Verdict::Info
        );
    }

    #[test]
    fn targets_render_with_their_unit_and_added_values() {
        let added = row(
            Some(0.116),
            Some(0.444),
            Target::AddedAtMost {
                limit: 0.3,
                unit: "ms",
            },
        );
        let table = render_table(&[
            added.clone(),
            row(
                None,
                Some(11.5),
                Target::AbsoluteAtMost {
                    limit: 12.0,
                    unit: "MiB",
                },
            ),
            row(None, None, Target::Skipped),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[2],
            "| mesh-http-latency | p99 latency (ms) | 0.116 | 0.444 | 3.83 | 0.328 | added ≤ 0.300 ms | FAIL |"
        );
        assert_eq!(
            lines[3],
            "| mesh-http-latency | p99 latency (ms) | — | 11.50 | — | — | ≤ 12.00 MiB | pass |"
        );
        assert_eq!(
            lines[4],
            "| mesh-http-latency | p99 latency (ms) | — | — | — | — | — | skipped |"
        );
        let json = added.to_json();
        assert_eq!(json["target"]["kind"], "added_at_most");
        assert_eq!(json["target"]["unit"], "ms");
        assert_eq!(json["result"], "FAIL");
        assert!((json["added"].as_f64().unwrap() - 0.328).abs() < 1e-9);
    }

    #[test]
    fn numbers_keep_about_three_significant_digits() {
        assert_eq!(number(1849.343), "1849.3");
        assert_eq!(number(19.87), "19.87");
        assert_eq!(number(0.116_223), "0.116");
        assert_eq!(number(-7.5), "-7.50");
        assert_eq!(number(0.0), "0.00");
    }

    #[test]
    fn a_missing_measurement_fails_a_target() {
        let row = Row {
            braid: Some(f64::NAN),
            ..rows().remove(0)
        };
        assert_eq!(row.ratio(), None);
        assert_eq!(row.verdict(), Verdict::Fail);
        assert_eq!(row.to_json()["ratio"], serde_json::Value::Null);
    }

    #[test]
    fn section_between_markers_is_replaced() {
        let page = format!("# Title\n\nintro\n\n{BEGIN}\nold\ntable\n{END}\n\n## After\n\nkept\n");
        let updated = replace_section(&page, "new table\n").expect("replaced");
        assert_eq!(
            updated,
            format!("# Title\n\nintro\n\n{BEGIN}\nnew table\n{END}\n\n## After\n\nkept\n")
        );
        // Replacing again is stable.
        assert_eq!(
            replace_section(&updated, "new table").expect("again"),
            updated
        );
    }

    #[test]
    fn section_markers_must_be_there_once_and_in_order() {
        assert!(replace_section("no markers", "x").is_err());
        assert!(replace_section(&format!("{END}\n{BEGIN}\n"), "x").is_err());
        assert!(replace_section(&format!("{BEGIN}\n"), "x").is_err());
        assert!(replace_section(&format!("{BEGIN}\n{END}\n{BEGIN}\n{END}\n"), "x").is_err());
    }

    #[test]
    fn scenario_names_are_unique() {
        let mut names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len());
    }
}
