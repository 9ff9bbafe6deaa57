//! The one error type of this crate.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;

use crate::netns::NetNsId;

/// What went wrong while entering a namespace, opening a socket in it or
/// managing its redirect rules.
///
/// Every message names the thing that failed (a namespace path, a command and
/// its stderr, a chain) and, where there is one, what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A namespace file could not be opened or inspected.
    #[error(
        "cannot open network namespace {path}: {source}; check that the pod (or `ip netns`) \
         namespace still exists and that we run as root"
    )]
    Open {
        /// The path that was opened, e.g. `/proc/42/ns/net`.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// The file exists but is not a namespace (not on `nsfs`).
    #[error(
        "{path} is not a namespace file; pass /proc/PID/ns/net or a bind mount under /run/netns"
    )]
    NotANamespace {
        /// The offending path.
        path: PathBuf,
    },

    /// `setns(CLONE_NEWNET)` into the namespace failed.
    #[error(
        "cannot enter network namespace {ns}: {source}; entering needs CAP_SYS_ADMIN and a \
         network (not another kind of) namespace"
    )]
    Enter {
        /// The namespace we tried to enter.
        ns: NetNsId,
        /// The underlying error.
        source: io::Error,
    },

    /// A socket operation inside a namespace failed.
    #[error("cannot {op} tcp socket for {addr} in network namespace {ns}: {source}")]
    Socket {
        /// The failing step: "create", "bind", "listen", "set the mark on", ...
        op: &'static str,
        /// The address the socket was meant for.
        addr: SocketAddr,
        /// The namespace it was created in.
        ns: NetNsId,
        /// The underlying error.
        source: io::Error,
    },

    /// A required program is not installed.
    #[error("{program} was not found on PATH; install the {package} package")]
    MissingProgram {
        /// The program name, e.g. `iptables-restore`.
        program: String,
        /// The distribution package that ships it.
        package: &'static str,
    },

    /// A program could not be started (other than "not found").
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The underlying error.
        source: io::Error,
    },

    /// A program ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, including the namespace it ran in.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },

    /// The helper thread that ran a command inside a namespace panicked.
    #[error("helper thread running `{command}` in network namespace {ns} panicked")]
    HelperPanicked {
        /// The command line.
        command: String,
        /// The namespace.
        ns: NetNsId,
    },

    /// The installed redirect rules differ from the expected ones.
    #[error(
        "{family} redirect rules in network namespace {ns} are not the expected ones: {diff}; \
         run install() again (it replaces our BRAID_ chains)"
    )]
    RulesMismatch {
        /// The namespace that was checked.
        ns: NetNsId,
        /// "ipv4" or "ipv6".
        family: crate::rules::Family,
        /// Missing and unexpected rule lines.
        diff: String,
    },

    /// A CIDR string did not parse.
    #[error("invalid CIDR {text:?}: {reason}")]
    InvalidCidr {
        /// The text as given.
        text: String,
        /// Why it was rejected.
        reason: &'static str,
    },
}
