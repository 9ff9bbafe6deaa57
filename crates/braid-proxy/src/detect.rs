//! Protocol detection for captured connections whose protocol nobody
//! declared: is the client speaking HTTP/1.x, HTTP/2 (prior knowledge), or
//! something else?
//!
//! Only the client's first bytes are looked at, without consuming them
//! (`MSG_PEEK`), so whatever is decided the bytes reach the upstream intact.
//! A client that sends nothing within the timeout is treated as opaque:
//! server-first protocols (MySQL, SMTP, SSH) wait at most that long, never
//! forever. Declared protocols (`appProtocol`, port names) come first and
//! skip detection; that choice belongs to the caller.
//!
//! [`sniff`] is the decision as the outbound listener makes it, above both
//! stacks: which stack serves a connection, dialling the upstream while a
//! silent client may be waiting for a server-first protocol.

use std::time::Duration;

use tokio::net::TcpStream;

pub(crate) mod prefixed;
pub(crate) mod sniff;

/// The HTTP/2 connection preface a client with prior knowledge sends first.
pub const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Request methods that start an HTTP/1.x request (RFC 9110 and PATCH).
const METHODS: &[&[u8]] = &[
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH",
];

/// The most bytes a decision needs: the HTTP/2 preface.
const MAX_PREFIX: usize = HTTP2_PREFACE.len();

/// What a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 or 1.1.
    Http1,
    /// HTTP/2 with prior knowledge (h2c), including gRPC.
    Http2,
    /// Anything else: proxied as bytes (L4).
    Opaque,
}

/// The outcome of looking at a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Enough bytes to decide.
    Decided(Protocol),
    /// The prefix is consistent with HTTP but too short to tell.
    NeedMore,
}

/// Classifies the first bytes a client sent. Pure; never panics on any
/// input (fuzzed by `classify_never_panics`).
pub fn classify(prefix: &[u8]) -> Verdict {
    if prefix.is_empty() {
        return Verdict::NeedMore;
    }
    let n = prefix.len().min(MAX_PREFIX);
    if prefix[..n] == HTTP2_PREFACE[..n] {
        return if n == MAX_PREFIX {
            Verdict::Decided(Protocol::Http2)
        } else {
            Verdict::NeedMore
        };
    }
    let mut could_be_http1 = false;
    for method in METHODS {
        let m = method.len();
        if prefix.len() > m {
            if prefix.starts_with(method) && prefix[m] == b' ' {
                return Verdict::Decided(Protocol::Http1);
            }
        } else if method.starts_with(prefix) || (prefix.len() == m && prefix == *method) {
            could_be_http1 = true;
        }
    }
    if could_be_http1 {
        Verdict::NeedMore
    } else {
        Verdict::Decided(Protocol::Opaque)
    }
}

/// Peeks at `stream` until [`classify`] decides, the client pauses for
/// `timeout`, or it closes its side. Nothing is consumed.
pub async fn detect(stream: &TcpStream, timeout: Duration) -> std::io::Result<Protocol> {
    Ok(sniff(stream, timeout).await?.unwrap_or(Protocol::Opaque))
}

/// Like [`detect`], but tells a client that stayed silent (or paused in
/// the middle of a possible HTTP prefix) for `timeout` apart: `None`. A
/// client that closed its side without a decisive prefix is opaque.
pub async fn sniff(stream: &TcpStream, timeout: Duration) -> std::io::Result<Option<Protocol>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; MAX_PREFIX];
    let mut seen = 0;
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await;
        let n = match peeked {
            Err(_) => return Ok(None),
            Ok(result) => result?,
        };
        if n == 0 {
            // Closed before saying anything decisive.
            return Ok(Some(Protocol::Opaque));
        }
        match classify(&buf[..n]) {
            Verdict::Decided(protocol) => return Ok(Some(protocol)),
            Verdict::NeedMore if n == seen => {
                // Peek returns at once with the same bytes while no more
                // arrived: wait for the socket to become readable again.
                let wait = tokio::time::timeout_at(deadline, readable_beyond(stream, n)).await;
                if wait.is_err() {
                    return Ok(None);
                }
            }
            Verdict::NeedMore => seen = n,
        }
    }
}

/// Waits (polling gently) until more than `n` bytes can be peeked.
async fn readable_beyond(stream: &TcpStream, n: usize) {
    let mut buf = [0u8; MAX_PREFIX];
    loop {
        tokio::time::sleep(Duration::from_millis(2)).await;
        match stream.peek(&mut buf).await {
            Ok(m) if m > n || m == 0 => return,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests;
