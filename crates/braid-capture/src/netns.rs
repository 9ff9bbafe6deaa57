//! Owned handles of network namespaces and running code inside them.
//!
//! Namespaces are a property of a *thread*, not of the process: `setns`
//! moves only the calling thread. [`NetNs::run`] uses that to run a short,
//! synchronous closure inside a pod's namespace from any thread (including a
//! tokio worker) and then moves the thread back. Sockets created in the
//! closure stay in the pod's namespace for their whole life; that is how the
//! ztunnel binds its listeners and outbound sockets inside many pods at once.

use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Output};

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use crate::{Error, command};

mod find;
mod sockets;

pub use find::{Found, find_holding, holds};
pub use sockets::ListenOptions;

/// The calling thread's own namespace; `/proc/self` would name the main
/// thread's, which differs while another thread is inside [`NetNs::run`].
const THREAD_SELF_NET: &str = "/proc/thread-self/ns/net";

/// `NSFS_MAGIC` from `<linux/magic.h>`: the filesystem of namespace files.
const NSFS_MAGIC: rustix::fs::FsWord = 0x6e73_6673;

/// An open network namespace, kept alive by its file descriptor.
///
/// Holding the handle keeps the namespace alive even after `ip netns del` or
/// the pod's last process exits, until every handle and socket in it closes.
#[derive(Debug)]
pub struct NetNs {
    fd: OwnedFd,
    /// Computed once: `run` compares it on every call (hot for per-connection
    /// outbound sockets) and logs print it.
    id: NetNsId,
}

/// A cheap identity of a namespace (device and inode of its nsfs file), for
/// logs and deduplication. Two handles of the same namespace compare equal.
///
/// Displayed like the kernel's `readlink /proc/PID/ns/net`: `net:[4026531840]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetNsId {
    dev: u64,
    ino: u64,
}

/// Moves the thread back to its original namespace when dropped, also while
/// unwinding from a panic in the closure.
struct Restore<'a> {
    original: &'a NetNs,
}

// === impl NetNs ===

impl NetNs {
    /// Opens the namespace at `path`, e.g. `/run/netns/NAME` (an `ip netns`
    /// bind mount) or `/proc/PID/ns/net`.
    pub fn open(path: &Path) -> Result<NetNs, Error> {
        let open_err = |source| Error::Open {
            path: path.to_owned(),
            source,
        };
        let fd = OwnedFd::from(File::open(path).map_err(open_err)?);
        // Reject ordinary files now; otherwise the mistake would only show up
        // as EINVAL from setns, far from the path that caused it.
        let fs = rustix::fs::fstatfs(&fd).map_err(|e| open_err(e.into()))?;
        if fs.f_type != NSFS_MAGIC {
            return Err(Error::NotANamespace {
                path: path.to_owned(),
            });
        }
        Ok(NetNs::from_fd(fd))
    }

    /// Wraps an already open namespace fd, e.g. one received over the node
    /// agent's Unix socket. Its type is checked when it is first entered.
    pub fn from_fd(fd: OwnedFd) -> NetNs {
        let id = NetNsId::of(&fd);
        NetNs { fd, id }
    }

    /// The calling thread's current network namespace.
    pub fn current() -> Result<NetNs, Error> {
        NetNs::open(Path::new(THREAD_SELF_NET))
    }

    /// The namespace's identity (see [`NetNsId`]).
    pub fn id(&self) -> NetNsId {
        self.id
    }

    /// Runs `f` on the calling thread inside this namespace, then moves the
    /// thread back to the namespace it was in.
    ///
    /// `f` must be synchronous and short: the thread is inside the pod's
    /// namespace for exactly as long as `f` runs. This makes it safe to call
    /// from a tokio worker (nothing else can run on the thread meanwhile).
    /// Sockets created by `f` stay in this namespace after `run` returns.
    ///
    /// # Aborts
    ///
    /// If moving back fails the process **aborts**: a thread left in a pod's
    /// namespace would silently open later sockets there, which is
    /// unrecoverable. Moving back into a namespace we hold open only fails
    /// if the kernel is in serious trouble.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T, Error> {
        let original = NetNs::current()?;
        let target = self.id;
        if original.id == target {
            return Ok(f());
        }
        move_into_link_name_space(self.fd.as_fd(), Some(LinkNameSpaceType::Network)).map_err(
            |e| Error::Enter {
                ns: target,
                source: e.into(),
            },
        )?;
        let _restore = Restore {
            original: &original,
        };
        Ok(f())
    }

    /// Runs `cmd` inside this namespace and returns its output (a non-zero
    /// exit is not an error here; inspect `status`).
    ///
    /// The command is spawned from a fresh thread that entered the namespace
    /// (a child inherits its spawning thread's namespace), so the caller's
    /// thread is never moved and never forks.
    pub fn command_output(&self, cmd: &mut Command) -> Result<Output, Error> {
        self.command_output_with_stdin(cmd, None)
    }

    /// Like [`NetNs::command_output`], writing `stdin` to the command's
    /// standard input (e.g. a rule set for `iptables-restore`).
    pub fn command_output_with_stdin(
        &self,
        cmd: &mut Command,
        stdin: Option<&[u8]>,
    ) -> Result<Output, Error> {
        let line = command::describe(cmd);
        let ns = self.id;
        let joined = std::thread::scope(|scope| {
            scope
                .spawn(|| self.run(|| command::output(cmd, stdin)))
                .join()
        });
        match joined {
            Ok(Ok(Ok(output))) => Ok(output),
            Ok(Ok(Err(source))) => Err(Error::Spawn {
                command: line,
                source,
            }),
            Ok(Err(enter)) => Err(enter),
            Err(_panic) => Err(Error::HelperPanicked { command: line, ns }),
        }
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<OwnedFd> for NetNs {
    fn from(fd: OwnedFd) -> NetNs {
        NetNs::from_fd(fd)
    }
}

// === impl NetNsId ===

impl NetNsId {
    /// `fstat` of a valid fd does not fail in practice (only ENOMEM remains);
    /// should it, the id is `net:[0]` and a warning says why, rather than
    /// making every constructor fallible for a case that never happens.
    fn of(fd: &OwnedFd) -> NetNsId {
        match rustix::fs::fstat(fd) {
            // st_dev and st_ino are narrower than u64 on some targets.
            #[allow(clippy::useless_conversion)]
            Ok(st) => NetNsId {
                dev: u64::from(st.st_dev),
                ino: u64::from(st.st_ino),
            },
            Err(err) => {
                tracing::warn!(%err, "cannot stat network namespace handle; its id is net:[0]");
                NetNsId { dev: 0, ino: 0 }
            }
        }
    }
}

impl fmt::Display for NetNsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "net:[{}]", self.ino)
    }
}

// === impl Restore ===

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let back =
            move_into_link_name_space(self.original.fd.as_fd(), Some(LinkNameSpaceType::Network));
        if let Err(err) = back {
            let msg = format!(
                "braid-capture: cannot move thread back to its network namespace ({err}); \
                 aborting because the thread would keep opening sockets in a pod's namespace"
            );
            tracing::error!("{msg}");
            eprintln!("{msg}");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_is_stable_and_displays_like_the_kernel() {
        let a = NetNs::current().expect("current").id();
        let b = NetNs::current().expect("current").id();
        assert_eq!(a, b);
        let link = std::fs::read_link(THREAD_SELF_NET).expect("readlink");
        assert_eq!(a.to_string(), link.to_string_lossy());
    }

    #[test]
    fn open_rejects_non_namespace_files() {
        let err = NetNs::open(Path::new("/proc/self/status")).expect_err("not a netns");
        assert!(matches!(err, Error::NotANamespace { .. }), "{err}");
        let err = NetNs::open(Path::new("/nonexistent/ns")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/ns"), "{err}");
    }

    #[test]
    fn run_in_own_namespace_just_calls() {
        let ns = NetNs::current().expect("current");
        assert_eq!(ns.run(|| 7).expect("run"), 7);
    }
}
