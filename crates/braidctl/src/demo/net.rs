//! The demo's network: a fabric namespace with a bridge, one namespace per
//! pod plugged into it, and a link from the host (where braid-control
//! listens) into the bridge.
//!
//! Addresses are in 198.19.64.0/24 (inside 198.18.0.0/15, reserved for
//! benchmarking, RFC 2544) and no namespace has a default route, so demo
//! traffic cannot leave the machine. A /24 on the host keeps the host's
//! route narrower than the /16s Braid's own tests add, so both can run at
//! the same time.

use std::{
    net::Ipv4Addr,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::bail;

use super::state::Owned;

/// Every name the demo gives a namespace or a host link starts with this.
pub(crate) const PREFIX: &str = "braid-demo";
/// The fabric namespace holding the bridge.
const FABRIC: &str = "braid-demo-net";
/// The host end of the host link (≤ 15 bytes, IFNAMSIZ).
const HOST_LINK: &str = "braid-demo0";
/// Where `ip netns add` bind-mounts namespaces.
const NETNS_DIR: &str = "/run/netns";
/// The prefix length of every demo address.
pub(crate) const PREFIX_LEN: u8 = 24;
/// The host's address on the bridge (braid-control's xDS listens here).
pub(crate) const HOST: Ipv4Addr = Ipv4Addr::new(198, 19, 64, 254);

/// A pod's namespace.
#[derive(Debug, Clone)]
pub(crate) struct PodNet {
    /// `ip netns` name.
    pub(crate) netns: String,
    /// Its bind mount (for the CNI plugin and `NetNs::open`).
    pub(crate) path: PathBuf,
}

/// Creates the fabric and plugs the host into it.
pub(crate) async fn create_fabric(owned: &mut Owned) -> anyhow::Result<()> {
    owned.record_netns(FABRIC)?;
    ip(&["netns", "add", FABRIC]).await?;
    ip(&["-n", FABRIC, "link", "set", "lo", "up"]).await?;
    ip(&["-n", FABRIC, "link", "add", "br0", "type", "bridge"]).await?;
    ip(&["-n", FABRIC, "link", "set", "br0", "up"]).await?;
    owned.record_link(HOST_LINK)?;
    ip(&[
        "link", "add", HOST_LINK, "type", "veth", "peer", "name", "hostlink", "netns", FABRIC,
    ])
    .await?;
    ip(&[
        "-n", FABRIC, "link", "set", "hostlink", "master", "br0", "up",
    ])
    .await?;
    ip(&[
        "addr",
        "add",
        &format!("{HOST}/{PREFIX_LEN}"),
        "dev",
        HOST_LINK,
    ])
    .await?;
    ip(&["link", "set", HOST_LINK, "up"]).await
}

/// Creates pod `name`'s namespace with `addr` on `eth0`, plugged into the
/// bridge, with a route for 198.18.0.0/15 only.
pub(crate) async fn add_pod(
    owned: &mut Owned,
    name: &str,
    addr: Ipv4Addr,
) -> anyhow::Result<PodNet> {
    let netns = format!("{PREFIX}-{name}");
    owned.record_netns(&netns)?;
    ip(&["netns", "add", &netns]).await?;
    // Interface names only need to be unique inside the fabric.
    let veth: String = format!("v{name}").chars().take(15).collect();
    ip(&[
        "-n", FABRIC, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
    ])
    .await?;
    ip(&["-n", FABRIC, "link", "set", &veth, "master", "br0", "up"]).await?;
    ip(&[
        "-n",
        &netns,
        "addr",
        "add",
        &format!("{addr}/{PREFIX_LEN}"),
        "dev",
        "eth0",
    ])
    .await?;
    ip(&["-n", &netns, "link", "set", "lo", "up"]).await?;
    ip(&["-n", &netns, "link", "set", "eth0", "up"]).await?;
    ip(&["-n", &netns, "route", "add", "198.18.0.0/15", "dev", "eth0"]).await?;
    Ok(PodNet {
        path: PathBuf::from(NETNS_DIR).join(&netns),
        netns,
    })
}

/// Deletes a namespace (its veth goes with it); a missing one is fine.
pub(crate) async fn delete_netns(name: &str) -> anyhow::Result<()> {
    if !PathBuf::from(NETNS_DIR).join(name).exists() {
        return Ok(());
    }
    ip(&["netns", "del", name]).await
}

/// [`delete_netns`] for cleanup before the runtime matters.
pub(crate) fn delete_netns_blocking(name: &str) {
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Deletes a host link (its peer goes with it); a missing one is fine.
pub(crate) fn delete_link_blocking(name: &str) {
    let _ = Command::new("ip")
        .args(["link", "del", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Every namespace named `braid-demo-…`.
pub(crate) fn list_demo_netns() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    text.unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_owned)
        .collect()
}

/// Every host link named `braid-demo…`.
pub(crate) fn list_demo_links() -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link", "show"]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    text.unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n))
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_owned)
        .collect()
}

/// Runs `ip args...`; `Err` with its stderr on failure.
async fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
