//! Finding the network namespace that holds a pod's address, for pods the
//! node agent never saw a CNI ADD for (they ran before Braid was installed,
//! or the agent's state was lost).
//!
//! Container runtimes pin each pod's namespace as a bind mount in
//! `/var/run/netns` (containerd, CRI-O and `ip netns` alike), so those are
//! tried first and give a stable path. Namespaces pinned only by a process
//! are found through `/proc/<pid>/ns/net`; that path lasts as long as the
//! process.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};

use super::{NetNs, NetNsId};

/// Where runtimes bind-mount namespaces (`/run/netns` is usually the same
/// directory; duplicates are skipped by namespace identity).
const PINNED: [&str; 2] = ["/var/run/netns", "/run/netns"];

/// A namespace found by [`find_holding`].
#[derive(Debug)]
pub struct Found {
    /// A path that opens it (a bind mount if there is one).
    pub path: PathBuf,
    /// The namespace, open.
    pub netns: NetNs,
}

/// The first namespace other than the caller's own in which one of
/// `addresses` is a local address, if any.
///
/// Blocking: it reads directories and enters each candidate namespace once
/// (run it off the async workers). A candidate that cannot be opened or
/// entered (a process that just exited) is skipped.
pub fn find_holding(addresses: &[IpAddr]) -> Option<Found> {
    let own = NetNs::current().ok().map(|ns| ns.id());
    let mut seen: HashSet<NetNsId> = own.into_iter().collect();
    candidates()
        .filter_map(|path| NetNs::open(&path).ok().map(|netns| (path, netns)))
        .filter(|(_, netns)| seen.insert(netns.id()))
        .find(|(_, netns)| addresses.iter().any(|&ip| holds(netns, ip)))
        .map(|(path, netns)| Found { path, netns })
}

/// Whether `ip` is a local address in `netns`: binding a socket to it
/// succeeds only there (no `IP_FREEBIND`).
pub fn holds(netns: &NetNs, ip: IpAddr) -> bool {
    match netns.run(|| UdpSocket::bind((ip, 0))) {
        Ok(Ok(_)) => true,
        Ok(Err(error)) if error.kind() == ErrorKind::AddrNotAvailable => false,
        Ok(Err(error)) => {
            tracing::debug!(ns = %netns.id(), %ip, %error, "cannot test an address");
            false
        }
        Err(error) => {
            tracing::debug!(%error, "cannot enter a candidate namespace");
            false
        }
    }
}

/// The pinned namespaces, then every process's.
fn candidates() -> impl Iterator<Item = PathBuf> {
    let pinned = PINNED.iter().flat_map(|dir| entries(Path::new(dir)));
    let processes = entries(Path::new("/proc"))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|path| path.join("ns/net"));
    pinned.chain(processes)
}

/// The entries of `dir`, or none if it cannot be read.
fn entries(dir: &Path) -> impl Iterator<Item = PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
}
