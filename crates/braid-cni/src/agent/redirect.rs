//! The in-pod redirect rules, behind a small trait so the agent's logic is
//! testable without iptables and independent of how `braid-capture` writes
//! the rules.

use std::{net::IpAddr, os::fd::BorrowedFd, path::PathBuf};

/// Which rules a pod gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// In-pod rules for an ambient pod (the ztunnel's sockets are marked).
    Ambient,
    /// A sidecar pod's rules, installed by the plugin instead of an init
    /// container (`--sidecar-rules`).
    Sidecar,
}

impl RuleKind {
    fn config(self) -> braid_capture::rules::RedirectConfig {
        match self {
            RuleKind::Ambient => braid_capture::rules::RedirectConfig::ambient(),
            RuleKind::Sidecar => braid_capture::rules::RedirectConfig::sidecar(),
        }
    }
}

/// Installs, removes and verifies a pod's redirect rules inside its network
/// namespace. Calls block (they enter the namespace and run iptables); the
/// agent runs them on the blocking thread pool.
pub trait Redirect: Send + Sync + 'static {
    /// Installs `kind`'s redirect rules; idempotent (the runtime retries
    /// ADDs).
    fn install(&self, netns: BorrowedFd<'_>, kind: RuleKind) -> Result<(), RedirectError>;

    /// Removes them; no rules is fine.
    fn remove(&self, netns: BorrowedFd<'_>) -> Result<(), RedirectError>;

    /// Fails unless exactly `kind`'s rules are present.
    fn check(&self, netns: BorrowedFd<'_>, kind: RuleKind) -> Result<(), RedirectError>;

    /// A path opening the network namespace (not the agent's own) that
    /// holds one of a pod's `addresses`, for adopting a running pod the
    /// agent never saw an ADD for. Blocking; runs on the blocking pool.
    fn find_netns(&self, addresses: &[IpAddr]) -> Option<PathBuf> {
        braid_capture::netns::find_holding(addresses).map(|found| found.path)
    }
}

/// A redirect operation failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} redirect rules: {reason}")]
pub struct RedirectError {
    /// `install`, `remove` or `check`.
    pub action: &'static str,
    /// What went wrong (from braid-capture).
    pub reason: String,
}

/// The real rules, written by `braid-capture` (`RedirectConfig::ambient()`
/// or `sidecar()`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CaptureRedirect;

// === impl CaptureRedirect ===

impl CaptureRedirect {
    fn with_netns<T>(
        action: &'static str,
        netns: BorrowedFd<'_>,
        f: impl FnOnce(&braid_capture::NetNs) -> Result<T, braid_capture::Error>,
    ) -> Result<T, RedirectError> {
        let failed = |reason: String| RedirectError { action, reason };
        let owned = netns
            .try_clone_to_owned()
            .map_err(|e| failed(format!("cannot duplicate the namespace fd: {e}")))?;
        let ns = braid_capture::NetNs::from_fd(owned);
        f(&ns).map_err(|e| failed(e.to_string()))
    }
}

impl Redirect for CaptureRedirect {
    fn install(&self, netns: BorrowedFd<'_>, kind: RuleKind) -> Result<(), RedirectError> {
        Self::with_netns("install", netns, |ns| {
            braid_capture::rules::install(ns, &kind.config())
        })
    }

    fn remove(&self, netns: BorrowedFd<'_>) -> Result<(), RedirectError> {
        Self::with_netns("remove", netns, braid_capture::rules::remove)
    }

    fn check(&self, netns: BorrowedFd<'_>, kind: RuleKind) -> Result<(), RedirectError> {
        Self::with_netns("check", netns, |ns| {
            braid_capture::rules::check(ns, &kind.config())
        })
    }
}
