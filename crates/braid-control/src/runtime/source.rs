//! Opening the configured source (`--source file|kube`): the initial load,
//! then the task that follows changes.

use std::sync::Arc;

use braid_identity::Ca;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use super::StartError;
use crate::{
    Config,
    config::SourceKind,
    metrics::Metrics,
    source::{
        Change, ConfigErrors,
        file::{DirWatcher, FileSource},
        kubernetes::{KubeSource, KubeSourceError},
    },
};

/// An opened source, loaded once, ready to follow changes.
pub(super) enum Opened {
    /// The YAML directory and its watch.
    File(FileSource, DirWatcher),
    /// The API server's watches (and the client, for status writes).
    Kube(Box<KubeSource>, kube::Client),
}

/// Opens the source `config` names and returns its whole configuration.
pub(super) async fn open(
    config: &Config,
    errors: &ConfigErrors,
) -> Result<(Opened, Vec<Change>), StartError> {
    match config.source {
        SourceKind::File => {
            let dir = config.config_dir.clone().ok_or(StartError::NoConfigDir)?;
            let source = FileSource::new(&dir, config.mesh_settings(), errors.clone());
            // Watch first, so nothing changing during the scan is missed.
            let watcher = source.watch()?;
            let (source, changes) = source.scan_off_runtime().await;
            let changes = changes?;
            tracing::info!(dir = %dir.display(), "configuration directory loaded");
            Ok((Opened::File(source, watcher), changes))
        }
        SourceKind::Kube => {
            let client = client(config).await?;
            let mut source = KubeSource::new(&client, &config.mesh_settings(), errors.clone());
            let changes = source.initial(config.kube_sync_timeout).await?;
            tracing::info!(objects = changes.len(), "Kubernetes API server listed");
            Ok((Opened::Kube(Box::new(source), client), changes))
        }
    }
}

impl Opened {
    /// The API server client, with `--source kube`.
    pub(super) fn client(&self) -> Option<kube::Client> {
        match self {
            Self::File(..) => None,
            Self::Kube(_, client) => Some(client.clone()),
        }
    }

    /// Spawns the tasks that follow the source until `changes` closes.
    /// With the API server, also writes status (the source's verdicts
    /// joined with the index's findings) and, with a CA, keeps the
    /// webhook registration's `caBundle` current.
    pub(super) fn spawn(
        self,
        config: &Config,
        ca: Option<&Ca>,
        changes: mpsc::Sender<Vec<Change>>,
        mut findings: watch::Receiver<Arc<crate::status::Findings>>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        match self {
            Self::File(source, watcher) => {
                vec![tokio::spawn(source.run(watcher, changes, metrics))]
            }
            Self::Kube(source, client) => {
                let mut status = crate::status::StatusConfig::new(
                    replica_name(config),
                    config.pod_namespace.clone(),
                );
                status.proxy = config.inject_config();
                let _ = metrics.leader.set(status.is_leader.clone());
                let leader = status.is_leader.clone();
                let mut verdicts = source.verdicts();
                let (verdicts_tx, verdicts_rx) =
                    watch::channel(Arc::new(crate::status::from_source(
                        &verdicts.borrow_and_update(),
                        &findings.borrow_and_update(),
                    )));
                let mut tasks = vec![
                    tokio::spawn(source.run(changes)),
                    // The source's verdicts and the index's findings,
                    // joined in the writer's terms.
                    tokio::spawn(async move {
                        loop {
                            tokio::select! {
                                changed = verdicts.changed() => if changed.is_err() { break },
                                changed = findings.changed() => if changed.is_err() { break },
                            }
                            let next = crate::status::from_source(
                                &verdicts.borrow_and_update(),
                                &findings.borrow_and_update(),
                            );
                            verdicts_tx.send_replace(Arc::new(next));
                        }
                    }),
                    tokio::spawn(crate::status::run(
                        client.clone(),
                        status,
                        verdicts_rx,
                        shutdown.clone(),
                    )),
                ];
                if let Some(ca) = ca {
                    tasks.push(tokio::spawn(crate::rootcerts::run(
                        client.clone(),
                        ca.trust_bundle().to_pem(),
                        leader,
                        shutdown.clone(),
                    )));
                    tasks.push(tokio::spawn(crate::inject::register::run(
                        client,
                        config.webhook_configuration.clone(),
                        ca.trust_bundle().to_pem(),
                        shutdown,
                    )));
                }
                tasks
            }
        }
    }
}

/// This replica's name in the leader election: `--pod-name`, else the host
/// name.
fn replica_name(config: &Config) -> String {
    config.pod_name.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("braid-control-{}", std::process::id()))
    })
}

/// The client `--kubeconfig` names, else the usual inference.
async fn client(config: &Config) -> Result<kube::Client, StartError> {
    let Some(path) = &config.kubeconfig else {
        return Ok(KubeSource::client().await?);
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| StartError::Kubeconfig {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let client_config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| StartError::Kubeconfig {
                path: path.clone(),
                message: e.to_string(),
            })?;
    kube::Client::try_from(client_config).map_err(|e| StartError::Kube(KubeSourceError::Client(e)))
}
