//! Deciding what a captured outbound connection speaks, without stalling
//! either kind of protocol.
//!
//! A declared protocol decides at once. Otherwise the client's first bytes
//! are sniffed: HTTP clients speak within microseconds of connecting, so a
//! short grace decides almost every HTTP connection with no upstream dialled
//! yet. A client still silent after it may be waiting for a server-first
//! protocol (MySQL, SMTP, SSH): the upstream is dialled while sniffing goes
//! on, and whoever speaks first decides. A server greeting is passed on the
//! moment it arrives, so server-first protocols wait for nothing beyond the
//! grace; a connection dialled early for what turns out to be HTTP joins
//! the pool instead of being thrown away.

use std::{net::SocketAddr, time::Duration};

use tokio::{io::AsyncReadExt as _, net::TcpStream};

use crate::{
    detect::{self, Protocol},
    state::Declared,
    upstream::{PodContext, Route, UpstreamIo},
};

/// How long a silent client is given before the upstream is dialled.
const GRACE: Duration = Duration::from_millis(5);

/// How long to wait for anyone to speak before proxying bytes blindly.
const DETECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client of a port declared as HTTP may take to send its
/// request line before the connection is proxied as bytes after all.
const DECLARED_TIMEOUT: Duration = Duration::from_secs(30);

/// What to do with a connection.
pub(crate) enum Decision {
    /// Proxy it as HTTP of this version; `early` is an upstream connection
    /// dialled while the client was silent.
    Http {
        version: Protocol,
        early: Option<(Route, UpstreamIo)>,
    },
    /// Proxy it as bytes.
    Opaque(Option<Early>),
}

/// An upstream dialled before the protocol was known, and what its server
/// already said.
pub(crate) struct Early {
    pub(crate) route: Route,
    pub(crate) io: UpstreamIo,
    /// The server's first bytes, not yet passed to the client.
    pub(crate) greeting: Vec<u8>,
}

/// Who spoke first once both sides were connected.
enum First {
    Client(Option<Protocol>),
    Server(usize),
}

/// Decides how to proxy `tcp`, whose original destination is `original`.
pub(crate) async fn decide(tcp: &TcpStream, pod: &PodContext, original: SocketAddr) -> Decision {
    match pod.state.declared_protocol(original) {
        Some(Declared::Opaque) => return Decision::Opaque(None),
        Some(Declared::Http) => return client_decides(tcp, DECLARED_TIMEOUT, None).await,
        None => {}
    }
    if let Ok(Some(protocol)) = detect::sniff(tcp, GRACE).await {
        return from_client(Some(protocol), None);
    }
    let Ok(route) = Route::resolve(pod, original) else {
        // Nowhere to dial: only the client can still decide.
        return client_decides(tcp, DETECT_TIMEOUT, None).await;
    };
    let sniffing = detect::sniff(tcp, DETECT_TIMEOUT);
    tokio::pin!(sniffing);
    let dialing = {
        let route = route.clone();
        async move { route.dial(pod).await }
    };
    tokio::pin!(dialing);
    let dialed = tokio::select! {
        decided = &mut sniffing => {
            // The client spoke while dialling: finish the dial for whichever
            // path it chose (both need a connection there).
            let io = dialing.await.ok();
            return from_client(decided.ok().flatten(), io.map(|io| (route, io)));
        }
        dialed = &mut dialing => dialed,
    };
    let Ok(mut io) = dialed else {
        let decided = sniffing.await.ok().flatten();
        return from_client(decided, None);
    };
    let mut greeting = vec![0u8; 4096];
    let first = tokio::select! {
        decided = &mut sniffing => First::Client(decided.ok().flatten()),
        read = io.read(&mut greeting) => First::Server(read.unwrap_or(0)),
    };
    match first {
        First::Client(decided) => from_client(decided, Some((route, io))),
        First::Server(n) => {
            greeting.truncate(n);
            Decision::Opaque(Some(Early {
                route,
                io,
                greeting,
            }))
        }
    }
}

/// Waits up to `timeout` for the client's first bytes.
async fn client_decides(
    tcp: &TcpStream,
    timeout: Duration,
    early: Option<(Route, UpstreamIo)>,
) -> Decision {
    from_client(detect::sniff(tcp, timeout).await.ok().flatten(), early)
}

/// The decision for what the client said (`None`: nothing decisive in
/// time, proxied as bytes).
fn from_client(decided: Option<Protocol>, early: Option<(Route, UpstreamIo)>) -> Decision {
    match decided {
        Some(version @ (Protocol::Http1 | Protocol::Http2)) => Decision::Http { version, early },
        _ => Decision::Opaque(early.map(|(route, io)| Early {
            route,
            io,
            greeting: Vec::new(),
        })),
    }
}
