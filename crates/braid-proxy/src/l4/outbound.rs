//! A pod's outbound traffic (captured to 15001 inside its namespace): to a
//! meshed destination over HBONE with the pod's identity, to anything else
//! as plain TCP from the pod's own address. In a sidecar, connections that
//! speak HTTP go to the L7 proxy instead ([`crate::l7`]).

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    io::AsyncWriteExt as _,
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

use super::{
    PodContext,
    upstream::{Route, UpstreamIo},
};
use crate::{
    l7::{
        self,
        sniff::{self, Decision, Early},
    },
    telemetry::Connection,
};

/// Serves `listener` until dropped (which ends every connection it took).
pub(crate) async fn serve(listener: TcpListener, pod: Arc<PodContext>) {
    let mut connections = JoinSet::new();
    // Backoff on accept errors (out of fds: never spin), no cap and no idle
    // timeout: these are the application's own long-lived connections.
    let mut gate = braid_listen::Gate::new("outbound");
    loop {
        tokio::select! {
            ((tcp, peer), _) = gate.accept(|| listener.accept()) => {
                connections.spawn(handle(tcp, peer, pod.clone()));
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn handle(tcp: TcpStream, peer: SocketAddr, pod: Arc<PodContext>) {
    // This task lives as long as the connection, idle or not, and a future
    // is as large as its largest step: setting up is boxed, so an open
    // connection keeps only what relaying needs, not room for sniffing,
    // dialling or an HTTP server it does not use.
    let Some(opened) = Box::pin(open(tcp, peer, &pod)).await else {
        return;
    };
    let original = opened.original;
    if let Err(reason) = opened.relay().await {
        tracing::info!(pod = %pod.workload, %original, %reason, "outbound connection failed");
    }
}

/// A connection decided to be proxied as bytes, with its upstream open.
struct Opened {
    tcp: TcpStream,
    upstream: UpstreamIo,
    connection: Connection,
    peer: SocketAddr,
    original: SocketAddr,
    target: SocketAddr,
    /// Bytes of a server-first greeting already passed to the client.
    greeted: u64,
}

/// Decides where the connection goes and connects it; serves it here if it
/// speaks HTTP (in a sidecar). `None` when there is nothing left to relay.
async fn open(tcp: TcpStream, peer: SocketAddr, pod: &Arc<PodContext>) -> Option<Opened> {
    let _ = tcp.set_nodelay(true);
    let original = match braid_capture::original_dst(&tcp) {
        Ok(original) => original,
        Err(error) => {
            tracing::warn!(pod = %pod.workload, %peer, %error, "outbound connection without an original destination");
            return None;
        }
    };
    if tcp.local_addr().is_ok_and(|local| local == original) {
        // Not redirected: addressed to this listener itself (`pod-ip:15001`,
        // `127.0.0.1:15001`). Its only destination is the proxy, and sending
        // it on would dial this listener again, and again.
        let reason = format!(
            "{original} is the proxy's own outbound port, not a destination \
             (sending it on would loop back into the proxy)"
        );
        tracing::info!(pod = %pod.workload, %peer, %original, %reason, "outbound connection refused");
        let labels = Route::unresolved_labels(pod);
        pod.metrics
            .deny(labels, &peer.to_string(), &original.to_string(), &reason);
        return None;
    }
    let early = match &pod.http {
        // A sidecar looks at what the connection speaks; the ztunnel is L4.
        Some(senders) => match sniff::decide(&tcp, pod, original).await {
            Decision::Http { version, early } => {
                if let Some((route, io)) = early {
                    senders.adopt(&route, version, io).await;
                }
                let (pod, senders) = (pod.clone(), senders.clone());
                l7::serve_outbound(tcp, version, pod, senders, original, peer).await;
                return None;
            }
            Decision::Opaque(early) => early,
        },
        None => None,
    };
    match opaque(tcp, peer, pod, original, early).await {
        Ok(opened) => Some(opened),
        Err(reason) => {
            tracing::info!(pod = %pod.workload, %original, %reason, "outbound connection failed");
            None
        }
    }
}

/// Resolves and dials the connection's upstream (over HBONE to a meshed
/// destination, as plain TCP otherwise) and counts it opened. A decided
/// connection that fails here is counted closed at once, with no bytes.
async fn opaque(
    mut tcp: TcpStream,
    peer: SocketAddr,
    pod: &PodContext,
    original: SocketAddr,
    early: Option<Early>,
) -> Result<Opened, String> {
    let (route, dialed, greeting) = match early {
        Some(Early {
            route,
            io,
            greeting,
        }) => (route, Ok(io), greeting),
        None => {
            let route = Route::resolve(pod, original)?;
            let dialed = route.dial(pod).await;
            (route, dialed, Vec::new())
        }
    };
    let connection = pod.metrics.open(route.labels(pod));
    let target = route.target;
    let connected = async {
        let upstream = dialed?;
        // What a server-first protocol already said while we sniffed.
        tcp.write_all(&greeting)
            .await
            .map_err(|e| format!("client went away: {e}"))?;
        Ok(upstream)
    }
    .await;
    match connected {
        Ok(upstream) => Ok(Opened {
            tcp,
            upstream,
            connection,
            peer,
            original,
            target,
            greeted: greeting.len() as u64,
        }),
        Err(reason) => {
            connection.finish(&peer.to_string(), &target.to_string(), 0, 0);
            Err(reason)
        }
    }
}

// === impl Opened ===

impl Opened {
    /// Relays bytes both ways until the connection ends, then counts it
    /// closed with its bytes.
    async fn relay(self) -> Result<(), String> {
        let Self {
            tcp,
            upstream,
            connection,
            peer,
            target,
            greeted,
            ..
        } = self;
        let outcome = upstream
            .splice(tcp)
            .await
            .map_err(|e| format!("connection to {target} broke: {e}"));
        let (sent, received) = match &outcome {
            Ok((sent, received)) => (*sent, received + greeted),
            Err(_) => (0, 0),
        };
        connection.finish(&peer.to_string(), &target.to_string(), sent, received);
        outcome.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn future_size<F: Future>(
        _: impl FnOnce(TcpStream, SocketAddr, Arc<PodContext>) -> F,
    ) -> usize {
        size_of::<F>()
    }

    /// Every open connection keeps its task, idle or not (the mesh targets
    /// at most 4 KiB per idle connection and proxy): sniffing, dialling and
    /// serving HTTP must stay out of it (about 2.8 KiB before they were
    /// boxed).
    #[test]
    fn an_open_connection_keeps_a_small_task() {
        let size = future_size(handle);
        assert!(
            size <= 1536,
            "an outbound connection's task is {size} bytes"
        );
    }
}
