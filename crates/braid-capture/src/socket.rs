//! Per-socket capture helpers: the original destination of a redirected
//! connection, and the mark that exempts the proxy's own traffic.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsFd;

use rustix::net::sockopt;
use socket2::SockRef;

/// The firewall mark (`SO_MARK`) carried by packets of the proxy's own
/// sockets.
///
/// The capture rules installed by [`rules::install`](crate::rules::install)
/// skip packets with this mark, so a proxy that connects onward to the
/// original destination is not captured again by its own rules (a loop).
/// `0x539` is 1337, the value Istio uses, so rules are recognisable by
/// operators who know Istio.
pub const PROXY_MARK: u32 = 0x539;

/// The destination a client originally dialled, before a `REDIRECT` rule
/// rewrote it to the proxy's capture port.
///
/// Call it on an *accepted* socket. It reads `SO_ORIGINAL_DST` (IPv4) or
/// `IP6T_SO_ORIGINAL_DST` (IPv6) from conntrack; on a dual-stack IPv6
/// listener an IPv4 client (a v4-mapped local address) is looked up as IPv4.
/// An unredirected but tracked connection yields its actual local address;
/// `ENOENT` means conntrack does not know the connection at all.
pub fn original_dst(socket: impl AsFd) -> io::Result<SocketAddr> {
    let local = SockRef::from(&socket)
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))?;
    let is_v4 = match local {
        SocketAddr::V4(_) => true,
        SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped().is_some(),
    };
    if is_v4 {
        let dst: SocketAddrV4 = sockopt::ip_original_dst(&socket)?;
        Ok(dst.into())
    } else {
        Ok(sockopt::ipv6_original_dst(&socket)?.into())
    }
}

/// Sets `SO_MARK` on `socket`: every packet it sends carries `mark`.
///
/// Set it *before* `connect` so the SYN is marked too: capture rules look at
/// the first packet of a connection only. Needs `CAP_NET_ADMIN`.
pub fn set_mark(socket: impl AsFd, mark: u32) -> io::Result<()> {
    SockRef::from(&socket).set_mark(mark)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn original_dst_of_unredirected_connection_is_its_own_address() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        // Without conntrack loaded there is nothing to read; with it, the
        // original tuple of an un-NATed connection is the real one.
        if let Ok(dst) = original_dst(&accepted) {
            assert_eq!(dst, addr);
        }
    }

    #[test]
    fn set_mark_round_trips() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipping set_mark_round_trips: SO_MARK needs CAP_NET_ADMIN");
            return;
        }
        let socket = TcpListener::bind("127.0.0.1:0").expect("bind");
        set_mark(&socket, PROXY_MARK).expect("set_mark");
        assert_eq!(SockRef::from(&socket).mark().expect("mark"), PROXY_MARK);
    }
}
