//! Counters for the admin endpoint's `/metrics` (Prometheus text format).

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

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

    /// Renders every metric; `config_errors` is read at scrape time.
    pub fn render(&self, config_errors: usize) -> String {
        let counter = |c: &AtomicU64| c.load(Relaxed);
        let scalars: [(&str, &str, &str, u64); 8] = [
            (
                "braid_control_snapshot_version",
                "gauge",
                "Version of the newest published configuration.",
                counter(&self.snapshot_version),
            ),
            (
                "braid_control_connected_proxies",
                "gauge",
                "xDS streams currently open.",
                counter(&self.connected),
            ),
            (
                "braid_control_xds_pushes_total",
                "counter",
                "xDS responses sent.",
                counter(&self.pushes),
            ),
            (
                "braid_control_xds_resources_sent_total",
                "counter",
                "Resources sent in xDS responses.",
                counter(&self.resources_sent),
            ),
            (
                "braid_control_xds_acks_total",
                "counter",
                "ACKs received.",
                counter(&self.acks),
            ),
            (
                "braid_control_xds_nacks_total",
                "counter",
                "NACKs received.",
                counter(&self.nacks),
            ),
            (
                "braid_control_config_scans_total",
                "counter",
                "Rescans of the configuration directory (one per settled burst of file events).",
                counter(&self.config_scans),
            ),
            (
                "braid_control_config_errors",
                "gauge",
                "Configuration documents currently rejected.",
                config_errors as u64,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in scalars {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        if let Some(leader) = self.leader.get() {
            let _ = writeln!(
                out,
                "# HELP braid_control_leader 1 while this replica holds the Lease and writes CRD status.\n# TYPE braid_control_leader gauge\nbraid_control_leader {}",
                u8::from(leader.load(Relaxed))
            );
        }
        let _ = writeln!(
            out,
            "# HELP braid_control_resources Resources in the current configuration.\n# TYPE braid_control_resources gauge"
        );
        for ty in ResourceType::ALL {
            let short = braid_api::type_url::short_name(ty.type_url()).unwrap_or("unknown");
            let _ = writeln!(
                out,
                "braid_control_resources{{type=\"{short}\"}} {}",
                self.resources[ty as usize].load(Relaxed)
            );
        }
        out
    }
}
