//! `braidctl`: Braid's command-line tool. Today it inspects a running control
//! plane (`status`, `proxy-status`, `config-errors`) and subscribes like a proxy to
//! print what one would receive (`x watch`). Install, mode switching and the
//! demo come with later releases.

use clap::{Parser, Subcommand};

mod debug;
mod demo;
mod install;
mod mode;
mod routes;
mod status;
mod watch;
mod waypoint;

/// Inspect and operate a Braid mesh.
#[derive(Debug, Parser)]
#[command(name = "braidctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every workload's mode from labels (effective), the data plane that
    /// serves it now (actual), its connected proxy, and what a mode switch
    /// still waits for.
    Status(status::Args),
    /// Every connected proxy and, per resource type, the version it ACKed,
    /// whether it is in sync, and its last NACK with the reason.
    ProxyStatus(debug::ProxyStatusArgs),
    /// Configuration documents the control plane rejected (file, document, field, reason).
    ConfigErrors(debug::ConfigErrorsArgs),
    /// Run a local mesh in network namespaces with live traffic and walk
    /// through policy, mode switches and a waypoint's canary route (needs
    /// root; cleans up after itself).
    Demo(demo::Args),
    /// Install Braid into the cluster of your kubeconfig (CRDs, control
    /// plane, node agents, injection webhook) with server-side apply.
    Install(install::Args),
    /// Switch a namespace's data-plane mode (ambient, sidecar or none) and
    /// say what happens to each of its pods.
    Mode(mode::Args),
    /// The HTTP routes proxies hold, or (with --service) which rule a request
    /// would take and where it would go.
    Routes(routes::Args),
    /// Manage waypoints (Gateways of class braid-waypoint): apply, list, delete.
    Waypoint(waypoint::Args),
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
        Command::Status(args) => status::run(args).await,
        Command::ProxyStatus(args) => debug::proxy_status(args).await,
        Command::ConfigErrors(args) => debug::config_errors(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Install(args) => install::run(args).await,
        Command::Mode(args) => mode::run(args).await,
        Command::Routes(args) => routes::run(args).await,
        Command::Waypoint(args) => waypoint::run(args).await,
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

/// How to reach the control plane; shared by every command.
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

    /// The control plane's root certificate (`<its --ca-dir>/root-cert.pem`):
    /// speak TLS and require the control plane's identity. Needed whenever
    /// braid-control runs with a CA.
    #[arg(long, env = "BRAID_CA_ROOT", value_name = "FILE")]
    ca_root: Option<std::path::PathBuf>,

    /// Trust domain of the control plane's identity (with --ca-root).
    #[arg(long, env = "BRAID_TRUST_DOMAIN", default_value = "cluster.local")]
    trust_domain: String,

    /// A file holding the token that `status`, `proxy-status` and
    /// `config-errors` present: the debug API wants one from callers that
    /// are not on the control plane's loopback. A proxy token, or on
    /// Kubernetes a pod's ServiceAccount token with audience `braid`
    /// (`kubectl create token SA --audience braid --bound-object-kind Pod
    /// --bound-object-name POD`). `BRAID_TOKEN` may hold the token itself.
    #[arg(long, env = "BRAID_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<std::path::PathBuf>,
}

/// The debug API client every command uses.
type DebugClient =
    braid_api::braid::admin::v1alpha1::control_plane_debug_client::ControlPlaneDebugClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
    >;

/// Adds `authorization: Bearer <token>` to every call, when there is a token.
#[derive(Clone, Debug)]
struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl ControlPlane {
    /// The address as a URI tonic can dial (TLS, if any, is layered by the connector).
    fn uri(&self) -> String {
        if self.address.contains("://") {
            self.address.clone()
        } else {
            format!("http://{}", self.address)
        }
    }

    /// A hint for errors: a plaintext client cannot tell "not running" from
    /// "speaks TLS" before its first request fails.
    fn tls_hint(&self) -> &'static str {
        if self.ca_root.is_none() {
            "; if braid-control runs with a CA (--ca-dir), pass --ca-root <ca-dir>/root-cert.pem"
        } else {
            ""
        }
    }

    /// The token of `--token-file`, else of `BRAID_TOKEN`, as metadata.
    fn bearer(&self) -> anyhow::Result<Bearer> {
        use anyhow::Context as _;
        let token = match &self.token_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --token-file {}", path.display()))?,
            None => std::env::var("BRAID_TOKEN").unwrap_or_default(),
        };
        let token = token.trim();
        if token.is_empty() {
            return Ok(Bearer(None));
        }
        let value = format!("Bearer {token}")
            .parse()
            .context("the token must be printable ASCII")?;
        Ok(Bearer(Some(value)))
    }

    /// TLS settings when `--ca-root` is given.
    fn tls(&self) -> anyhow::Result<Option<braid_xds::ControlPlaneTls>> {
        use anyhow::Context as _;
        let Some(path) = &self.ca_root else {
            return Ok(None);
        };
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read --ca-root {}", path.display()))?;
        let bundle = braid_identity::TrustBundle::from_pem(pem)
            .with_context(|| format!("--ca-root {}", path.display()))?;
        let trust_domain: braid_identity::TrustDomain =
            self.trust_domain.parse().context("--trust-domain")?;
        let expected = braid_identity::SpiffeId::control_plane(&trust_domain);
        Ok(Some(braid_xds::ControlPlaneTls { bundle, expected }))
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
