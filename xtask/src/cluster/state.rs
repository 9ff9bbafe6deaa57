//! `cluster.json`: what `up` started, so `down`, `env` and `status` (and
//! tests) know the processes, ports and paths without guessing.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::flags::Ports;

/// The contents of `<run dir>/cluster.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ClusterState {
    pub(super) kubernetes_version: String,
    pub(super) etcd_version: String,
    pub(super) dir: PathBuf,
    pub(super) bin_dir: PathBuf,
    pub(super) kubeconfig: PathBuf,
    /// The API server's URL, `https://127.0.0.1:<port>`.
    pub(super) server: String,
    pub(super) ports: Ports,
    /// In start order; `down` stops them in reverse.
    pub(super) processes: Vec<Proc>,
}

/// One background process `up` started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Proc {
    pub(super) name: String,
    pub(super) pid: i32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot): with the PID
    /// it names this process and no later one that reuses the PID.
    pub(super) start_time: u64,
    pub(super) log: PathBuf,
}

impl ClusterState {
    pub(super) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))
    }

    /// Writes the file atomically (temp file, then rename).
    pub(super) fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(self).context("cannot encode cluster.json")?;
        text.push('\n');
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in super::super) fn sample() -> ClusterState {
        ClusterState {
            kubernetes_version: "v1.34.4".into(),
            etcd_version: "v3.6.4".into(),
            dir: "/run/k".into(),
            bin_dir: "/cache/v1.34.4/bin".into(),
            kubeconfig: "/run/k/kubeconfig".into(),
            server: "https://127.0.0.1:6443".into(),
            ports: Ports {
                etcd_client: 2001,
                etcd_peer: 2002,
                apiserver: 6443,
                controller_manager: 10257,
            },
            processes: vec![
                Proc {
                    name: "etcd".into(),
                    pid: 100,
                    start_time: 5,
                    log: "/run/k/logs/etcd.log".into(),
                },
                Proc {
                    name: "kube-apiserver".into(),
                    pid: 101,
                    start_time: 6,
                    log: "/run/k/logs/kube-apiserver.log".into(),
                },
            ],
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cluster.json");
        let state = sample();
        state.save(&path).expect("save");
        assert_eq!(ClusterState::load(&path).expect("load"), state);
        assert!(!path.with_extension("json.tmp").exists());
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(json["processes"][1]["pid"], 101);
        assert_eq!(json["ports"]["apiserver"], 6443);
    }

    #[test]
    fn a_broken_file_names_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cluster.json");
        std::fs::write(&path, "{").expect("write");
        let err = ClusterState::load(&path).expect_err("broken");
        assert!(format!("{err:#}").contains("cluster.json"));
    }
}
