//! Sockets opened inside a namespace: the capture listeners (15001, 15006,
//! 15008) and outbound sockets that must leave with the pod's own IP.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use super::NetNs;
use crate::Error;

/// How [`NetNs::bind_tcp`] sets up a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenOptions {
    /// `IP_TRANSPARENT`: accept connections for addresses that are not local
    /// (TPROXY setups). Off by default; REDIRECT capture does not need it.
    pub transparent: bool,
    /// The accept queue length passed to `listen(2)`; 1024 by default.
    pub backlog: i32,
    /// `SO_MARK` for the listener (inherited by accepted sockets), if any.
    pub mark: Option<u32>,
}

// === impl ListenOptions ===

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            transparent: false,
            backlog: 1024,
            mark: None,
        }
    }
}

// === impl NetNs ===

impl NetNs {
    /// Binds a non-blocking TCP listener on `addr` inside this namespace, with
    /// `SO_REUSEADDR` so a restarted proxy can rebind while old connections
    /// linger in `TIME_WAIT`.
    ///
    /// IPv6 listeners are `IPV6_V6ONLY`, so `[::]:15001` and `0.0.0.0:15001`
    /// can both be bound. Hand the result to `tokio::net::TcpListener::from_std`.
    pub fn bind_tcp(&self, addr: SocketAddr, opts: &ListenOptions) -> Result<TcpListener, Error> {
        let ns = self.id();
        let fail = |op| {
            move |source| Error::Socket {
                op,
                addr,
                ns,
                source,
            }
        };
        let socket = self
            .run(|| new_socket(addr))
            .and_then(|s| s.map_err(fail("create")))?;
        socket
            .set_reuse_address(true)
            .map_err(fail("set SO_REUSEADDR on"))?;
        if addr.is_ipv6() {
            socket
                .set_only_v6(true)
                .map_err(fail("set IPV6_V6ONLY on"))?;
        }
        if opts.transparent {
            match addr {
                SocketAddr::V4(_) => socket.set_ip_transparent_v4(true),
                SocketAddr::V6(_) => socket.set_ip_transparent_v6(true),
            }
            .map_err(fail("set IP_TRANSPARENT on"))?;
        }
        if let Some(mark) = opts.mark {
            socket.set_mark(mark).map_err(fail("set SO_MARK on"))?;
        }
        socket.bind(&addr.into()).map_err(fail("bind"))?;
        socket.listen(opts.backlog).map_err(fail("listen on"))?;
        Ok(socket.into())
    }

    /// Creates a non-blocking, unbound TCP socket of `addr_family_of`'s family
    /// inside this namespace, for an outbound connect that must leave with the
    /// pod's IP. Pass `Some(PROXY_MARK)` so the pod's capture rules let it
    /// through instead of redirecting it back to the proxy.
    ///
    /// [`PROXY_MARK`]: crate::PROXY_MARK
    pub fn tcp_socket(
        &self,
        addr_family_of: SocketAddr,
        mark: Option<u32>,
    ) -> Result<Socket, Error> {
        let ns = self.id();
        let fail = |op| {
            move |source| Error::Socket {
                op,
                addr: addr_family_of,
                ns,
                source,
            }
        };
        let socket = self
            .run(|| new_socket(addr_family_of))
            .and_then(|s| s.map_err(fail("create")))?;
        if let Some(mark) = mark {
            socket.set_mark(mark).map_err(fail("set SO_MARK on"))?;
        }
        Ok(socket)
    }
}

/// Only `socket(2)` itself must happen inside the namespace: the namespace is
/// fixed at creation, so the remaining setup can run after moving back.
fn new_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}
