//! The ztunnel side: listen, accept the agent, read pod events, ack them.

use std::{
    io,
    path::{Path, PathBuf},
};

use rustix::{
    fs::{FileType, Mode},
    net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType},
};
use tokio::net::UnixListener;

use super::{
    HandoffError, PROTOCOL_VERSION, PodEvent, Result,
    socket::SeqPacket,
    wire::{self, Incoming, Reply},
};

/// The longest error text an ack carries, in bytes.
const MAX_ERROR: usize = 1024;

/// The ztunnel's listening hand-off socket.
#[derive(Debug)]
pub struct HandoffListener {
    // A seqpacket listener in tokio's stream-listener type: see `socket.rs`.
    fd: UnixListener,
    path: PathBuf,
}

/// One accepted agent connection.
#[derive(Debug)]
pub struct HandoffConnection {
    socket: SeqPacket,
    /// `hello` was accepted: pod events may follow.
    greeted: bool,
    /// An event was handed out and not yet acked.
    pending: bool,
}

// === impl HandoffListener ===

impl HandoffListener {
    /// Listens on `path`, replacing a stale socket left by a previous run
    /// (but never a file of another kind). The socket is mode 0600: only
    /// root (the agent) may hand over namespaces.
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bind_error = |source: io::Error| HandoffError::Bind {
            path: path.clone(),
            source,
        };
        match rustix::fs::lstat(&path) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Socket => {
                std::fs::remove_file(&path).map_err(bind_error)?;
            }
            Ok(_) => {
                return Err(bind_error(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a file that is not a socket is in the way; remove it",
                )));
            }
            Err(_) => {}
        }
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| bind_error(e.into()))?;
        let addr = SocketAddrUnix::new(&path).map_err(|e| bind_error(e.into()))?;
        rustix::net::bind(&fd, &addr).map_err(|e| bind_error(e.into()))?;
        rustix::fs::chmod(&path, Mode::from_raw_mode(0o600)).map_err(|e| bind_error(e.into()))?;
        rustix::net::listen(&fd, 16).map_err(|e| bind_error(e.into()))?;
        let fd = UnixListener::from_std(std::os::unix::net::UnixListener::from(fd))
            .map_err(bind_error)?;
        Ok(Self { fd, path })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next agent connection.
    pub async fn accept(&self) -> Result<HandoffConnection> {
        let io_error = |source| HandoffError::Io {
            op: "accept",
            source,
        };
        let (stream, _) = self.fd.accept().await.map_err(io_error)?;
        Ok(HandoffConnection::new(SeqPacket::from_tokio(stream)))
    }
}

// === impl HandoffConnection ===

impl HandoffConnection {
    pub(crate) fn new(socket: SeqPacket) -> Self {
        Self {
            socket,
            greeted: false,
            pending: false,
        }
    }

    /// The next pod event; `None` when the agent disconnected.
    ///
    /// `hello` is answered here. A bad message is answered here with an
    /// error ack and returned as a non-fatal error
    /// ([`HandoffError::is_fatal`] is false): log it and call `next` again.
    pub async fn next(&mut self) -> Result<Option<PodEvent>> {
        if self.pending {
            return Err(HandoffError::Misuse(
                "ack the previous pod event before reading the next",
            ));
        }
        loop {
            let packet = match self.socket.recv().await {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(None),
                Err(source) => {
                    return Err(HandoffError::Io {
                        op: "receive",
                        source,
                    });
                }
            };
            match wire::decode_request(packet) {
                Ok(Incoming::Hello(version)) if version == PROTOCOL_VERSION => {
                    self.greeted = true;
                    self.send_ack(None).await?;
                }
                Ok(Incoming::Hello(version)) => {
                    let error = HandoffError::UnsupportedVersion(version);
                    self.send_ack(Some(error.to_string())).await?;
                    return Err(error);
                }
                Ok(Incoming::Event(_)) if !self.greeted => {
                    let error = HandoffError::Malformed("hello must be the first message".into());
                    self.send_ack(Some(error.to_string())).await?;
                    return Err(error);
                }
                Ok(Incoming::Event(event)) => {
                    self.pending = true;
                    return Ok(Some(event));
                }
                Err(error) => {
                    self.send_ack(Some(error.to_string())).await?;
                    return Err(error);
                }
            }
        }
    }

    /// Answers the event returned by the last [`next`](Self::next): `Ok`, or
    /// the reason it could not be applied (the agent reports it).
    pub async fn ack(&mut self, result: std::result::Result<(), String>) -> Result<()> {
        if !self.pending {
            return Err(HandoffError::Misuse("no pod event is waiting for an ack"));
        }
        self.pending = false;
        self.send_ack(result.err()).await
    }

    async fn send_ack(&self, error: Option<String>) -> Result<()> {
        // Errors may quote the peer's input; keep the ack under MAX_PACKET.
        let error = error.map(|mut text| {
            if text.len() > MAX_ERROR {
                let mut end = MAX_ERROR;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                text.push('…');
            }
            text
        });
        let bytes = wire::encode(&Reply::Ack { error });
        self.socket
            .send(&bytes, &[])
            .await
            .map_err(|source| HandoffError::Io { op: "send", source })
    }
}
