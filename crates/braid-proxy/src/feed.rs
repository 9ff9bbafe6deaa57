//! The xDS client that keeps a [`ProxyState`] current: every workload,
//! service, authorization, peer authentication and (for proxies that read
//! HTTP) HTTP route, each delta applied as it arrives.

use braid_model::{AuthorizationPolicy, HttpRoute, PeerAuthentication, Service, Workload};
use braid_xds::{Client, ClientHandle, ControlPlaneTls, Delta, NodeInfo, Subscription};
use tokio::task::JoinHandle;

use crate::state::ProxyState;

/// Which layers a proxy applies, and so what it subscribes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layers {
    /// Connections only (the ztunnel): HTTP routes would only cost memory
    /// and pushes, as a mesh's route table grows.
    L4,
    /// Connections and HTTP (sidecars, waypoints): HTTP routes too.
    L4AndL7,
}

/// Starts the xDS client for `node_id` against `uri`, presenting `token`;
/// returns its handle (status, shutdown) and task.
pub(crate) fn start(
    uri: &str,
    node_id: &str,
    tls: Option<ControlPlaneTls>,
    token: &str,
    state: &ProxyState,
    layers: Layers,
) -> Result<(ClientHandle, JoinHandle<()>), braid_xds::Error> {
    let mut builder = Client::builder(uri.to_string(), NodeInfo::new(node_id)).bearer_token(token);
    if let Some(tls) = tls {
        builder = builder.control_plane_tls(tls);
    }
    let (w, s, a, p) = (state.clone(), state.clone(), state.clone(), state.clone());
    let r = state.clone();
    builder = builder
        .watch::<Workload>(Subscription::Wildcard, move |d: Delta<Workload>| {
            w.apply_workloads(d)
        })
        .watch::<Service>(Subscription::Wildcard, move |d: Delta<Service>| {
            s.apply_services(d)
        })
        .watch::<AuthorizationPolicy>(
            Subscription::Wildcard,
            move |d: Delta<AuthorizationPolicy>| a.apply_authorizations(d),
        )
        .watch::<PeerAuthentication>(
            Subscription::Wildcard,
            move |d: Delta<PeerAuthentication>| p.apply_peer_authentications(d),
        );
    if layers == Layers::L4AndL7 {
        builder = builder.watch::<HttpRoute>(Subscription::Wildcard, move |d: Delta<HttpRoute>| {
            r.apply_http_routes(d)
        });
    }
    Ok(builder.build()?.spawn())
}
