//! An async `SOCK_SEQPACKET` Unix socket carrying bytes plus `SCM_RIGHTS`
//! fds, on rustix's safe `sendmsg`/`recvmsg`.
//!
//! tokio has no seqpacket type and registering a raw fd (`AsyncFd`) is
//! `unsafe` in this tokio. A `tokio::net::UnixStream` is only a registered fd
//! with readiness, whatever the socket type, so it carries the seqpacket
//! socket; we never use its byte-stream I/O, only `async_io` with our own
//! `sendmsg`/`recvmsg`.

use std::{
    io::{self, IoSlice, IoSliceMut},
    mem::MaybeUninit,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};
use tokio::{io::Interest, net::UnixStream};

use super::MAX_PACKET;

/// How many fds one packet may bring in before the kernel truncates: more
/// than the protocol ever sends, so "too many" is reported rather than lost.
const MAX_FDS: usize = 4;

/// One connected seqpacket socket (non-blocking, registered with tokio).
#[derive(Debug)]
pub(crate) struct SeqPacket {
    fd: UnixStream,
}

/// One received packet.
#[derive(Debug)]
pub(crate) struct Packet {
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
    /// The packet was longer than [`MAX_PACKET`] (its tail was discarded).
    pub(crate) truncated: bool,
}

// === impl SeqPacket ===

impl SeqPacket {
    /// Wraps a connected socket created with `SOCK_NONBLOCK`.
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Self> {
        Ok(Self::from_tokio(UnixStream::from_std(fd.into())?))
    }

    /// Wraps a socket tokio accepted (already non-blocking and registered).
    pub(crate) fn from_tokio(fd: UnixStream) -> Self {
        Self { fd }
    }

    /// Sends one packet with `fds` attached.
    pub(crate) async fn send(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        self.fd
            .async_io(Interest::WRITABLE, || {
                let fd = &self.fd;
                let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
                let mut control = SendAncillaryBuffer::new(&mut space);
                if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
                    return Err(io::Error::other("too many fds for one packet"));
                }
                // NOSIGNAL: a vanished peer must be an EPIPE error, not a
                // SIGPIPE that kills the process.
                let sent = sendmsg(
                    fd,
                    &[IoSlice::new(bytes)],
                    &mut control,
                    SendFlags::NOSIGNAL,
                )?;
                if sent != bytes.len() {
                    return Err(io::Error::other("short write on a seqpacket socket"));
                }
                Ok(())
            })
            .await
    }

    /// Receives one packet; `None` when the peer closed the connection (the
    /// protocol never sends empty packets).
    pub(crate) async fn recv(&self) -> io::Result<Option<Packet>> {
        self.fd
            .async_io(Interest::READABLE, || {
                let fd = &self.fd;
                let mut bytes = vec![0_u8; MAX_PACKET];
                let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
                let mut control = RecvAncillaryBuffer::new(&mut space);
                let got = recvmsg(
                    fd,
                    &mut [IoSliceMut::new(&mut bytes)],
                    &mut control,
                    RecvFlags::CMSG_CLOEXEC,
                )?;
                // Received fds are owned (and closed on drop) from here on,
                // whatever we decide about the packet.
                let mut fds = Vec::new();
                for message in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(received) = message {
                        fds.extend(received);
                    }
                }
                if got.bytes == 0 && fds.is_empty() {
                    return Ok(None);
                }
                bytes.truncate(got.bytes.min(MAX_PACKET));
                // CTRUNC (more fds than MAX_FDS) counts as oversized too.
                let truncated = got
                    .flags
                    .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC);
                Ok(Some(Packet {
                    bytes,
                    fds,
                    truncated,
                }))
            })
            .await
    }

    /// Whether the peer has hung up, without waiting. Only meaningful when
    /// no answer is expected: unsolicited data also counts as closed.
    pub(crate) fn peer_gone(&self) -> bool {
        let mut byte = [0_u8; 1];
        let peeked = rustix::net::recv(
            self.fd.as_fd(),
            &mut byte,
            RecvFlags::PEEK | RecvFlags::DONTWAIT,
        );
        !matches!(
            peeked,
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR)
        )
    }
}
