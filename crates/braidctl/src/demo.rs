//! `braidctl demo`: a local Braid mesh in network namespaces, with live
//! traffic, and a narrated walk-through of what the mesh does.
//!
//! The demo builds two logical nodes (one `braid-proxy ztunnel` and one
//! `braid-cni agent` each), a `braid-control` reading a YAML directory the
//! demo writes, and three namespaces in three modes: `shop` (sidecar),
//! `inventory` (ambient) and `legacy` (not meshed). Pods are network
//! namespaces on one bridge; their HTTP servers and the traffic generator run
//! inside this process (sockets opened in the pods' namespaces), so every
//! number on screen comes from real requests through the real proxies.
//! The last step puts a waypoint (`braid-proxy waypoint`) in front of a
//! two-version Service in `inventory` and shows its route's canary split
//! and header match request by request (see [`waypoint`]).
//!
//! Everything it creates is named `braid-demo-…` and recorded in a state
//! file, so Ctrl-C, the end of the run, or the next start after a crash
//! removes it (see [`state`]).

use std::{path::PathBuf, process::ExitCode, time::Duration};

mod canary;
mod http;
mod mesh;
mod metrics;
mod net;
mod preflight;
mod process;
mod state;
mod topology;
mod traffic;
mod view;
mod walk;
mod waypoint;

/// Options of `braidctl demo`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Seconds the walk-through takes once traffic flows (the steps are
    /// spaced to fit; setting the mesh up comes on top, ~10 s).
    #[arg(long, default_value = "90", value_name = "SECS", value_parser = clap::value_parser!(u64).range(30..=3600))]
    duration: u64,

    /// Print plain lines (a table every few seconds and a summary per step)
    /// instead of redrawing the terminal; for scripts and CI.
    #[arg(long)]
    no_tui: bool,

    /// After the walk-through, leave the mesh running (with instructions to
    /// enter a pod and call a service) until Ctrl-C.
    #[arg(long)]
    keep: bool,

    /// Where braid-control, braid-proxy and braid-cni are (default: next
    /// to this braidctl).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

/// Runs the demo; cleans up whatever happens.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let bins = preflight::check(args.bin_dir.as_deref())?;
    let mut owned = state::Owned::take_over()?;
    let result = run_mesh(&args, &bins, &mut owned).await;
    let cleanup = owned.clean_up().await;
    match (&result, cleanup) {
        (_, Ok(())) => println!("demo: cleaned up (namespaces, links, processes, files)"),
        (_, Err(e)) => eprintln!(
            "demo: cleanup was incomplete: {e:#}\n  run `braidctl demo --duration 30 --no-tui` again to finish it"
        ),
    }
    result
}

async fn run_mesh(
    args: &Args,
    bins: &preflight::Binaries,
    owned: &mut state::Owned,
) -> anyhow::Result<ExitCode> {
    let interrupted = interrupted();
    tokio::pin!(interrupted);
    let plain = args.no_tui || !std::io::IsTerminal::is_terminal(&std::io::stdout());
    println!("demo: building a local mesh in network namespaces (braid-demo-*) ...");
    let mut mesh = tokio::select! {
        mesh = mesh::Mesh::start(bins, owned) => mesh?,
        () = &mut interrupted => {
            println!("demo: interrupted while starting; cleaning up");
            return Ok(ExitCode::FAILURE);
        }
    };
    let walk = walk::Walk::new(Duration::from_secs(args.duration), plain, args.keep);
    tokio::select! {
        outcome = walk.run(&mut mesh, owned) => {
            let ok = outcome?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        () = &mut interrupted => {
            println!("\ndemo: interrupted; cleaning up");
            Ok(if args.keep { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM (or at once if they cannot be watched,
/// which ends the demo instead of leaving it impossible to stop cleanly).
async fn interrupted() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
