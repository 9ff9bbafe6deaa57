//! A throwaway pod network for tests (feature `testing`).
//!
//! [`TestNet`] is a "fabric" namespace holding a bridge; each
//! [`TestNet::add_pod`] is a namespace with `eth0` plugged into that bridge.
//! Nothing links the fabric to the host and no namespace has a default route,
//! so test traffic (198.18.0.0/15, DESIGN §7) cannot leave. Dropping the
//! `TestNet` deletes every namespace it created.
//!
//! ```no_run
//! # fn main() -> Result<(), braid_capture::Error> {
//! use braid_capture::testing::{TestNet, require_root};
//! if !require_root() {
//!     return Ok(());
//! }
//! let net = TestNet::new("doc")?;
//! let a = net.add_pod("a", "198.18.0.2".parse().expect("ip"))?;
//! let out = a.exec("ip", ["addr", "show", "eth0"])?;
//! assert!(out.status.success());
//! # Ok(())
//! # }
//! ```

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Error, NetNs, command};

/// Where `ip netns add` bind-mounts namespaces (iproute2's default).
const NETNS_DIR: &str = "/var/run/netns";

/// Makes names unique across `TestNet`s of one process (tests run in
/// parallel threads); the pid separates concurrent test binaries.
static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// A bridge in its own namespace, and the pods attached to it.
#[derive(Debug)]
pub struct TestNet {
    name: String,
    /// Every namespace created so far, deleted on drop (pods first).
    created: Mutex<Vec<String>>,
    next_veth: AtomicU32,
}

/// A pod: a namespace with `lo` and `eth0` (its IP/16) and a route for
/// 198.18.0.0/15 via `eth0`, nothing else.
#[derive(Debug, Clone)]
pub struct TestPod {
    /// The name given to [`TestNet::add_pod`].
    pub name: String,
    /// The pod's IP on `eth0`.
    pub ip: Ipv4Addr,
    /// The `ip netns` name of the pod's namespace.
    pub netns_name: String,
    /// The namespace's bind mount, for [`NetNs::open`].
    pub netns_path: PathBuf,
}

// === impl TestNet ===

impl TestNet {
    /// Creates the fabric namespace `bt-<prefix>-<pid>-<n>` with bridge `br0`.
    pub fn new(prefix: &str) -> Result<TestNet, Error> {
        let n = NEXT_NET.fetch_add(1, Ordering::Relaxed);
        let name = format!("bt-{prefix}-{}-{n}", std::process::id());
        ip(["netns", "add", &name])?;
        // From here on Drop cleans up, even if a later step fails.
        let net = TestNet {
            name: name.clone(),
            created: Mutex::new(vec![name.clone()]),
            next_veth: AtomicU32::new(0),
        };
        ip(["-n", &name, "link", "set", "lo", "up"])?;
        ip(["-n", &name, "link", "add", "br0", "type", "bridge"])?;
        ip(["-n", &name, "link", "set", "br0", "up"])?;
        Ok(net)
    }

    /// The fabric namespace's `ip netns` name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Plugs the host (this process's namespace) into the bridge with
    /// `ip_addr`/16, so processes on the host can serve pods (a control
    /// plane a sidecar dials). The pair goes away with the fabric.
    ///
    /// # Panics
    ///
    /// If `ip` is outside 198.18.0.0/15.
    pub fn add_host_link(&self, ip_addr: Ipv4Addr) -> Result<(), Error> {
        let [a, b, ..] = ip_addr.octets();
        assert!(
            a == 198 && (b == 18 || b == 19),
            "host link: {ip_addr} is outside 198.18.0.0/15"
        );
        // Host interface names share one namespace with everything else:
        // make them unique per fabric, under IFNAMSIZ.
        let n = NEXT_NET.fetch_add(1, Ordering::Relaxed);
        let host = format!("bh{}x{n}", std::process::id() % 100_000);
        let fabric = self.name.as_str();
        ip([
            "link", "add", &host, "type", "veth", "peer", "name", "hostlink", "netns", fabric,
        ])?;
        ip([
            "-n", fabric, "link", "set", "hostlink", "master", "br0", "up",
        ])?;
        ip(["addr", "add", &format!("{ip_addr}/16"), "dev", &host])?;
        ip(["link", "set", &host, "up"])?;
        Ok(())
    }

    /// Adds pod `name` with `ip`/16 on `eth0`, plugged into the bridge.
    ///
    /// # Panics
    ///
    /// If `ip` is outside 198.18.0.0/15: tests must not use routable space.
    pub fn add_pod(&self, name: &str, ip_addr: Ipv4Addr) -> Result<TestPod, Error> {
        let [a, b, ..] = ip_addr.octets();
        assert!(
            a == 198 && (b == 18 || b == 19),
            "test pod {name}: {ip_addr} is outside 198.18.0.0/15"
        );
        let ns = format!("{}-{name}", self.name);
        ip(["netns", "add", &ns])?;
        if let Ok(mut created) = self.created.lock() {
            created.push(ns.clone());
        }
        // Interface names only need to be unique inside the fabric, which
        // keeps them well under IFNAMSIZ whatever the pod is called.
        let veth = format!("veth{}", self.next_veth.fetch_add(1, Ordering::Relaxed));
        let fabric = self.name.as_str();
        ip([
            "-n", fabric, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ])?;
        ip(["-n", fabric, "link", "set", &veth, "master", "br0", "up"])?;
        ip([
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{ip_addr}/16"),
            "dev",
            "eth0",
        ])?;
        ip(["-n", &ns, "link", "set", "lo", "up"])?;
        ip(["-n", &ns, "link", "set", "eth0", "up"])?;
        // Covers pods in both /16s and the service VIPs (198.19.x.y) that
        // proxies translate; there is deliberately no default route.
        ip(["-n", &ns, "route", "add", "198.18.0.0/15", "dev", "eth0"])?;
        Ok(TestPod {
            name: name.to_owned(),
            ip: ip_addr,
            netns_path: PathBuf::from(NETNS_DIR).join(&ns),
            netns_name: ns,
        })
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let created = match self.created.lock() {
            Ok(mut created) => std::mem::take(&mut *created),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        // Pods before the fabric; deleting a pod's namespace removes its veth.
        for ns in created.iter().rev() {
            if let Err(err) = ip(["netns", "del", ns]) {
                tracing::warn!(%err, netns = %ns, "cannot delete test namespace");
                eprintln!("braid-capture testing: cannot delete test namespace {ns}: {err}");
            }
        }
    }
}

// === impl TestPod ===

impl TestPod {
    /// Opens the pod's namespace.
    pub fn netns(&self) -> Result<NetNs, Error> {
        NetNs::open(&self.netns_path)
    }

    /// Runs `program args...` in the pod via `ip netns exec` and returns its
    /// output; a non-zero exit is not an error (inspect `status`).
    pub fn exec<I, S>(&self, program: &str, args: I) -> Result<Output, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns_name, program])
            .args(args);
        command::output(&mut cmd, None).map_err(|err| command::spawn_error(&cmd, "iproute2", err))
    }
}

/// Whether a test that needs root (namespaces, iptables) should run.
///
/// Returns true as root. Otherwise prints a skip message and returns false,
/// unless `CI=true`, where skipping would hide a broken setup: then it panics.
pub fn require_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("this test needs root (network namespaces, iptables) and CI=true forbids skipping");
    }
    eprintln!(
        "skipping: this test needs root (network namespaces, iptables); set CI=true to require it"
    );
    false
}

fn ip<const N: usize>(args: [&str; N]) -> Result<Output, Error> {
    command::run(Command::new("ip").args(args), "iproute2")
}
