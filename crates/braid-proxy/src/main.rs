//! `braid-proxy`: Braid's data plane binary, one subcommand per composition.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Braid's data plane proxy.
#[derive(Debug, Parser)]
#[command(name = "braid-proxy", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Log format.
    #[arg(long, global = true, env = "BRAID_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,

    /// Threads that run the proxy: 1 for `sidecar` (one thread costs the
    /// least CPU per request at a pod's load), the CPU count for `ztunnel`
    /// and `waypoint`.
    #[arg(long, global = true, env = "BRAID_WORKER_THREADS", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    worker_threads: Option<u16>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The per-node proxy for ambient pods.
    Ztunnel(braid_proxy::ztunnel::Config),
    /// The proxy inside one sidecar-mode pod (HTTP-aware outbound, L4 inbound).
    Sidecar(braid_proxy::sidecar::Config),
    /// Install a sidecar pod's redirect rules in this network namespace.
    Init(braid_proxy::init::Config),
    /// The shared L7 proxy that Services and namespaces name with
    /// `braid.dev/waypoint` (HBONE in, routes and request telemetry, HBONE
    /// out).
    Waypoint(braid_proxy::waypoint::Config),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("BRAID_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour(&std::io::stdout()));
    if cli.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match build_runtime(&cli) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Colour only for a person at a terminal: never in a file, a pipe or a
/// log collector, and never with `NO_COLOR` set (<https://no-color.org>).
fn colour(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The async runtime for `cli`'s subcommand (see `--worker-threads`).
fn build_runtime(cli: &Cli) -> std::io::Result<tokio::runtime::Runtime> {
    let default = match cli.command {
        Command::Sidecar(_) | Command::Init(_) => 1,
        Command::Ztunnel(_) | Command::Waypoint(_) => {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    };
    match cli.worker_threads.map_or(default, usize::from) {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(config) => {
            braid_proxy::init::run(&config)?;
            tracing::info!(
                remove = config.remove,
                check = config.check,
                "redirect rules done"
            );
        }
        Command::Sidecar(config) => {
            let sidecar = braid_proxy::sidecar::Sidecar::start(config).await?;
            wait_for_signal().await?;
            tracing::info!("shutting down");
            sidecar.shutdown().await;
        }
        Command::Ztunnel(config) => {
            let ztunnel = braid_proxy::ztunnel::Ztunnel::start(config).await?;
            wait_for_signal().await?;
            tracing::info!("shutting down");
            ztunnel.shutdown().await;
        }
        Command::Waypoint(config) => {
            let waypoint = braid_proxy::waypoint::Waypoint::start(config).await?;
            wait_for_signal().await?;
            tracing::info!("shutting down");
            waypoint.shutdown().await;
        }
    }
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = term.recv() => {}
    }
    Ok(())
}
