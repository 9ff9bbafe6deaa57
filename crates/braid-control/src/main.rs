//! `braid-control`: the Braid control plane binary. Parses flags and runs
//! [`braid_control::ControlPlane`] until Ctrl-C or SIGTERM.

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Braid control plane: serves mesh configuration to proxies over Delta xDS.
#[derive(Debug, Parser)]
#[command(name = "braid-control", version)]
struct Cli {
    #[command(flatten)]
    config: braid_control::Config,

    /// Log format.
    #[arg(long, env = "BRAID_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// Start-up errors already carry their cause in the message: print that
/// once, without a backtrace (they are for operators, not crashes).
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_env("BRAID_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour(&std::io::stdout()));
    if cli.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    let control_plane = braid_control::ControlPlane::start(cli.config).await?;
    wait_for_signal().await?;
    tracing::info!("shutting down");
    control_plane.shutdown().await;
    Ok(())
}

/// Colour only for a person at a terminal: never in a file, a pipe or a
/// log collector, and never with `NO_COLOR` set (<https://no-color.org>).
fn colour(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = term.recv() => {}
    }
    Ok(())
}
