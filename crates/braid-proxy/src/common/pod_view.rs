//! What the admin endpoints show of a proxy that serves one pod (a sidecar,
//! a waypoint): the mesh as it sees it, its certificates and xDS state, its
//! metrics, and ready once the control plane knows the pod.

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
