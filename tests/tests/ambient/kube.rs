//! The same configuration, applied to a real API server instead of written
//! to a directory: the ambient end-to-end run with `--source kube`.
//!
//! The test plays the kubelet: a pod's `status` (phase, IPs, readiness) is
//! written through the status subresource after the pod is applied, and a
//! pod whose spec changes (a restart with or without a sidecar) is deleted
//! and created again, as a rollout would.

use std::{collections::BTreeMap, path::PathBuf, sync::Mutex};

use super::{EARLY, LATE, NAMESPACES};

/// The kube tier's harness: the shared cluster and its kubectl.
#[path = "../kube/support.rs"]
mod api;

/// A test API server (`cargo xtask test` exports where it is).
pub struct ApiServer {
    /// Its admin kubeconfig.
    pub kubeconfig: PathBuf,
    cluster: &'static api::Cluster,
    /// What each "file" applied, to delete it again.
    applied: Mutex<BTreeMap<String, String>>,
}

impl ApiServer {
    /// The API server of `BRAID_TEST_KUBECONFIG`, with the Braid CRDs
    /// installed; `None` when there is none (a failure under `CI=true`).
    pub fn from_env() -> Option<Self> {
        let cluster = api::cluster()?;
        cluster
            .install_crds()
            .unwrap_or_else(|e| panic!("installing the CRDs: {e:#}"));
        let server = Self {
            kubeconfig: cluster.kubeconfig.clone(),
            cluster,
            applied: Mutex::new(BTreeMap::new()),
        };
        // The proxy-token Secrets live in braid-system.
        server.apply_objects("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: braid-system\n");
        Some(server)
    }

    /// Applies the objects of one configuration "file".
    pub fn apply(&self, file: &str, text: &str) {
        let mut others = Vec::new();
        for doc in text.split("---\n").filter(|d| !d.trim().is_empty()) {
            if doc.contains("\nkind: Pod\n") {
                self.apply_pod(doc);
            } else {
                others.push(doc);
            }
        }
        if !others.is_empty() {
            self.apply_objects(&others.join("---\n"));
        }
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(file.to_string(), text.to_string());
    }

    /// Deletes what [`ApiServer::apply`] applied for `file`.
    pub fn delete(&self, file: &str) {
        let text = self
            .applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(file)
            .unwrap_or_else(|| panic!("{file} was never applied"));
        self.kubectl(
            &["delete", "--ignore-not-found", "--wait=false", "-f", "-"],
            Some(&text),
        )
        .unwrap_or_else(|e| panic!("deleting {file}: {e}"));
    }

    /// Removes the test's namespaces (their pods first: with no kubelet,
    /// nobody else would finish deleting them).
    pub fn clean_up(&self) {
        let extra = [LATE.namespace, EARLY.namespace];
        for ns in NAMESPACES.iter().map(|(ns, _)| *ns).chain(extra) {
            let _ = self.kubectl(
                &[
                    "delete",
                    "pods",
                    "--all",
                    "--namespace",
                    ns,
                    "--grace-period=0",
                    "--force",
                ],
                None,
            );
            let _ = self.kubectl(&["delete", "namespace", ns, "--wait=false"], None);
        }
    }

    fn apply_objects(&self, yaml: &str) {
        self.kubectl(&["apply", "-f", "-"], Some(yaml))
            .unwrap_or_else(|e| panic!("kubectl apply: {e}\n{yaml}"));
    }

    /// Applies a pod's spec, re-creating the pod when the spec cannot change
    /// in place, then writes its status as the kubelet would.
    fn apply_pod(&self, doc: &str) {
        let (spec, status) = doc
            .split_once("\nstatus:\n")
            .unwrap_or_else(|| panic!("a pod without status:\n{doc}"));
        let field = |key: &str| {
            spec.lines()
                .find_map(|l| l.strip_prefix(&format!("  {key}: ")))
                .unwrap_or_else(|| panic!("no {key} in\n{spec}"))
                .to_string()
        };
        let (name, namespace) = (field("name"), field("namespace"));
        // The API server admits a pod only when its ServiceAccount exists.
        self.apply_objects(&format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {}\n  namespace: {namespace}\n",
            field("serviceAccountName")
        ));
        if let Err(e) = self.kubectl(&["apply", "-f", "-"], Some(spec)) {
            assert!(
                e.contains("Forbidden: pod updates may not"),
                "applying pod {namespace}/{name}: {e}"
            );
            self.kubectl(
                &[
                    "delete",
                    "pod",
                    &name,
                    "--namespace",
                    &namespace,
                    "--grace-period=0",
                    "--force",
                ],
                None,
            )
            .unwrap_or_else(|e| panic!("re-creating pod {namespace}/{name}: {e}"));
            self.apply_objects(spec);
        }
        // kubectl takes a YAML patch as well as JSON.
        let patch = format!("status:\n{status}");
        self.kubectl(
            &[
                "patch",
                "pod",
                &name,
                "--namespace",
                &namespace,
                "--subresource=status",
                "--type=merge",
                "-p",
                &patch,
            ],
            None,
        )
        .unwrap_or_else(|e| panic!("writing the status of pod {namespace}/{name}: {e}"));
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        match stdin {
            Some(text) => self.cluster.kubectl_stdin(args, text),
            None => self.cluster.kubectl(args),
        }
        .map_err(|e| format!("{e:#}"))
    }
}
