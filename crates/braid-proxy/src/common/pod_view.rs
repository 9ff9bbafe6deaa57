//! What the two one-pod compositions (sidecar, waypoint) share: connecting
//! as their pod and building its context ([`OnePod`]), and what their admin
//! endpoints show ([`PodView`]): the mesh as the proxy sees it, its
//! certificates and xDS state, its metrics, and ready once the control
//! plane knows the pod.

use braid_identity::CertificateManager;
use braid_xds::ClientHandle;

use crate::{admin::AdminView, state::ProxyState, telemetry::Metrics};

/// The admin view of a one-pod proxy.
pub(crate) struct PodView {
    /// `<namespace>/<pod>`.
    pub(crate) pod: String,
    pub(crate) state: ProxyState,
    pub(crate) metrics: Metrics,
    pub(crate) certs: CertificateManager,
    pub(crate) xds: ClientHandle,
    /// Fields the composition adds to the config dump (a waypoint's name).
    pub(crate) extra: serde_json::Map<String, serde_json::Value>,
}

impl AdminView for PodView {
    fn config_dump(&self) -> serde_json::Value {
        let xds = self.xds.status();
        let mut dump = super::state_json(&self.state);
        dump["pod"] = self.pod.clone().into();
        dump["certificates"] = super::certificates_json(&self.certs);
        dump["xds"] =
            serde_json::json!({"connected": xds.is_connected(), "synced": xds.is_synced()});
        for (key, value) in &self.extra {
            dump[key] = value.clone();
        }
        dump
    }

    fn metrics(&self) -> String {
        self.metrics.render(&super::certificate_gauges(&self.certs))
    }

    fn ready(&self) -> Result<(), String> {
        super::xds_ready(&self.xds)?;
        if self.state.workload(&self.pod).is_none() {
            return Err(format!("the control plane does not know pod {}", self.pod));
        }
        Ok(())
    }
}

/// What a one-pod proxy (sidecar, waypoint) holds once connected: its pod's
/// context and the mesh link behind it.
pub(crate) struct OnePod {
    /// The pod's context, for its listeners.
    pub(crate) pod: std::sync::Arc<crate::upstream::PodContext>,
    /// The mesh's roots, for serving HBONE.
    pub(crate) bundle: braid_identity::TrustBundle,
    mesh: super::Mesh,
    metrics: Metrics,
}

/// Whether `value` is `<namespace>/<name>` with both parts set.
pub(crate) fn is_namespaced(value: &str) -> bool {
    value
        .split_once('/')
        .is_some_and(|(ns, name)| !ns.is_empty() && !name.is_empty())
}

impl OnePod {
    /// Checks `--pod`, connects to the control plane as `<role>~<pod>` and
    /// builds the pod's context in `netns`.
    pub(crate) fn connect(
        args: &super::MeshArgs,
        pod: &str,
        role: &str,
        netns: braid_capture::NetNs,
        this_waypoint: Option<braid_model::WaypointRef>,
        mark: Option<u32>,
    ) -> Result<Self, super::StartError> {
        if !is_namespaced(pod) {
            return Err(super::StartError::Pod(pod.to_string()));
        }
        let mesh =
            super::Mesh::connect(args, &format!("{role}~{pod}"), crate::feed::Layers::L4AndL7)?;
        let metrics = Metrics::default();
        let context = std::sync::Arc::new(crate::upstream::PodContext {
            workload: pod.to_string(),
            netns,
            state: mesh.state.clone(),
            certs: mesh.certs.clone(),
            pool: crate::hbone::Pool::new(mesh.bundle.clone(), crate::hbone::Settings::default()),
            metrics: metrics.clone(),
            origin: 0,
            this_waypoint,
            mark,
        });
        Ok(Self {
            pod: context,
            bundle: mesh.bundle.clone(),
            mesh,
            metrics,
        })
    }

    /// Serves the admin, metrics and readiness endpoints (`extra` added to
    /// the config dump); the state, the endpoints' addresses and what keeps
    /// running.
    pub(crate) async fn serve_endpoints(
        self,
        args: &super::EndpointArgs,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(ProxyState, [std::net::SocketAddr; 3], super::Running), super::StartError> {
        let super::Mesh {
            certs,
            state,
            xds,
            xds_task,
            ..
        } = self.mesh;
        let view: std::sync::Arc<dyn AdminView> = std::sync::Arc::new(PodView {
            pod: self.pod.workload.clone(),
            state: state.clone(),
            metrics: self.metrics,
            certs: certs.clone(),
            xds: xds.clone(),
            extra,
        });
        let (addrs, mut tasks) = super::serve_endpoints(args, view).await?;
        tasks.push(xds_task);
        Ok((state, addrs, super::Running { xds, certs, tasks }))
    }
}
