//! Talking to iptables: reading the `nat` table with `iptables-save`,
//! computing `iptables-restore --noflush` inputs, and comparing rule sets.

use std::process::Command;

use super::{CHAIN_PREFIX, Family, Ruleset};
use crate::netns::NetNs;
use crate::{Error, command};

/// Seconds `iptables-restore` waits for the xtables lock (legacy backend; the
/// lock file is shared by all namespaces on the host).
const LOCK_WAIT_SECS: &str = "10";

/// Reads our part of `family`'s nat table in `ns`; `None` when the family's
/// tools are not installed and the family is optional (IPv6).
pub(super) fn save(ns: &NetNs, family: Family) -> Result<Option<Ruleset>, Error> {
    let program = match family {
        Family::Ipv4 => "iptables-save",
        Family::Ipv6 => "ip6tables-save",
    };
    let mut cmd = Command::new(program);
    cmd.args(["-t", "nat"]);
    let output = run(ns, family, &mut cmd, None)?;
    Ok(output.map(|stdout| parse(&stdout)))
}

/// Applies `input` atomically with `iptables-restore --noflush`.
pub(super) fn restore(ns: &NetNs, family: Family, input: &str) -> Result<(), Error> {
    let program = match family {
        Family::Ipv4 => "iptables-restore",
        Family::Ipv6 => "ip6tables-restore",
    };
    let mut cmd = Command::new(program);
    cmd.args(["--noflush", "--wait", LOCK_WAIT_SECS]);
    run(ns, family, &mut cmd, Some(input.as_bytes()))?;
    Ok(())
}

/// Runs an iptables tool in `ns`; returns its stdout, or `None` if it is an
/// IPv6 tool that is not installed.
fn run(
    ns: &NetNs,
    family: Family,
    cmd: &mut Command,
    stdin: Option<&[u8]>,
) -> Result<Option<String>, Error> {
    let line = format!(
        "{} (in network namespace {})",
        command::describe(cmd),
        ns.id()
    );
    let output = match ns.command_output_with_stdin(cmd, stdin) {
        Ok(output) => output,
        Err(Error::Spawn { source, .. }) if family == Family::Ipv6 && is_not_found(&source) => {
            tracing::debug!(command = %line, "ip6tables is not installed; skipping IPv6 rules");
            return Ok(None);
        }
        Err(Error::Spawn { source, .. }) => {
            return Err(command::spawn_error(cmd, "iptables", source));
        }
        Err(other) => return Err(other),
    };
    let output = command::check(line, output)?;
    Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()))
}

fn is_not_found(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::NotFound
}

/// Extracts our chains and the jumps into them from iptables-save output.
pub(super) fn parse(saved: &str) -> Ruleset {
    let mut rules = Ruleset::default();
    for line in saved.lines().map(str::trim) {
        if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or_default();
            if name.starts_with(CHAIN_PREFIX) {
                rules.chains.entry(name.to_owned()).or_default();
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule.split_whitespace().next().unwrap_or_default();
            if chain.starts_with(CHAIN_PREFIX) {
                rules
                    .chains
                    .entry(chain.to_owned())
                    .or_default()
                    .push(line.to_owned());
            } else if jumps_to_ours(rule) {
                rules.jumps.push(line.to_owned());
            }
        }
    }
    rules.jumps.sort();
    rules
}

/// `-j BRAID_X` or `-g BRAID_X` anywhere in a rule of a built-in chain.
fn jumps_to_ours(rule: &str) -> bool {
    let words: Vec<&str> = rule.split_whitespace().collect();
    words
        .windows(2)
        .any(|w| matches!(w[0], "-j" | "-g") && w[1].starts_with(CHAIN_PREFIX))
}

/// The restore input that turns `current` into `expected` in one commit.
pub(super) fn install_input(expected: &Ruleset, current: &Ruleset) -> String {
    let mut out = String::from("*nat\n");
    // Declaring an existing chain under --noflush flushes it: a clean slate.
    for chain in expected.chains.keys() {
        out.push_str(&format!(":{chain} - [0:0]\n"));
    }
    // Stale jumps first, so stale chains are unreferenced when deleted.
    for jump in multiset_minus(&current.jumps, &expected.jumps) {
        out.push_str(&format!("-D {}\n", jump.trim_start_matches("-A ")));
    }
    let stale: Vec<&String> = current
        .chains
        .keys()
        .filter(|c| !expected.chains.contains_key(*c))
        .collect();
    for chain in &stale {
        out.push_str(&format!("-F {chain}\n"));
    }
    for chain in &stale {
        out.push_str(&format!("-X {chain}\n"));
    }
    for line in expected.chains.values().flatten() {
        out.push_str(&format!("{line}\n"));
    }
    for jump in multiset_minus(&expected.jumps, &current.jumps) {
        out.push_str(&format!("{jump}\n"));
    }
    out.push_str("COMMIT\n");
    out
}

/// The restore input that removes everything of ours; `None` if there is
/// nothing to remove.
pub(super) fn remove_input(current: &Ruleset) -> Option<String> {
    if current.chains.is_empty() && current.jumps.is_empty() {
        return None;
    }
    let mut out = String::from("*nat\n");
    for jump in &current.jumps {
        out.push_str(&format!("-D {}\n", jump.trim_start_matches("-A ")));
    }
    for chain in current.chains.keys() {
        out.push_str(&format!("-F {chain}\n"));
    }
    for chain in current.chains.keys() {
        out.push_str(&format!("-X {chain}\n"));
    }
    out.push_str("COMMIT\n");
    Some(out)
}

/// A human-readable difference, or `None` if the rule sets are identical.
pub(super) fn diff(expected: &Ruleset, current: &Ruleset) -> Option<String> {
    if expected == current {
        return None;
    }
    let lines = |r: &Ruleset| -> Vec<String> {
        let decls = r.chains.keys().map(|c| format!(":{c}"));
        decls
            .chain(r.chains.values().flatten().cloned())
            .chain(r.jumps.iter().cloned())
            .collect()
    };
    let (want, have) = (lines(expected), lines(current));
    let missing = multiset_minus(&want, &have);
    let extra = multiset_minus(&have, &want);
    if missing.is_empty() && extra.is_empty() {
        return Some("the rules are present but in a different order".to_owned());
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing [{}]", join(&missing)));
    }
    if !extra.is_empty() {
        parts.push(format!("unexpected [{}]", join(&extra)));
    }
    Some(parts.join(", "))
}

fn join(lines: &[&String]) -> String {
    lines
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Items of `a` not matched one-for-one by items of `b` (duplicates count).
fn multiset_minus<'a>(a: &'a [String], b: &[String]) -> Vec<&'a String> {
    let mut unmatched: Vec<&String> = b.iter().collect();
    a.iter()
        .filter(|item| match unmatched.iter().position(|u| u == item) {
            Some(i) => {
                unmatched.swap_remove(i);
                false
            }
            None => true,
        })
        .collect()
}
