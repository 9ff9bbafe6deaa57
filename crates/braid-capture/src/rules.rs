//! Redirect rules: the iptables `nat` rules that send a pod's TCP to the
//! proxy, in chains of our own (all prefixed `BRAID_`).
//!
//! ```text
//! OUTPUT     -p tcp -j BRAID_OUTPUT       pod → anywhere
//!   BRAID_OUTPUT: RETURN if marked, proxy uid, via lo, to 127/8 (::1),
//!                 excluded CIDR or port; else REDIRECT → outbound_port
//! PREROUTING -p tcp -j BRAID_PREROUTING   anywhere → pod
//!   BRAID_PREROUTING: RETURN if marked, from lo, to a proxy port (HBONE
//!                     included) or an excluded port; else REDIRECT → inbound_port
//! ```
//!
//! `nat` chains only see the first packet of a connection, so conntrack keeps
//! established connections as they were when rules change. Sidecar and
//! ambient (in-pod) use the same shape; in ambient the ztunnel's sockets in
//! the pod carry [`PROXY_MARK`] instead of a proxy uid.
//!
//! [`render`] is pure; [`install`], [`remove`] and [`check`] run
//! `iptables-save` / `iptables-restore` (and the `ip6tables-` pair when
//! installed) inside the pod's namespace.

use std::collections::BTreeMap;
use std::fmt;

use crate::netns::NetNs;
use crate::{Error, PROXY_MARK};

mod cidr;
mod tables;
#[cfg(test)]
mod tests;

pub use cidr::Cidr;

/// Every chain we create starts with this; anything else is not ours.
pub const CHAIN_PREFIX: &str = "BRAID_";
/// Our chain for connections arriving at the pod (jumped to from PREROUTING).
pub const INBOUND_CHAIN: &str = "BRAID_PREROUTING";
/// Our chain for connections leaving the pod (jumped to from OUTPUT).
pub const OUTBOUND_CHAIN: &str = "BRAID_OUTPUT";
/// The uid the sidecar proxy runs as by default (Istio's convention).
pub const DEFAULT_PROXY_UID: u32 = 1337;

/// Which proxy the rules capture for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptureMode {
    /// A proxy container in the pod, recognised by mark and uid.
    Sidecar,
    /// The node's ztunnel, with sockets inside the pod recognised by mark.
    Ambient,
}

/// An IP family; each has its own `nat` table and tool pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `iptables-restore` / `iptables-save`.
    Ipv4,
    /// `ip6tables-restore` / `ip6tables-save`.
    Ipv6,
}

/// What to capture and what to leave alone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedirectConfig {
    /// Sidecar or ambient (in-pod).
    pub mode: CaptureMode,
    /// Where outbound TCP is redirected (15001).
    pub outbound_port: u16,
    /// Where inbound plaintext TCP is redirected (15006).
    pub inbound_port: u16,
    /// Inbound HBONE, never redirected (15008).
    pub hbone_port: u16,
    /// Packets with this mark are the proxy's own and are never redirected.
    pub mark: u32,
    /// Sidecar: also skip everything sent by this uid.
    pub proxy_uid: Option<u32>,
    /// Destination ports whose outbound connections go direct.
    pub exclude_outbound_ports: Vec<u16>,
    /// Destination ports whose inbound connections go direct to the app.
    pub exclude_inbound_ports: Vec<u16>,
    /// Destinations whose outbound connections go direct (either family;
    /// each family's rules use its own).
    pub exclude_outbound_cidrs: Vec<Cidr>,
}

/// The `nat`-table state we own: our chains with their rules, and the jumps
/// into them from built-in chains, both as iptables-save lines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Ruleset {
    chains: BTreeMap<String, Vec<String>>,
    jumps: Vec<String>,
}

// === impl RedirectConfig ===

impl RedirectConfig {
    /// Sidecar defaults: ports 15001/15006/15008, [`PROXY_MARK`], and the
    /// proxy's uid [`DEFAULT_PROXY_UID`].
    pub fn sidecar() -> Self {
        RedirectConfig {
            mode: CaptureMode::Sidecar,
            outbound_port: 15001,
            inbound_port: 15006,
            hbone_port: 15008,
            mark: PROXY_MARK,
            proxy_uid: Some(DEFAULT_PROXY_UID),
            exclude_outbound_ports: Vec::new(),
            exclude_inbound_ports: Vec::new(),
            exclude_outbound_cidrs: Vec::new(),
        }
    }

    /// Ambient in-pod defaults: like [`RedirectConfig::sidecar`] without a uid
    /// (the ztunnel runs outside the pod; only its mark identifies it).
    pub fn ambient() -> Self {
        RedirectConfig {
            mode: CaptureMode::Ambient,
            proxy_uid: None,
            ..RedirectConfig::sidecar()
        }
    }
}

// === impl Family ===

impl Family {
    /// Both families, IPv4 first (the one that must work).
    pub const ALL: [Family; 2] = [Family::Ipv4, Family::Ipv6];

    fn loopback(self) -> &'static str {
        match self {
            Family::Ipv4 => "127.0.0.0/8",
            Family::Ipv6 => "::1/128",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        })
    }
}

// === impl Ruleset ===

/// `-p tcp --syn` as iptables-save prints it. Only a connection's opening
/// SYN is redirected: when rules are installed into a running pod's
/// namespace that had no nat rules, the kernel was not tracking its open
/// connections and meets them mid-stream; redirecting their next segment
/// would send it to the proxy's listener and break the connection. A
/// connection first seen mid-stream gets no NAT and keeps flowing where it
/// went.
const SYN_ONLY: &str = "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN";

impl Ruleset {
    /// What `config` should look like in `family`'s nat table, in exactly the
    /// form iptables-save prints, so [`check`] can compare text.
    fn expected(config: &RedirectConfig, family: Family) -> Ruleset {
        let mark = format!("-m mark --mark {:#x}", config.mark);
        let port =
            |chain: &str, port: u16| format!("-A {chain} -p tcp -m tcp --dport {port} -j RETURN");

        let inbound = INBOUND_CHAIN;
        let mut rules_in = vec![
            format!("-A {inbound} {mark} -j RETURN"),
            format!("-A {inbound} -i lo -j RETURN"),
        ];
        let proxy_ports = [config.hbone_port, config.inbound_port, config.outbound_port];
        rules_in.extend(proxy_ports.iter().map(|&p| port(inbound, p)));
        rules_in.extend(
            config
                .exclude_inbound_ports
                .iter()
                .map(|&p| port(inbound, p)),
        );
        rules_in.push(format!(
            "-A {inbound} {SYN_ONLY} -j REDIRECT --to-ports {}",
            config.inbound_port
        ));

        let outbound = OUTBOUND_CHAIN;
        let mut rules_out = vec![format!("-A {outbound} {mark} -j RETURN")];
        if let Some(uid) = config.proxy_uid {
            rules_out.push(format!(
                "-A {outbound} -m owner --uid-owner {uid} -j RETURN"
            ));
        }
        rules_out.push(format!("-A {outbound} -o lo -j RETURN"));
        rules_out.push(format!("-A {outbound} -d {} -j RETURN", family.loopback()));
        let cidrs = config.exclude_outbound_cidrs.iter();
        rules_out.extend(
            cidrs
                .filter(|c| c.family() == family)
                .map(|c| format!("-A {outbound} -d {c} -j RETURN")),
        );
        rules_out.extend(
            config
                .exclude_outbound_ports
                .iter()
                .map(|&p| port(outbound, p)),
        );
        rules_out.push(format!(
            "-A {outbound} {SYN_ONLY} -j REDIRECT --to-ports {}",
            config.outbound_port
        ));

        let mut jumps = vec![
            format!("-A OUTPUT -p tcp -j {outbound}"),
            format!("-A PREROUTING -p tcp -j {inbound}"),
        ];
        jumps.sort();
        Ruleset {
            chains: BTreeMap::from([
                (inbound.to_owned(), rules_in),
                (outbound.to_owned(), rules_out),
            ]),
            jumps,
        }
    }
}

/// The complete `iptables-restore --noflush` input that captures a *fresh*
/// namespace's TCP as `config` says, for `family` (e.g. for an init container).
///
/// Applying it twice duplicates the jump rules; use [`install`] for an
/// idempotent install into a namespace that may already have rules.
pub fn render(config: &RedirectConfig, family: Family) -> String {
    let rules = Ruleset::expected(config, family);
    let mode = match config.mode {
        CaptureMode::Sidecar => "sidecar",
        CaptureMode::Ambient => "ambient",
    };
    let mut out = format!("# braid capture rules, mode {mode}, {family}\n*nat\n");
    for chain in rules.chains.keys() {
        out.push_str(&format!(":{chain} - [0:0]\n"));
    }
    for line in rules.chains.values().flatten().chain(&rules.jumps) {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("COMMIT\n");
    out
}

/// Installs `config`'s rules in `ns`, replacing any previous `BRAID_` rules.
///
/// Idempotent: our chains are recreated from scratch, jumps into them are
/// added only if missing, and stale jumps or `BRAID_` chains (e.g. from an
/// older version) are removed, all in one atomic `iptables-restore` per
/// family. IPv6 is skipped (debug log) when `ip6tables` is not installed.
pub fn install(ns: &NetNs, config: &RedirectConfig) -> Result<(), Error> {
    for family in Family::ALL {
        let Some(current) = tables::save(ns, family)? else {
            continue;
        };
        let input = tables::install_input(&Ruleset::expected(config, family), &current);
        tables::restore(ns, family, &input)?;
        tracing::debug!(ns = %ns.id(), %family, mode = ?config.mode, "installed redirect rules");
    }
    Ok(())
}

/// Removes every jump into a `BRAID_` chain and the chains themselves from
/// `ns`. Removing when nothing is installed is Ok.
pub fn remove(ns: &NetNs) -> Result<(), Error> {
    for family in Family::ALL {
        let Some(current) = tables::save(ns, family)? else {
            continue;
        };
        if let Some(input) = tables::remove_input(&current) {
            tables::restore(ns, family, &input)?;
        }
    }
    Ok(())
}

/// Ok only if `ns` holds exactly `config`'s rules (nothing missing, nothing
/// extra in our chains, jumps present once): the CNI `CHECK` command.
pub fn check(ns: &NetNs, config: &RedirectConfig) -> Result<(), Error> {
    for family in Family::ALL {
        let Some(current) = tables::save(ns, family)? else {
            continue;
        };
        let expected = Ruleset::expected(config, family);
        if let Some(diff) = tables::diff(&expected, &current) {
            return Err(Error::RulesMismatch {
                ns: ns.id(),
                family,
                diff,
            });
        }
    }
    Ok(())
}
