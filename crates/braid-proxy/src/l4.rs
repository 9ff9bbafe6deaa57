//! The L4 proxy for one pod, shared by the ztunnel (one per captured pod)
//! and the sidecar (its own pod): outbound capture on 15001, plaintext
//! inbound on 15006 and HBONE inbound on 15008, all bound inside the pod's
//! network namespace. Straight-line async per connection.

use std::{net::SocketAddr, sync::Arc};

use braid_capture::{ListenOptions, NetNs};
use braid_identity::TrustBundle;
use tokio::{net::TcpListener, task::JoinSet};

pub(crate) mod inbound;
pub(crate) mod outbound;
pub(crate) mod pod;
pub(crate) mod upstream;

pub(crate) use pod::PodContext;

/// Where captured outbound traffic lands.
pub const OUTBOUND_PORT: u16 = braid_model::catalog::ports::OUTBOUND.number;
/// Where captured plaintext inbound traffic lands.
pub const INBOUND_PLAINTEXT_PORT: u16 = braid_model::catalog::ports::INBOUND_PLAINTEXT.number;

/// A pod's three listeners, bound and not yet served.
pub(crate) struct Listeners {
    outbound: TcpListener,
    plaintext: TcpListener,
    hbone: TcpListener,
}

/// Binds the three listeners inside `netns` (on every address, so both the
/// redirected loopback and the pod's own address reach them).
pub(crate) fn bind(netns: &NetNs, workload: &str) -> Result<Listeners, String> {
    let bind = |port: u16| -> Result<TcpListener, String> {
        let addr = SocketAddr::from(([0, 0, 0, 0], port));
        let listener = netns
            .bind_tcp(addr, &ListenOptions::default())
            .map_err(|e| format!("pod {workload}: {e}"))?;
        TcpListener::from_std(listener).map_err(|e| format!("pod {workload}: port {port}: {e}"))
    };
    Ok(Listeners {
        outbound: bind(OUTBOUND_PORT)?,
        plaintext: bind(INBOUND_PLAINTEXT_PORT)?,
        hbone: bind(crate::hbone::DEFAULT_PORT)?,
    })
}

/// Serves `listeners` for `pod`; dropping the set stops them and every
/// connection they took.
pub(crate) fn serve(
    pod: Arc<PodContext>,
    listeners: Listeners,
    bundle: TrustBundle,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(outbound::serve(listeners.outbound, pod.clone()));
    tasks.spawn(inbound::serve_plaintext(listeners.plaintext, pod.clone()));
    tasks.spawn(inbound::serve_hbone(listeners.hbone, pod, bundle));
    tasks
}
