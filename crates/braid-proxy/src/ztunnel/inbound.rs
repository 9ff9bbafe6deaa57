//! A pod's inbound traffic: HBONE on 15008, verified and authorized by the
//! peer's identity; plaintext captured to 15006, refused under STRICT and
//! otherwise authorized as an unauthenticated source. Both connect to the
//! pod's port from inside its namespace.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use braid_identity::{SpiffeId, TrustBundle};
use braid_model::MtlsMode;
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

use super::pod::PodContext;
use crate::hbone::{Connector, Refusal, Server, Settings};

/// How often to look again for a pod the control plane has not sent yet.
const WORKLOAD_POLL: Duration = Duration::from_millis(100);

/// Serves HBONE on `listener` as the pod's identity. Waits until the
/// workload and its certificate are known; connections queue meanwhile.
pub(crate) async fn serve_hbone(listener: TcpListener, pod: Arc<PodContext>, bundle: TrustBundle) {
    let (id, certs) = loop {
        match identity_and_certs(&pod).await {
            Ok(ready) => break ready,
            Err(reason) => {
                tracing::debug!(pod = %pod.workload, %reason, "inbound HBONE waits");
                tokio::time::sleep(WORKLOAD_POLL).await;
            }
        }
    };
    let connector = InboundConnector { pod: pod.clone() };
    match Server::rotating(certs, bundle, connector, Settings::default()) {
        Ok(server) => {
            tracing::debug!(pod = %pod.workload, %id, "inbound HBONE ready");
            server.serve(listener).await
        }
        Err(error) => tracing::error!(pod = %pod.workload, %error, "cannot serve HBONE"),
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
    type Stream = TcpStream;

    async fn connect(&self, peer: &SpiffeId, target: SocketAddr) -> Result<TcpStream, Refusal> {
        let pod = &self.pod;
        let workload = pod.workload().map_err(Refusal::denied)?;
        if !workload.addresses.contains(&target.ip()) {
            return Err(Refusal::denied(format!(
                "{target} is not an address of {}",
                workload.uid
            )));
        }
        if let Err(reason) = pod
            .state
            .authorize(&workload, target.port(), Some(peer.as_str()))
        {
            tracing::info!(pod = %pod.workload, %peer, %target, %reason, "inbound HBONE denied");
            return Err(Refusal::denied(reason));
        }
        pod.connect(target)
            .await
            .map_err(|source| Refusal::Dial { target, source })
    }
}

/// Serves plaintext captured to 15006.
pub(crate) async fn serve_plaintext(listener: TcpListener, pod: Arc<PodContext>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(plaintext(tcp, peer, pod.clone()));
                }
                Err(error) => {
                    tracing::warn!(pod = %pod.workload, %error, "inbound accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
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
    let decision = pod.workload().and_then(|workload| {
        if pod.state.mtls_mode(&workload) == MtlsMode::Strict {
            return Err("PeerAuthentication is STRICT: plaintext is refused".to_string());
        }
        pod.state.authorize(&workload, target.port(), None)
    });
    if let Err(reason) = decision {
        tracing::info!(pod = %pod.workload, %peer, %target, %reason, "inbound plaintext refused");
        return;
    }
    let mut upstream = match pod.connect(target).await {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::info!(pod = %pod.workload, %peer, %target, %error, "inbound plaintext: cannot reach the pod");
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    match tokio::io::copy_bidirectional(&mut tcp, &mut upstream).await {
        Ok((received, sent)) => {
            tracing::debug!(pod = %pod.workload, %peer, %target, received, sent, "inbound plaintext done")
        }
        Err(error) => {
            tracing::debug!(pod = %pod.workload, %peer, %target, %error, "inbound plaintext broke")
        }
    }
}
