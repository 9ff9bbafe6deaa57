//! `braidctl`: Braid's command-line tool. Today it inspects a running control
//! plane (`proxy-status`, `config-errors`) and subscribes like a proxy to
//! print what one would receive (`x watch`). Install, mode switching and the
//! demo come with later releases.

use clap::{Parser, Subcommand};

mod debug;
mod watch;

/// Inspect and operate a Braid mesh.
#[derive(Debug, Parser)]
#[command(name = "braidctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every connected proxy and, per resource type, the version it ACKed,
    /// whether it is in sync, and its last NACK with the reason.
    ProxyStatus(debug::ProxyStatusArgs),
    /// Configuration documents the control plane rejected (file, document, field, reason).
    ConfigErrors(debug::ConfigErrorsArgs),
    /// Experimental and debugging commands.
    #[command(subcommand)]
    X(Experimental),
}

#[derive(Debug, Subcommand)]
enum Experimental {
    /// Subscribe to one resource type like a proxy and print each delta as JSON lines.
    Watch(watch::Args),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::ProxyStatus(args) => debug::proxy_status(args).await,
        Command::ConfigErrors(args) => debug::config_errors(args).await,
        Command::X(Experimental::Watch(args)) => watch::run(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The `--control-plane` flag shared by every command.
#[derive(Debug, Clone, clap::Args)]
struct ControlPlane {
    /// Address of braid-control's xDS/debug port (host:port or http://host:port).
    #[arg(
        long = "control-plane",
        env = "BRAID_CONTROL_PLANE",
        default_value = "127.0.0.1:15010",
        value_name = "ADDR"
    )]
    address: String,
}

impl ControlPlane {
    /// The address as a URI tonic can dial.
    fn uri(&self) -> String {
        if self.address.contains("://") {
            self.address.clone()
        } else {
            format!("http://{}", self.address)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
