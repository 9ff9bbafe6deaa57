//! `braid-proxy init`: installs (or removes, or checks) a sidecar pod's
//! redirect rules in the network namespace it runs in — what an init
//! container does before the app starts, when the CNI plugin does not.

use braid_capture::{
    NetNs,
    rules::{self, Cidr, RedirectConfig},
};
use serde::Serialize;

/// Flags of `braid-proxy init`.
#[derive(Clone, Debug, clap::Args, Serialize)]
pub struct Config {
    /// Inbound ports left uncaptured (comma-separated), e.g. a health port
    /// probed from outside the mesh.
    #[arg(long, env = "BRAID_EXCLUDE_INBOUND_PORTS", value_delimiter = ',')]
    pub exclude_inbound_ports: Vec<u16>,

    /// Outbound destination ports left uncaptured (comma-separated).
    #[arg(long, env = "BRAID_EXCLUDE_OUTBOUND_PORTS", value_delimiter = ',')]
    pub exclude_outbound_ports: Vec<u16>,

    /// Outbound destination CIDRs left uncaptured (comma-separated),
    /// e.g. `169.254.169.254/32`.
    #[arg(long, env = "BRAID_EXCLUDE_OUTBOUND_CIDRS", value_delimiter = ',')]
    pub exclude_outbound_cidrs: Vec<String>,

    /// The proxy's user id: its own connections are never captured (besides
    /// its socket mark).
    #[arg(long, env = "BRAID_PROXY_UID", default_value_t = rules::DEFAULT_PROXY_UID)]
    pub proxy_uid: u32,

    /// Remove the rules instead (idempotent).
    #[arg(long, conflicts_with = "check")]
    pub remove: bool,

    /// Only check that exactly these rules are installed.
    #[arg(long)]
    pub check: bool,
}

/// Why `init` failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A `--exclude-outbound-cidrs` entry does not parse.
    #[error("--exclude-outbound-cidrs {text:?}: {reason}")]
    Cidr {
        /// The entry.
        text: String,
        /// Why it is wrong.
        reason: String,
    },
    /// Installing, removing or checking failed.
    #[error(transparent)]
    Capture(#[from] braid_capture::Error),
}

/// Applies `config` to this process's network namespace.
pub fn run(config: &Config) -> Result<(), InitError> {
    let mut redirect = RedirectConfig::sidecar();
    redirect.proxy_uid = Some(config.proxy_uid);
    redirect.exclude_inbound_ports = config.exclude_inbound_ports.clone();
    redirect.exclude_outbound_ports = config.exclude_outbound_ports.clone();
    redirect.exclude_outbound_cidrs = config
        .exclude_outbound_cidrs
        .iter()
        .map(|text| {
            text.parse::<Cidr>().map_err(|e| InitError::Cidr {
                text: text.clone(),
                reason: e.to_string(),
            })
        })
        .collect::<Result<_, _>>()?;
    let netns = NetNs::current()?;
    if config.remove {
        rules::remove(&netns)?;
    } else if config.check {
        rules::check(&netns, &redirect)?;
    } else {
        rules::install(&netns, &redirect)?;
    }
    Ok(())
}
