//! Counters for the admin endpoint's `/metrics` (Prometheus text format).

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

use braid_model::catalog::{Metric, metrics as catalog};

use crate::snapshot::{ResourceType, Snapshot};

/// Control-plane counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    snapshot_version: AtomicU64,
    resources: [AtomicU64; ResourceType::COUNT],
    /// Responses sent to proxies.
    pub pushes: AtomicU64,
    /// Resources sent (sum over responses).
    pub resources_sent: AtomicU64,
    /// ACKs received.
    pub acks: AtomicU64,
    /// NACKs received.
    pub nacks: AtomicU64,
    /// Streams currently open.
    pub connected: AtomicU64,
    /// Rescans of the configuration directory.
    pub config_scans: AtomicU64,
    /// Whether this replica leads status writes; set only with `--source kube`.
    pub leader: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

// === impl Metrics ===

impl Metrics {
    /// Records a newly published snapshot.
    pub fn record_snapshot(&self, snapshot: &Snapshot) {
        self.snapshot_version.store(snapshot.version, Relaxed);
        for ty in ResourceType::ALL {
            self.resources[ty as usize].store(snapshot.resources(ty).len() as u64, Relaxed);
        }
    }

    /// Renders every metric; `config_errors` is read at scrape time. Names,
    /// help and types come from [`braid_model::catalog::metrics`].
    pub fn render(&self, config_errors: usize) -> String {
        let counter = |c: &AtomicU64| c.load(Relaxed);
        let mut scalars: Vec<(&Metric, u64)> = vec![
            (
                &catalog::CONTROL_SNAPSHOT_VERSION,
                counter(&self.snapshot_version),
            ),
            (
                &catalog::CONTROL_CONNECTED_PROXIES,
                counter(&self.connected),
            ),
            (&catalog::CONTROL_XDS_PUSHES, counter(&self.pushes)),
            (
                &catalog::CONTROL_XDS_RESOURCES_SENT,
                counter(&self.resources_sent),
            ),
            (&catalog::CONTROL_XDS_ACKS, counter(&self.acks)),
            (&catalog::CONTROL_XDS_NACKS, counter(&self.nacks)),
            (&catalog::CONTROL_CONFIG_SCANS, counter(&self.config_scans)),
            (&catalog::CONTROL_CONFIG_ERRORS, config_errors as u64),
        ];
        if let Some(leader) = self.leader.get() {
            scalars.push((&catalog::CONTROL_LEADER, u64::from(leader.load(Relaxed))));
        }
        let mut out = String::new();
        for (metric, value) in scalars {
            out.push_str(&metric.header());
            let _ = writeln!(out, "{} {value}", metric.name);
        }
        let resources = &catalog::CONTROL_RESOURCES;
        out.push_str(&resources.header());
        for ty in ResourceType::ALL {
            let short = braid_api::type_url::short_name(ty.type_url()).unwrap_or("unknown");
            let _ = writeln!(
                out,
                "{}{{type=\"{short}\"}} {}",
                resources.name,
                self.resources[ty as usize].load(Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests;
