//! A pod's three listeners, shared by the ztunnel (one set per captured
//! pod) and the sidecar (its own pod): outbound capture on 15001, plaintext
//! inbound on 15006 and HBONE inbound on 15008, all bound inside the pod's
//! network namespace, each served by its stack.

use std::{net::SocketAddr, sync::Arc};

use braid_capture::{ListenOptions, NetNs};
use braid_identity::TrustBundle;
use tokio::{net::TcpListener, task::JoinSet};

use crate::{
    l4::{INBOUND_PLAINTEXT_PORT, OUTBOUND_PORT, inbound},
    l7::Senders,
    outbound::{self, Outbound},
    upstream::PodContext,
};

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

/// Serves `listeners` for `pod`, outbound HTTP with `http` when the proxy
/// is HTTP-aware; dropping the set stops them and every connection they
/// took.
pub(crate) fn serve(
    pod: Arc<PodContext>,
    listeners: Listeners,
    bundle: TrustBundle,
    http: Option<Senders>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let outbound = Arc::new(Outbound {
        pod: pod.clone(),
        http,
    });
    tasks.spawn(outbound::serve(listeners.outbound, outbound));
    tasks.spawn(inbound::serve_plaintext(listeners.plaintext, pod.clone()));
    tasks.spawn(inbound::serve_hbone(listeners.hbone, pod, bundle));
    tasks
}
