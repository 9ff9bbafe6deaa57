//! A pod's outbound traffic (captured to 15001 inside its namespace): to a
//! meshed destination over HBONE with the pod's identity, to anything else
//! as plain TCP from the pod's own address. In a sidecar, connections that
//! speak HTTP go to the L7 proxy instead ([`crate::l7`]).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::AsyncWriteExt as _,
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

use super::{PodContext, upstream::Route};
use crate::l7::{
    self,
    sniff::{self, Decision, Early},
};

/// Serves `listener` until dropped (which ends every connection it took).
pub(crate) async fn serve(listener: TcpListener, pod: Arc<PodContext>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(handle(tcp, peer, pod.clone()));
                }
                Err(error) => {
                    tracing::warn!(pod = %pod.workload, %error, "outbound accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn handle(tcp: TcpStream, peer: SocketAddr, pod: Arc<PodContext>) {
    let _ = tcp.set_nodelay(true);
    let original = match braid_capture::original_dst(&tcp) {
        Ok(original) => original,
        Err(error) => {
            tracing::warn!(pod = %pod.workload, %peer, %error, "outbound connection without an original destination");
            return;
        }
    };
    let early = match &pod.http {
        // A sidecar looks at what the connection speaks; the ztunnel is L4.
        Some(senders) => match sniff::decide(&tcp, &pod, original).await {
            Decision::Http { version, early } => {
                if let Some((route, io)) = early {
                    senders.adopt(&route, version, io).await;
                }
                let senders = senders.clone();
                return l7::serve_outbound(tcp, version, pod, senders, original, peer).await;
            }
            Decision::Opaque(early) => early,
        },
        None => None,
    };
    if let Err(reason) = opaque(tcp, peer, &pod, original, early).await {
        tracing::info!(pod = %pod.workload, %original, %reason, "outbound connection failed");
    }
}

/// Proxies the connection as bytes: over HBONE to a meshed destination,
/// as plain TCP otherwise. Every decided connection is counted opened and
/// closed (a failed one with no bytes).
async fn opaque(
    mut tcp: TcpStream,
    peer: SocketAddr,
    pod: &PodContext,
    original: SocketAddr,
    early: Option<Early>,
) -> Result<(), String> {
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
    let outcome = async {
        let upstream = dialed?;
        // What a server-first protocol already said while we sniffed.
        tcp.write_all(&greeting)
            .await
            .map_err(|e| format!("client went away: {e}"))?;
        let (sent, received) = upstream
            .splice(tcp)
            .await
            .map_err(|e| format!("connection to {target} broke: {e}"))?;
        Ok((sent, received + greeting.len() as u64))
    }
    .await;
    let (sent, received) = outcome.as_ref().copied().unwrap_or_default();
    connection.finish(&peer.to_string(), &target.to_string(), sent, received);
    outcome.map(drop)
}
