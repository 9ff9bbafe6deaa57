//! The agent side: connect to the ztunnel, say hello, send pods, wait for
//! each ack.

use std::{
    os::fd::BorrowedFd,
    path::{Path, PathBuf},
    time::Duration,
};

use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use super::{
    ACK_TIMEOUT, HandoffError, PROTOCOL_VERSION, Result,
    socket::SeqPacket,
    wire::{self, Reply, Request},
};

/// A connection from the node agent to the ztunnel.
///
/// Requests are strictly sequential (each waits for its ack), which is what
/// `&mut self` enforces. After a fatal error ([`HandoffError::is_fatal`])
/// drop the client and connect again.
#[derive(Debug)]
pub struct HandoffClient {
    socket: SeqPacket,
    path: PathBuf,
    timeout: Duration,
}

// === impl HandoffClient ===

impl HandoffClient {
    /// Connects to the ztunnel at `path` and completes the `hello`
    /// exchange.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self> {
        Self::connect_with_timeout(path, ACK_TIMEOUT).await
    }

    /// Like [`connect`](Self::connect), waiting at most `timeout` for each
    /// ack.
    pub async fn connect_with_timeout(path: impl AsRef<Path>, timeout: Duration) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let connect_error = |source: std::io::Error| HandoffError::Connect {
            path: path.clone(),
            source,
        };
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| connect_error(e.into()))?;
        let addr = SocketAddrUnix::new(&path).map_err(|e| connect_error(e.into()))?;
        // A Unix connect completes at once or fails (EAGAIN: backlog full,
        // which the caller's retry covers).
        rustix::net::connect(&fd, &addr).map_err(|e| connect_error(e.into()))?;
        let socket = SeqPacket::new(fd).map_err(connect_error)?;
        let mut client = Self {
            socket,
            path,
            timeout,
        };
        client
            .request(
                &Request::Hello {
                    version: PROTOCOL_VERSION,
                },
                None,
            )
            .await?;
        Ok(client)
    }

    /// The ztunnel's socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands `netns` (the pod's network namespace) to the ztunnel; returns
    /// once the ztunnel acked, or its error text as
    /// [`HandoffError::Rejected`].
    pub async fn add_pod(
        &mut self,
        uid: &str,
        workload: &str,
        netns: BorrowedFd<'_>,
    ) -> Result<()> {
        let request = Request::AddPod {
            uid: uid.to_string(),
            workload: workload.to_string(),
        };
        self.request(&request, Some(netns)).await
    }

    /// Tells the ztunnel to stop capturing pod `uid`.
    pub async fn remove_pod(&mut self, uid: &str) -> Result<()> {
        let request = Request::RemovePod {
            uid: uid.to_string(),
        };
        self.request(&request, None).await
    }

    /// Tells the ztunnel that every known pod has been sent on this
    /// connection.
    pub async fn snapshot_sent(&mut self) -> Result<()> {
        self.request(&Request::SnapshotSent, None).await
    }

    /// Whether the ztunnel has closed the connection (checked without
    /// waiting; between requests only).
    pub fn is_closed(&self) -> bool {
        self.socket.peer_gone()
    }

    async fn request(&mut self, request: &Request, fd: Option<BorrowedFd<'_>>) -> Result<()> {
        let bytes = wire::encode(request);
        let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
        self.socket
            .send(&bytes, &fds)
            .await
            .map_err(|source| HandoffError::Io { op: "send", source })?;
        let received = tokio::time::timeout(self.timeout, self.socket.recv())
            .await
            .map_err(|_| HandoffError::Timeout {
                what: request.describe(),
                timeout: self.timeout,
            })?;
        let packet = received
            .map_err(|source| HandoffError::Io {
                op: "receive",
                source,
            })?
            .ok_or(HandoffError::Closed)?;
        match wire::decode_reply(packet)? {
            Reply::Ack { error: None } => Ok(()),
            Reply::Ack {
                error: Some(reason),
            } => Err(HandoffError::Rejected {
                what: request.describe(),
                reason,
            }),
        }
    }
}
