//! One tunnel into the waypoint: is its target fronted by this waypoint,
//! what does it speak, and which stack serves it.
//!
//! The HBONE server splices each tunnel to the stream a [`Connector`]
//! returns; the waypoint returns one end of an in-memory pipe and serves
//! the other end itself, so the tunnel's bytes reach the HTTP stack like a
//! captured connection reaches a sidecar's.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use braid_identity::SpiffeId;
use braid_model::WaypointRef;
use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt as _, DuplexStream},
    time::{Instant, timeout_at},
};

use crate::{
    detect::{self, Protocol, Verdict, prefixed::Prefixed},
    hbone::{Connector, Refusal},
    l7::{self, Caller, Senders},
    state::Declared,
    telemetry::{Direction, Labels, Peer},
    upstream::{PodContext, Route, UpstreamError},
};

/// The in-memory pipe between a tunnel and its stack.
const PIPE_BYTES: usize = 64 * 1024;

/// How long a tunnel's client may stay silent before it is proxied as
/// bytes. Server-first protocols through a waypoint should declare their
/// port's protocol (`appProtocol: tcp`), which skips the wait.
const DETECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Most bytes read to tell HTTP from anything else.
const MAX_PREFIX: usize = 64;

/// Takes the waypoint's tunnels.
pub(super) struct Tunnels {
    pub(super) pod: Arc<PodContext>,
    pub(super) senders: Senders,
    /// The waypoint this proxy is.
    pub(super) this: WaypointRef,
}

impl Connector for Tunnels {
    type Stream = DuplexStream;

    async fn connect(&self, peer: &SpiffeId, target: SocketAddr) -> Result<DuplexStream, Refusal> {
        let pod = &self.pod;
        let refuse = |refusal: Refusal| {
            let reason = refusal.to_string();
            tracing::info!(pod = %pod.workload, %peer, %target, %reason, "waypoint tunnel refused");
            let labels = Labels {
                direction: Direction::Inbound,
                source: Peer::principal(peer.as_str()),
                destination: pod.peer(),
                mtls: true,
            };
            pod.metrics
                .deny(labels, peer.as_str(), &target.to_string(), &reason);
            refusal
        };
        Refusal::check_target(target).map_err(refuse)?;
        let this = format!("{}/{}", self.this.namespace, self.this.name);
        match pod.state.waypoint_of(target) {
            Some(waypoint) if waypoint == self.this => {}
            Some(other) => {
                return Err(refuse(Refusal::denied(format!(
                    "{target} is served by waypoint {}/{}, not by {this}",
                    other.namespace, other.name
                ))));
            }
            None => {
                return Err(refuse(Refusal::denied(format!(
                    "{target} is not fronted by waypoint {this}: no braid.dev/waypoint label names it"
                ))));
            }
        }
        let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
        let caller = Caller {
            namespace: peer.namespace().to_string(),
            peer: Peer::principal(peer.as_str()),
        };
        tokio::spawn(serve(
            ours,
            pod.clone(),
            self.senders.clone(),
            caller,
            target,
        ));
        Ok(theirs)
    }
}

/// Serves one tunnel whose target is `target`: HTTP request by request, or
/// as bytes.
async fn serve(
    mut stream: DuplexStream,
    pod: Arc<PodContext>,
    senders: Senders,
    caller: Caller,
    target: SocketAddr,
) {
    let declared = pod.state.declared_protocol(target);
    let (prefix, protocol) = match declared {
        Some(Declared::Opaque) => (Bytes::new(), Protocol::Opaque),
        _ => detect_protocol(&mut stream).await,
    };
    let io = Prefixed::new(prefix, stream);
    // The tunnel's peer is identified by its certificate, not an address.
    let client = SocketAddr::from(([0, 0, 0, 0], 0));
    match protocol {
        Protocol::Http1 | Protocol::Http2 => {
            l7::serve_outbound(io, protocol, pod, senders, target, client, Some(caller)).await;
        }
        Protocol::Opaque => {
            if let Err(reason) = relay(io, &pod, &caller, target).await {
                tracing::info!(pod = %pod.workload, source = %caller.peer.principal, %target, %reason, "waypoint tunnel failed");
            }
        }
    }
}

/// Reads the tunnel's first bytes until they tell HTTP from anything else.
async fn detect_protocol(stream: &mut DuplexStream) -> (Bytes, Protocol) {
    let deadline = Instant::now() + DETECT_TIMEOUT;
    let mut prefix = BytesMut::with_capacity(MAX_PREFIX);
    loop {
        if let Verdict::Decided(protocol) = detect::classify(&prefix) {
            return (prefix.freeze(), protocol);
        }
        if prefix.len() >= MAX_PREFIX {
            return (prefix.freeze(), Protocol::Opaque);
        }
        match timeout_at(deadline, stream.read_buf(&mut prefix)).await {
            Ok(Ok(read)) if read > 0 => {}
            // Closed, broken or silent: whatever came is passed on as bytes.
            _ => return (prefix.freeze(), Protocol::Opaque),
        }
    }
}

/// Proxies a tunnel that does not speak HTTP to its destination as bytes.
async fn relay(
    mut io: Prefixed<DuplexStream>,
    pod: &PodContext,
    caller: &Caller,
    target: SocketAddr,
) -> Result<(), UpstreamError> {
    let route = Route::resolve(pod, target)?;
    let mut upstream = route.dial(pod).await?;
    let mut labels = route.labels(pod);
    labels.source = caller.peer.clone();
    let connection = pod.metrics.open(labels);
    let (client, upstream_name) = (caller.peer.principal.clone(), route.target.to_string());
    match tokio::io::copy_bidirectional(&mut io, &mut upstream).await {
        Ok((sent, received)) => connection.finish(&client, &upstream_name, sent, received),
        Err(error) => {
            tracing::debug!(pod = %pod.workload, %target, %error, "waypoint tunnel broke");
            connection.finish(&client, &upstream_name, 0, 0);
        }
    }
    Ok(())
}
