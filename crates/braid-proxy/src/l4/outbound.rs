//! A pod's outbound traffic (captured to 15001 inside its namespace): to a
//! meshed destination over HBONE with the pod's identity, to anything else
//! as plain TCP from the pod's own address.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use braid_identity::SpiffeId;
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

use super::PodContext;
use crate::{
    hbone,
    state::{Destination, Resolved},
    telemetry::{Connection, Direction, Labels, Peer},
};

/// Bounds dialling a passthrough destination.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
    let client = peer.to_string();
    let outcome = match pod.state.resolve(original) {
        Ok(Resolved::Mesh(destination)) => {
            let target = destination.target.to_string();
            let labels = labels(&pod, Peer::workload(&destination.workload), true);
            let connection = pod.metrics.open(labels);
            let outcome = tunnel(tcp, &pod, &destination).await;
            finish(connection, &client, &target, outcome)
        }
        Ok(Resolved::Passthrough { target }) => {
            let destination = pod
                .state
                .workload_by_ip(target.ip())
                .map(|w| Peer::workload(&w))
                .unwrap_or_else(Peer::unknown);
            let connection = pod.metrics.open(labels(&pod, destination, false));
            let outcome = passthrough(tcp, &pod, target).await;
            finish(connection, &client, &target.to_string(), outcome)
        }
        Err(reason) => Err(reason),
    };
    if let Err(reason) = outcome {
        tracing::info!(pod = %pod.workload, %original, %reason, "outbound connection failed");
    }
}

/// Closes `connection` whatever happened, so every opened connection is
/// also counted closed and logged (a failed one with no bytes).
fn finish(
    connection: Connection,
    client: &str,
    target: &str,
    outcome: Result<(u64, u64), String>,
) -> Result<(), String> {
    let (sent, received) = outcome.as_ref().copied().unwrap_or_default();
    connection.finish(client, target, sent, received);
    outcome.map(drop)
}

fn labels(pod: &PodContext, destination: Peer, mtls: bool) -> Labels {
    Labels {
        direction: Direction::Outbound,
        source: pod.peer(),
        destination,
        mtls,
    }
}

/// Over HBONE to the destination's proxy, as the source pod.
async fn tunnel(
    tcp: TcpStream,
    pod: &PodContext,
    destination: &Destination,
) -> Result<(u64, u64), String> {
    let source = pod.workload()?;
    let id = PodContext::identity(&source)?;
    let cert = pod.certificate(&id).await?;
    let expected: SpiffeId = PodContext::identity(&destination.workload)?;
    let stream = pod
        .pool
        .connect_from(pod, &cert, destination.proxy, &expected, destination.target)
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(
        source = %id, destination = %expected, target = %destination.target,
        "outbound HBONE tunnel open"
    );
    hbone::splice(tcp, stream)
        .await
        .map_err(|e| format!("tunnel to {} broke: {e}", destination.target))
}

/// Plain TCP from the pod's address.
async fn passthrough(
    mut tcp: TcpStream,
    pod: &PodContext,
    target: SocketAddr,
) -> Result<(u64, u64), String> {
    let mut upstream = tokio::time::timeout(CONNECT_TIMEOUT, pod.connect(target))
        .await
        .map_err(|_| format!("connecting to {target} timed out"))?
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    tokio::io::copy_bidirectional(&mut tcp, &mut upstream)
        .await
        .map_err(|e| format!("passthrough to {target} broke: {e}"))
}
