//! `cargo xtask`: the one entry point for Braid's repository automation
//! (the alias lives in `.cargo/config.toml`).
//!
//! Commands:
//!
//! * `cargo xtask bench [--quick] [--only NAME] [--update-book]` — the
//!   benchmarks: ratios against a direct run in the same invocation, written
//!   to `<target-dir>/bench/report.{json,md}` (and the book with
//!   `--update-book`).
//! * `cargo xtask cluster up|down|env|status [--dir DIR]` — a real Kubernetes
//!   control plane on loopback for test tier 4 (see `cluster.rs`).
//! * `cargo xtask codegen [--check]` — write the generated artefacts
//!   (`manifests/crds/*.yaml` from `braid-crd`), or with `--check` fail when
//!   the checked-in copies drifted from the Rust types (what CI runs).
//! * `cargo xtask demo [ARGS...]` — build the release binaries and run
//!   `braidctl demo ARGS...` (a local mesh with live traffic; via sudo).
//! * `cargo xtask test` — the whole test suite exactly as CI runs it.
//! * `cargo xtask quickstart [--keep]` — the README's first command: the
//!   control plane on `examples/`, shown with braidctl.
//!
//! This is a development tool, not part of the product: nothing ships in it,
//! and no other crate depends on it. Each command lives in its own module
//! with an `Args` struct and a `run` function; add a variant to [`Command`]
//! to add one.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};

mod bench;
mod book;
mod cluster;
mod codegen;
mod demo;
mod disk;
mod quickstart;
mod test;

/// Braid repository automation.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One `cargo xtask` subcommand.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the benchmarks and write target/bench/report.{json,md}.
    Bench(bench::Args),
    /// Build (once) and run a real kube-apiserver, controller manager and etcd on loopback.
    Cluster(cluster::Args),
    /// Generate the CRD manifests under manifests/crds/ from the Rust types.
    Codegen(codegen::Args),
    /// Build the release binaries and run `braidctl demo` (with sudo when not root).
    Demo(demo::Args),
    /// Run the control plane on examples/ and show what it serves with braidctl.
    Quickstart(quickstart::Args),
    /// Run the whole test suite as CI does: fmt, clippy, codegen --check, cargo test.
    Test(test::Args),
}

/// Prints errors with their causes (`{:#}`) and exits 1; no backtrace, since
/// these are messages for the developer, not crashes.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = project_root();
    let result = match cli.command {
        Command::Bench(args) => bench::run(&args, &root),
        Command::Cluster(args) => cluster::run(&args, &root),
        Command::Codegen(args) => codegen::run(&args, &root),
        Command::Demo(args) => demo::run(&args, &root),
        Command::Test(args) => test::run(&args, &root),
        Command::Quickstart(args) => quickstart::run(&args, &root),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask lives one level below it.
fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
