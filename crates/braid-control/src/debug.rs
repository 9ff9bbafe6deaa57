//! Read-only views of the control plane for operators: connected proxies,
//! configuration errors and workloads' mode status. Served as JSON by the admin endpoint and over gRPC
//! (`braid.admin.v1alpha1.ControlPlaneDebug`, on the xDS port) for braidctl.

use std::{sync::Arc, time::SystemTime};

use braid_api::braid::{
    admin::v1alpha1::{self as api, control_plane_debug_server::ControlPlaneDebug},
    workload::v1alpha1 as wl,
};
use prost::Message as _;
use serde::Serialize;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::{
    modes::{self, ConnectedProxies, PendingRestart, ProxyKind, WorkloadMode},
    snapshot::{ResourceType, Snapshot},
    source::{ConfigError, ConfigErrors},
    xds::{Registry, stream::TypeStatus},
};

/// One connected proxy, for `proxy-status`.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyView {
    /// Node id the proxy sent.
    pub node_id: String,
    /// Remote address.
    pub peer: String,
    /// Client user agent.
    pub user_agent: String,
    /// When the stream opened.
    pub connected_at: SystemTime,
    /// Per type URL sync state.
    pub types: Vec<TypeStatus>,
}

/// Everything `proxy-status` shows.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyStatusView {
    /// Newest published configuration version.
    pub current_version: u64,
    /// Connected proxies.
    pub proxies: Vec<ProxyView>,
}

/// Everything `braidctl status` shows.
#[derive(Clone, Debug, Serialize)]
pub struct ModeStatusView {
    /// The configuration version the workloads were read from.
    pub current_version: u64,
    /// One row per workload, sorted by namespace and name.
    pub workloads: Vec<WorkloadMode>,
}

/// The debug state shared by the admin endpoint and the gRPC debug service.
#[derive(Clone, Debug)]
pub struct DebugState {
    /// Open xDS streams.
    pub registry: Arc<Registry>,
    /// Published snapshots.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Current configuration errors.
    pub errors: ConfigErrors,
    /// The effective configuration, for `/debug/config`.
    pub config: Arc<crate::Config>,
}

// === impl DebugState ===

impl DebugState {
    /// The current proxy status.
    pub fn proxy_status(&self) -> ProxyStatusView {
        let current_version = self.snapshots.borrow().version;
        let mut proxies = Vec::new();
        self.registry.for_each(|s| {
            proxies.push(ProxyView {
                node_id: s.node_id.clone(),
                peer: s.peer.clone(),
                user_agent: s.user_agent.clone(),
                connected_at: s.connected_at,
                types: s.status(current_version),
            });
        });
        ProxyStatusView {
            current_version,
            proxies,
        }
    }

    /// Every published workload's mode status; only `namespace`'s when given.
    pub fn mode_status(&self, namespace: Option<&str>) -> ModeStatusView {
        let snapshot = self.snapshots.borrow().clone();
        let workloads: Vec<braid_model::Workload> = snapshot
            .resources(ResourceType::Workload)
            .values()
            .filter(|r| namespace.is_none_or(|ns| r.name.starts_with(&format!("{ns}/"))))
            .filter_map(|r| decode_workload(&r.body.value))
            .collect();
        let mut node_ids = Vec::new();
        self.registry.for_each(|s| node_ids.push(s.node_id.clone()));
        let proxies = ConnectedProxies::from_node_ids(node_ids.iter().map(String::as_str));
        ModeStatusView {
            current_version: snapshot.version,
            workloads: modes::rows(&workloads, &proxies, namespace),
        }
    }
}

/// A published Workload back in the model. It was encoded from the model by
/// the index, so a failure is a bug: logged and skipped.
fn decode_workload(bytes: &[u8]) -> Option<braid_model::Workload> {
    let decoded = wl::Workload::decode(bytes)
        .map_err(|e| e.to_string())
        .and_then(|w| braid_model::Workload::try_from(w).map_err(|e| e.to_string()));
    decoded
        .inspect_err(|e| tracing::error!(error = %e, "cannot decode a published workload"))
        .ok()
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

fn version(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn config_error_to_proto(e: ConfigError) -> api::ConfigError {
    api::ConfigError {
        file: e.file.display().to_string(),
        document: e.document.and_then(|d| i32::try_from(d).ok()).unwrap_or(-1),
        field: e.field,
        message: e.message,
    }
}

fn workload_mode_to_proto(w: WorkloadMode) -> api::WorkloadModeStatus {
    let pending = match w.pending {
        PendingRestart::None => api::PendingRestart::None,
        PendingRestart::ToGetSidecar => api::PendingRestart::ToGetSidecar,
        PendingRestart::ToLeaveSidecar => api::PendingRestart::ToLeaveSidecar,
        PendingRestart::ToJoinAmbient => api::PendingRestart::ToJoinAmbient,
    };
    api::WorkloadModeStatus {
        namespace: w.namespace,
        name: w.name,
        node: w.node,
        effective_mode: braid_api::convert::mode_to_proto(w.effective).into(),
        actual_mode: braid_api::convert::mode_to_proto(w.actual).into(),
        pending: pending.into(),
        proxy: w.proxy.map(|p| api::ServingProxy {
            kind: match p.kind {
                ProxyKind::Sidecar => api::ProxyKind::Sidecar,
                ProxyKind::Ztunnel => api::ProxyKind::Ztunnel,
            }
            .into(),
            node_id: p.node_id,
        }),
    }
}

#[tonic::async_trait]
impl ControlPlaneDebug for DebugState {
    async fn proxy_status(
        &self,
        _request: Request<api::ProxyStatusRequest>,
    ) -> Result<Response<api::ProxyStatusResponse>, Status> {
        let view = DebugState::proxy_status(self);
        let proxies = view
            .proxies
            .into_iter()
            .map(|p| api::ProxyStatus {
                node_id: p.node_id,
                peer: p.peer,
                connected_at: Some(timestamp(p.connected_at)),
                user_agent: p.user_agent,
                types: p
                    .types
                    .into_iter()
                    .map(|t| api::TypeStatus {
                        type_url: t.type_url.to_string(),
                        acked_version: version(t.acked_version),
                        sent_version: version(t.sent_version),
                        in_sync: t.in_sync,
                        resources: u32::try_from(t.resources).unwrap_or(u32::MAX),
                        wildcard: t.wildcard,
                        last_nack: t.last_nack.map(|n| api::Nack {
                            nonce: n.nonce,
                            version: n.version.to_string(),
                            reason: n.reason,
                            at: Some(timestamp(n.at)),
                        }),
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(api::ProxyStatusResponse {
            current_version: view.current_version.to_string(),
            proxies,
        }))
    }

    async fn config_errors(
        &self,
        _request: Request<api::ConfigErrorsRequest>,
    ) -> Result<Response<api::ConfigErrorsResponse>, Status> {
        let errors = self
            .errors
            .list()
            .into_iter()
            .map(config_error_to_proto)
            .collect();
        Ok(Response::new(api::ConfigErrorsResponse { errors }))
    }

    async fn mode_status(
        &self,
        request: Request<api::ModeStatusRequest>,
    ) -> Result<Response<api::ModeStatusResponse>, Status> {
        let namespace = request.into_inner().namespace;
        let namespace = (!namespace.is_empty()).then_some(namespace.as_str());
        let view = DebugState::mode_status(self, namespace);
        Ok(Response::new(api::ModeStatusResponse {
            current_version: view.current_version.to_string(),
            workloads: view
                .workloads
                .into_iter()
                .map(workload_mode_to_proto)
                .collect(),
        }))
    }
}
