//! A pod's inbound traffic: HBONE on 15008, verified and authorized by the
//! peer's identity; plaintext captured to 15006, refused under STRICT and
//! otherwise authorized as an unauthenticated source. Both connect to the
//! pod's port from inside its namespace.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use braid_identity::{SpiffeId, TrustBundle};
use braid_model::{MtlsMode, WaypointRef, Workload};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

use crate::{
    hbone::{Connector, Refusal, Server, Settings},
    telemetry::{Counted, Direction, Labels, Peer},
    upstream::PodContext,
};

/// How often to look again for a pod the control plane has not sent yet.
const WORKLOAD_POLL: Duration = Duration::from_millis(100);

/// Serves HBONE on `listener` as the pod's identity. Waits until the
/// workload and its certificate are known; connections queue meanwhile.
pub(crate) async fn serve_hbone(listener: TcpListener, pod: Arc<PodContext>, bundle: TrustBundle) {
    let (id, certs) = wait_for_identity(&pod).await;
    let connector = InboundConnector { pod: pod.clone() };
    match Server::rotating(certs, bundle, connector, Settings::default()) {
        Ok(server) => {
            tracing::debug!(pod = %pod.workload, %id, "inbound HBONE ready");
            server.serve(listener).await
        }
        Err(error) => tracing::error!(pod = %pod.workload, %error, "cannot serve HBONE"),
    }
}

/// The pod's identity and its certificate as they are renewed, once the
/// control plane has sent the pod and a certificate was issued; polls
/// until then (connections queue in the listener meanwhile).
pub(crate) async fn wait_for_identity(
    pod: &PodContext,
) -> (
    SpiffeId,
    tokio::sync::watch::Receiver<Arc<braid_identity::WorkloadCertificate>>,
) {
    loop {
        match identity_and_certs(pod).await {
            Ok(ready) => return ready,
            Err(reason) => {
                tracing::debug!(pod = %pod.workload, %reason, "inbound HBONE waits");
                tokio::time::sleep(WORKLOAD_POLL).await;
            }
        }
    }
}

async fn identity_and_certs(
    pod: &PodContext,
) -> Result<
    (
        SpiffeId,
        tokio::sync::watch::Receiver<Arc<braid_identity::WorkloadCertificate>>,
    ),
    String,
> {
    let workload = pod.workload()?;
    let id = PodContext::identity(&workload)?;
    let certs = pod
        .certs
        .watch(&id)
        .await
        .map_err(|e| format!("no certificate for {id}: {e}"))?;
    Ok((id, certs))
}

/// Decides on each tunnel into the pod and dials it.
struct InboundConnector {
    pod: Arc<PodContext>,
}

impl Connector for InboundConnector {
    type Stream = Counted<TcpStream>;

    async fn connect(
        &self,
        peer: &SpiffeId,
        target: SocketAddr,
    ) -> Result<Counted<TcpStream>, Refusal> {
        let pod = &self.pod;
        let labels = Labels {
            direction: Direction::Inbound,
            source: Peer::principal(peer.as_str()),
            destination: pod.peer(),
            mtls: true,
        };
        let client = peer.to_string();
        let refuse = |refusal: Refusal| {
            let reason = refusal.to_string();
            tracing::info!(pod = %pod.workload, %peer, %target, %reason, "inbound HBONE denied");
            pod.metrics
                .deny(labels.clone(), &client, &target.to_string(), &reason);
            refusal
        };
        let deny = |reason: String| refuse(Refusal::denied(reason));
        // First: a tunnel to one of the proxy's own ports would come back
        // into this proxy as new traffic, whoever the peer and the policy.
        Refusal::check_target(target).map_err(refuse)?;
        let workload = pod.workload().map_err(deny)?;
        if !workload.addresses.contains(&target.ip()) {
            return Err(deny(format!(
                "{target} is not an address of {}",
                workload.uid
            )));
        }
        // Behind a waypoint, only the waypoint may come in: its L7 rules
        // cannot be skipped by dialling the pod.
        if let Some(waypoint) = pod.state.waypoint_in_front_of(&workload)
            && !pod.state.is_waypoint_identity(&waypoint, peer.as_str())
        {
            return Err(deny(bypass(&workload, &waypoint, peer.as_str())));
        }
        pod.state
            .authorize(&workload, target.port(), Some(peer.as_str()))
            .map_err(deny)?;
        let upstream = pod
            .connect(target)
            .await
            .map_err(|source| Refusal::Dial { target, source })?;
        let connection = pod.metrics.open(labels);
        Ok(Counted::new(
            upstream,
            connection,
            client,
            target.to_string(),
        ))
    }
}

/// Why a connection that did not come through `waypoint` is refused.
fn bypass(workload: &Workload, waypoint: &WaypointRef, peer: &str) -> String {
    format!(
        "{} is behind waypoint {}/{} and accepts traffic only through it ({peer} is not the \
         waypoint); call the Service's address, which goes through the waypoint",
        workload.uid, waypoint.namespace, waypoint.name
    )
}

/// Refuses plaintext whose original destination is one of the pod's capture
/// listeners. The redirect rules never send those ports here, so such a
/// connection was addressed to a listener itself (e.g. `pod-ip:15006`):
/// delivering it would dial the same listener again, and again. The
/// sidecar's HTTP endpoints (15020, 15021) stay reachable in plaintext:
/// the kubelet probes them through this path.
fn not_a_capture_port(target: SocketAddr) -> Result<(), String> {
    if braid_model::catalog::ports::is_capture_port(target.port()) {
        return Err(format!(
            "{target} is one of the proxy's own capture ports, not a destination \
             (delivering it would loop back into the proxy)"
        ));
    }
    Ok(())
}

/// Serves plaintext captured to 15006.
pub(crate) async fn serve_plaintext(listener: TcpListener, pod: Arc<PodContext>) {
    let mut connections = JoinSet::new();
    // Backoff on accept errors (out of fds: never spin), no cap and no idle
    // timeout: these are the application's own long-lived connections.
    let mut gate = braid_listen::Gate::new("inbound");
    loop {
        tokio::select! {
            ((tcp, peer), _) = gate.accept(|| listener.accept()) => {
                connections.spawn(plaintext(tcp, peer, pod.clone()));
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn plaintext(mut tcp: TcpStream, peer: SocketAddr, pod: Arc<PodContext>) {
    let target = match braid_capture::original_dst(&tcp) {
        Ok(target) => target,
        Err(error) => {
            tracing::warn!(pod = %pod.workload, %peer, %error, "inbound connection without an original destination");
            return;
        }
    };
    let source = pod
        .state
        .workload_by_ip(peer.ip())
        .map(|w| Peer {
            // Plaintext proves no identity.
            principal: "unknown".into(),
            ..Peer::workload(&w)
        })
        .unwrap_or_else(Peer::unknown);
    let labels = Labels {
        direction: Direction::Inbound,
        source,
        destination: pod.peer(),
        mtls: false,
    };
    let (client, target_text) = (peer.to_string(), target.to_string());
    let decision = not_a_capture_port(target).and_then(|()| pod.workload());
    let decision = decision.and_then(|workload| {
        if let Some(waypoint) = pod.state.waypoint_in_front_of(&workload) {
            return Err(bypass(&workload, &waypoint, "a plaintext client"));
        }
        if pod.state.mtls_mode(&workload) == MtlsMode::Strict {
            return Err("PeerAuthentication is STRICT: plaintext is refused".to_string());
        }
        pod.state.authorize(&workload, target.port(), None)
    });
    if let Err(reason) = decision {
        tracing::info!(pod = %pod.workload, %peer, %target, %reason, "inbound plaintext refused");
        pod.metrics.deny(labels, &client, &target_text, &reason);
        return;
    }
    let mut upstream = match pod.connect(target).await {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::info!(pod = %pod.workload, %peer, %target, %error, "inbound plaintext: cannot reach the pod");
            return;
        }
    };
    let connection = pod.metrics.open(labels);
    let _ = tcp.set_nodelay(true);
    match tokio::io::copy_bidirectional(&mut tcp, &mut upstream).await {
        Ok((sent, received)) => connection.finish(&client, &target_text, sent, received),
        Err(error) => {
            tracing::debug!(pod = %pod.workload, %peer, %target, %error, "inbound plaintext broke");
            connection.finish(&client, &target_text, 0, 0);
        }
    }
}

#[cfg(test)]
mod tests;
