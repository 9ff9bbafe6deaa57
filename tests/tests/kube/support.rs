//! The real Kubernetes API server the tests in this binary share.
//!
//! `cargo xtask test` starts one cluster (`cargo xtask cluster up`) for the
//! whole run and exports `BRAID_TEST_KUBECONFIG` and `BRAID_TEST_KUBECTL`;
//! `eval "$(cargo xtask cluster env)"` does the same for a cluster started by
//! hand. Without them the tests skip themselves, except under `CI=true`,
//! where a missing cluster is a failure. Tests share the cluster, so each
//! works in namespaces of its own ([`Cluster::namespace`]).

#![allow(unreachable_pub, dead_code)]

use std::{
    io::Write as _,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// A running API server and the kubectl that matches it.
#[derive(Debug)]
pub struct Cluster {
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The pinned kubectl.
    pub kubectl_path: PathBuf,
    crds: OnceLock<Result<(), String>>,
}

/// A namespace made for one test; deleted (without waiting) on drop.
#[derive(Debug)]
pub struct TestNamespace {
    name: String,
    cluster: &'static Cluster,
}

/// The shared cluster, or `None` (after saying why) when there is none.
pub fn cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let kubeconfig = std::env::var_os("BRAID_TEST_KUBECONFIG").filter(|v| !v.is_empty());
            let kubectl = std::env::var_os("BRAID_TEST_KUBECTL").filter(|v| !v.is_empty());
            match (kubeconfig, kubectl) {
                (Some(kubeconfig), Some(kubectl)) => Some(Cluster {
                    kubeconfig: kubeconfig.into(),
                    kubectl_path: kubectl.into(),
                    crds: OnceLock::new(),
                }),
                _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
                    "CI=true but no Kubernetes test cluster: BRAID_TEST_KUBECONFIG and BRAID_TEST_KUBECTL must be set (cargo xtask test does that)"
                ),
                _ => {
                    eprintln!(
                        "skipping: no Kubernetes test cluster. Run `cargo xtask test`, or `cargo xtask cluster up` and `eval \"$(cargo xtask cluster env)\"` first"
                    );
                    None
                }
            }
        })
        .as_ref()
}

/// The workspace root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

impl Cluster {
    /// Runs kubectl; its stdout when it succeeds, an error carrying stderr otherwise.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run(args, None)
    }

    /// Runs kubectl with `stdin` as its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> anyhow::Result<String> {
        self.run(args, Some(stdin))
    }

    /// `kubectl apply -f -` of `yaml`.
    pub fn apply(&self, yaml: &str) -> anyhow::Result<String> {
        self.kubectl_stdin(&["apply", "-f", "-"], yaml)
    }

    /// Applies `manifests/crds/` and waits until every CRD is established;
    /// once per test process (the cluster keeps them).
    pub fn install_crds(&self) -> anyhow::Result<()> {
        let result = self.crds.get_or_init(|| {
            let dir = repo_root().join("manifests/crds");
            let dir = dir.to_string_lossy();
            self.kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &dir])
                .and_then(|_| {
                    self.kubectl(&[
                        "wait",
                        "--for=condition=Established",
                        "--timeout=60s",
                        "-f",
                        &dir,
                    ])
                })
                .map(drop)
                .map_err(|e| format!("{e:#}"))
        });
        match result {
            Ok(()) => Ok(()),
            Err(e) => bail!("installing the Braid CRDs failed: {e}"),
        }
    }

    /// Creates a namespace named `<prefix>-<pid>-<n>` with `labels`.
    pub fn namespace(
        &'static self,
        prefix: &str,
        labels: &[(&str, &str)],
    ) -> anyhow::Result<TestNamespace> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let labels: String = labels
            .iter()
            .map(|(k, v)| format!("\n    {k}: \"{v}\""))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("\n  labels:{labels}")
        };
        self.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}{labels}\n"
        ))?;
        Ok(TestNamespace {
            name,
            cluster: self,
        })
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let mut child = Command::new(&self.kubectl_path)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=30s")
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", self.kubectl_path.display()))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .context("cannot write kubectl's stdin")?;
        }
        let out = child.wait_with_output().context("kubectl did not finish")?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl TestNamespace {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if let Err(e) = self
            .cluster
            .kubectl(&["delete", "namespace", &self.name, "--wait=false"])
        {
            eprintln!("cannot delete test namespace {}: {e:#}", self.name);
        }
    }
}

/// Polls `check` every 10 ms until it holds or `timeout` passes; the time
/// it took.
pub async fn within(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > timeout {
            bail!("not within {timeout:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(start.elapsed())
}

/// What a kubelet reports for a started pod: Running and Ready with `ip`.
pub fn mark_running(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    ip: &str,
) -> anyhow::Result<()> {
    let status = format!(
        r#"{{"status":{{"phase":"Running","podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}],"conditions":[{{"type":"Ready","status":"True"}}]}}}}"#
    );
    cluster.kubectl(&[
        "patch",
        "pod",
        name,
        "--namespace",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status,
    ])?;
    Ok(())
}
