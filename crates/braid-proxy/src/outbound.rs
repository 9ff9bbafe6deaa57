//! A pod's outbound listener (15001), above both stacks: every captured
//! connection is checked (not addressed to the listener itself), then
//! protocol detection ([`crate::detect::sniff`]) picks its stack. In an
//! HTTP-aware proxy (a sidecar) a connection that speaks HTTP is served by
//! [`crate::l7`], request by request; everything else is proxied as bytes
//! by [`crate::l4::outbound`].

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

use crate::{
    detect::sniff::{self, Decision},
    l4::{self, outbound::Opened},
    l7::{self, Senders},
    upstream::{PodContext, Route},
};

/// What a pod's outbound connections are served with.
pub(crate) struct Outbound {
    /// The pod.
    pub(crate) pod: Arc<PodContext>,
    /// Pooled upstream HTTP connections when the proxy is HTTP-aware (a
    /// sidecar); `None` keeps every connection L4 (the ztunnel).
    pub(crate) http: Option<Senders>,
}

/// Serves `listener` until dropped (which ends every connection it took).
pub(crate) async fn serve(listener: TcpListener, outbound: Arc<Outbound>) {
    let mut connections = JoinSet::new();
    // Backoff on accept errors (out of fds: never spin), no cap and no idle
    // timeout: these are the application's own long-lived connections.
    let mut gate = braid_listen::Gate::new("outbound");
    loop {
        tokio::select! {
            ((tcp, peer), _) = gate.accept(|| listener.accept()) => {
                connections.spawn(handle(tcp, peer, outbound.clone()));
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn handle(tcp: TcpStream, peer: SocketAddr, outbound: Arc<Outbound>) {
    // This task lives as long as the connection, idle or not, and a future
    // is as large as its largest step: setting up is boxed, so an open
    // connection keeps only what relaying needs, not room for sniffing,
    // dialling or an HTTP server it does not use.
    let Some(opened) = Box::pin(open(tcp, peer, &outbound)).await else {
        return;
    };
    let original = opened.original;
    if let Err(reason) = opened.relay().await {
        tracing::info!(pod = %outbound.pod.workload, %original, %reason, "outbound connection failed");
    }
}

/// Decides where the connection goes and connects it; serves it here if it
/// speaks HTTP (in a sidecar). `None` when there is nothing left to relay.
async fn open(tcp: TcpStream, peer: SocketAddr, outbound: &Outbound) -> Option<Opened> {
    let pod = &outbound.pod;
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
    let early = match &outbound.http {
        // A sidecar looks at what the connection speaks; the ztunnel is L4.
        Some(senders) => match sniff::decide(&tcp, pod, original).await {
            Decision::Http { version, early } => {
                if let Some((route, io)) = early {
                    senders.adopt(&route, version, io).await;
                }
                let (pod, senders) = (pod.clone(), senders.clone());
                l7::serve_outbound(tcp, version, pod, senders, original, peer, None).await;
                return None;
            }
            Decision::Opaque(early) => early,
        },
        None => None,
    };
    match l4::outbound::opaque(tcp, peer, pod, original, early).await {
        Ok(opened) => Some(opened),
        Err(reason) => {
            tracing::info!(pod = %pod.workload, %original, %reason, "outbound connection failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn future_size<F: Future>(_: impl FnOnce(TcpStream, SocketAddr, Arc<Outbound>) -> F) -> usize {
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
