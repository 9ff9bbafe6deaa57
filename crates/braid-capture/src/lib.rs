//! Traffic capture for Braid's proxies: network namespaces, redirect rules,
//! `SO_ORIGINAL_DST` and socket marks.
//!
//! What it is:
//!
//! * [`NetNs`]: an owned handle of a network namespace and a way to run a
//!   short closure (or a command) inside it, so a proxy can open listeners and
//!   outbound sockets in a pod's namespace (sidecar init, ambient in-pod).
//! * [`rules`]: the iptables `nat` rules that redirect a pod's TCP to the
//!   proxy (outbound → 15001, inbound → 15006, HBONE 15008 untouched), as
//!   pure `iptables-restore` text plus idempotent install / remove / check.
//! * [`original_dst`], [`set_mark`] and [`PROXY_MARK`]: the two per-socket
//!   halves of REDIRECT capture.
//! * `testing` (feature `testing`): throwaway namespaces joined by a bridge
//!   for tests of every crate that needs real capture.
//!
//! What it is not: no proxying, no policy, no async runtime (everything here
//! is synchronous and short; async callers wrap the std sockets), no nftables
//! backend yet, and no TPROXY rules (only the `IP_TRANSPARENT` socket option).
//!
//! This is the one crate where `unsafe` is allowed (DESIGN §6); today it needs
//! none because `rustix` and `socket2` wrap every syscall we use.

mod command;
mod error;
pub mod netns;
pub mod rules;
mod socket;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::Error;
pub use netns::{ListenOptions, NetNs, NetNsId};
pub use socket::{PROXY_MARK, original_dst, set_mark};
