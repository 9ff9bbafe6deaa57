//! The xDS client that keeps a [`ProxyState`] current: every workload,
//! service, authorization, peer authentication and HTTP route, each delta
//! applied as it arrives.

use braid_model::{AuthorizationPolicy, HttpRoute, PeerAuthentication, Service, Workload};
use braid_xds::{Client, ClientHandle, ControlPlaneTls, Delta, NodeInfo, Subscription};
use tokio::task::JoinHandle;

use crate::state::ProxyState;

/// Starts the xDS client for `node_id` against `uri`, presenting `token`;
/// returns its handle (status, shutdown) and task.
pub(crate) fn start(
    uri: &str,
    node_id: &str,
    tls: Option<ControlPlaneTls>,
    token: &str,
    state: &ProxyState,
) -> Result<(ClientHandle, JoinHandle<()>), braid_xds::Error> {
    let mut builder = Client::builder(uri.to_string(), NodeInfo::new(node_id)).bearer_token(token);
    if let Some(tls) = tls {
        builder = builder.control_plane_tls(tls);
    }
    let (w, s, a, p) = (state.clone(), state.clone(), state.clone(), state.clone());
    let r = state.clone();
    let client = builder
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
        )
        .watch::<HttpRoute>(Subscription::Wildcard, move |d: Delta<HttpRoute>| {
            r.apply_http_routes(d)
        })
        .build()?;
    Ok(client.spawn())
}
