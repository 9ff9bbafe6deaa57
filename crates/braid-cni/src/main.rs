//! `braid-cni`: the CNI plugin when `CNI_COMMAND` is set (the container
//! runtime calls it), otherwise the node agent (`braid-cni agent`).

use std::{io::Read as _, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use braid_cni::{
    agent::{Agent, AgentConfig, CaptureRedirect, FixedModes, ModeSource, XdsModes},
    chain, plugin,
};
use clap::Parser;

/// Braid's CNI node agent.
#[derive(Debug, Parser)]
#[command(name = "braid-cni", version)]
enum Cli {
    /// Run the node agent: serve the plugin socket and feed the ztunnel.
    Agent(Box<AgentArgs>),
    /// Add braid-cni as the last plugin of the node's CNI configuration
    /// (the first file in the directory, as the runtime picks it).
    Install(ChainArgs),
    /// Take braid-cni out of the node's CNI configuration.
    Uninstall(ChainArgs),
}

#[derive(Debug, clap::Args)]
struct ChainArgs {
    /// The runtime's CNI configuration directory.
    #[arg(long, default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// The agent's socket, as the plugin (on the host) reaches it.
    #[arg(long, default_value = "/var/run/braid/cni.sock")]
    agent_socket: PathBuf,
}

#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// This node's name.
    #[arg(long, env = "BRAID_NODE")]
    node: String,
    /// Socket the CNI plugin talks to.
    #[arg(long, default_value = "/var/run/braid/cni.sock")]
    socket: PathBuf,
    /// The ztunnel's hand-off socket.
    #[arg(long, default_value = "/var/run/braid/ztunnel.sock")]
    ztunnel_socket: PathBuf,
    /// Where the agent records the pods of this node (captured or not), so
    /// a restarted agent replays them and can capture them later.
    #[arg(long, default_value = "/var/run/braid/cni-state")]
    state_dir: PathBuf,
    /// braid-control's xDS address.
    #[arg(
        long,
        env = "BRAID_CONTROL_PLANE",
        default_value = "http://127.0.0.1:15010"
    )]
    control_plane: String,
    /// The control plane's root certificate: speak TLS and require its identity.
    #[arg(long, env = "BRAID_CA_ROOT", value_name = "FILE")]
    ca_root: Option<PathBuf>,
    /// Trust domain of the control plane's identity (with --ca-root).
    #[arg(long, env = "BRAID_TRUST_DOMAIN", default_value = "cluster.local")]
    trust_domain: String,
    /// The node's token (a proxy token, or on Kubernetes the projected
    /// ServiceAccount token), presented on the xDS stream.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Seconds an ADD waits for the control plane to know the pod.
    #[arg(long, default_value = "10")]
    mode_wait_secs: u64,
    /// Install the sidecar redirect rules in pods with a braid-proxy sidecar
    /// (so they need no `braid-proxy init` container).
    #[arg(long)]
    sidecar_rules: bool,
    /// Milliseconds a pod whose mode left ambient stays captured before it
    /// is released, so every proxy has stopped tunnelling to it first.
    #[arg(long, default_value = "2000", value_name = "MS")]
    release_grace_ms: u64,
    /// Keep braid-cni last in this CNI configuration directory while the
    /// agent runs (checked every 10 s, in case the network plugin rewrote
    /// its file), and take it out when the agent stops.
    #[arg(long, value_name = "DIR")]
    cni_conf_dir: Option<PathBuf>,
    /// With --cni-conf-dir: leave braid-cni in the chain when the agent
    /// stops. New pods then fail to start until an agent is back (instead
    /// of starting uncaptured, to be adopted when it is).
    #[arg(long, requires = "cni_conf_dir")]
    keep_chain_on_exit: bool,
    /// Tests only: take modes from a JSON map {"ns/pod": "ambient"} instead of xDS.
    #[arg(long, hide = true, value_name = "FILE")]
    mode_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    if std::env::var_os("CNI_COMMAND").is_some() {
        return run_plugin();
    }
    init_logging("info");
    let outcome = match Cli::parse() {
        Cli::Agent(args) => run_agent(args),
        Cli::Install(args) => chain::install(&args.cni_conf_dir, &args.agent_socket)
            .map(|installed| match installed {
                chain::Installed::Added(path) => {
                    tracing::info!(file = %path.display(), "braid-cni added to the CNI chain");
                }
                chain::Installed::Present(path) => {
                    tracing::info!(file = %path.display(), "braid-cni already last in the CNI chain");
                }
            })
            .map_err(anyhow::Error::from),
        Cli::Uninstall(args) => chain::remove(&args.cni_conf_dir)
            .map(|removed| tracing::info!(removed, "braid-cni taken out of the CNI chain"))
            .map_err(anyhow::Error::from),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The plugin: stdout carries only the result or the error object.
fn run_plugin() -> ExitCode {
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    // Quiet by default: the runtime keeps a plugin's stderr only on failure.
    init_logging(plugin::log_level(&stdin).as_deref().unwrap_or("warn"));
    let env = plugin::CniEnv::from_process();
    let outcome = match read {
        Ok(_) => plugin::run(&env, &stdin),
        Err(e) => Err(plugin::CniError::stdin(&e)),
    };
    let (output, code) = match outcome {
        Ok(result) => (result, ExitCode::SUCCESS),
        Err(error) => {
            tracing::error!("{} {}: {error}", env.command, env.container_id);
            let version = plugin::requested_version(&stdin);
            (Some(error.to_json(&version)), ExitCode::FAILURE)
        }
    };
    if let Some(json) = output {
        println!("{json}");
    }
    code
}

#[tokio::main]
async fn run_agent(args: Box<AgentArgs>) -> anyhow::Result<()> {
    let modes: Arc<dyn ModeSource> = match &args.mode_file {
        Some(path) => Arc::new(FixedModes::from_file(path)?),
        None => {
            let tls = control_plane_tls(&args)?;
            let token = match &args.token_file {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("--token-file {}", path.display()))?
                        .trim()
                        .to_string(),
                ),
                None => None,
            };
            Arc::new(XdsModes::start(
                &args.control_plane,
                &args.node,
                tls,
                token,
            )?)
        }
    };
    let config = AgentConfig {
        socket: args.socket,
        ztunnel_socket: args.ztunnel_socket,
        state_dir: args.state_dir,
        mode_wait: Duration::from_secs(args.mode_wait_secs),
        sidecar_rules: args.sidecar_rules,
        release_grace: Duration::from_millis(args.release_grace_ms),
    };
    let chain_socket = config.socket.clone();
    let agent = Agent::new(config, modes, Arc::new(CaptureRedirect))?;
    tracing::info!(node = %args.node, "braid-cni agent starting");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot handle SIGTERM")?;
    // Joined as `run` binds the socket; an ADD in between fails with
    // "agent unreachable", which the runtime retries.
    let chain = args
        .cni_conf_dir
        .clone()
        .map(|dir| tokio::spawn(keep_in_chain(dir, chain_socket)));
    let served = tokio::select! {
        served = agent.run() => served,
        _ = tokio::signal::ctrl_c() => { tracing::info!("interrupted; stopping"); Ok(()) }
        _ = term.recv() => { tracing::info!("terminated; stopping"); Ok(()) }
    };
    if let Some(task) = chain {
        task.abort();
    }
    if let Some(dir) = &args.cni_conf_dir
        && !args.keep_chain_on_exit
    {
        match chain::remove(dir) {
            Ok(removed) => tracing::info!(removed, "braid-cni taken out of the CNI chain"),
            Err(error) => tracing::warn!(%error, "cannot take braid-cni out of the CNI chain"),
        }
    }
    Ok(served?)
}

/// How often the agent checks that it is still in the CNI chain.
const CHAIN_CHECK: Duration = Duration::from_secs(10);

/// Keeps braid-cni last in `dir`'s primary configuration, forever.
async fn keep_in_chain(dir: PathBuf, socket: PathBuf) {
    let mut failing = false;
    loop {
        match chain::install(&dir, &socket) {
            Ok(chain::Installed::Added(path)) => {
                tracing::info!(file = %path.display(), "braid-cni added to the CNI chain");
                failing = false;
            }
            Ok(chain::Installed::Present(_)) => failing = false,
            // Logged once per streak: a node without a network plugin yet
            // would log every 10 s otherwise.
            Err(error) if !failing => {
                tracing::warn!(%error, "cannot put braid-cni in the CNI chain; retrying");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(CHAIN_CHECK).await;
    }
}

fn control_plane_tls(args: &AgentArgs) -> anyhow::Result<Option<braid_xds::ControlPlaneTls>> {
    let Some(path) = &args.ca_root else {
        return Ok(None);
    };
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read --ca-root {}", path.display()))?;
    let bundle = braid_identity::TrustBundle::from_pem(pem)
        .with_context(|| format!("--ca-root {}", path.display()))?;
    let trust_domain: braid_identity::TrustDomain =
        args.trust_domain.parse().context("--trust-domain")?;
    let expected = braid_identity::SpiffeId::control_plane(&trust_domain);
    Ok(Some(braid_xds::ControlPlaneTls { bundle, expected }))
}

/// Logs go to stderr: in plugin mode stdout belongs to the runtime.
fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BRAID_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(&std::io::stderr()))
        .init();
}

/// Colour only for a person at a terminal: never in a file, a pipe or a
/// log collector, and never with `NO_COLOR` set (<https://no-color.org>).
fn colour(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn flags_are_consistent() {
        super::Cli::command().debug_assert();
    }
}
