//! The install manifests and `braidctl install` / `braidctl mode` against
//! the real API server: the manifests pass the server's validation, an
//! install creates the control plane and is idempotent, and a mode switch
//! labels the namespace and reports on its pods.
//!
//! A real install creates cluster-scoped objects in the shared cluster, so
//! everything runs in one test that removes them again (except the CRDs,
//! which other tests share).

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use anyhow::{Context as _, bail};

use crate::support::{self, Cluster};

/// Removes what a real install created, on drop: the webhook configuration
/// first (while it exists, pod creations in sidecar namespaces call it),
/// then the namespace and the cluster-wide role.
struct Installed<'a> {
    cluster: &'a Cluster,
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        for args in [
            &[
                "delete",
                "mutatingwebhookconfiguration",
                "braid-sidecar-injector",
            ][..],
            &["delete", "clusterrolebinding", "braid-control"],
            &["delete", "clusterrole", "braid-control"],
            &["delete", "namespace", "braid-system", "--wait=false"],
        ] {
            let args = [args, &["--ignore-not-found"]].concat();
            if let Err(e) = self.cluster.kubectl(&args) {
                eprintln!("cleanup: {e:#}");
            }
        }
    }
}

/// The `braidctl` binary, built once per test process into this test's
/// target directory (`BRAID_E2E_BIN_DIR=DIR` takes it from `DIR`).
fn braidctl() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(build_braidctl) {
        Ok(path) => path,
        Err(e) => panic!("{e}"),
    }
}

fn build_braidctl() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("BRAID_E2E_BIN_DIR") {
        return Ok(PathBuf::from(dir).join("braidctl"));
    }
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .ok_or("CARGO_TARGET_TMPDIR has no parent")?
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let status = Command::new(&cargo)
        .args([
            "build",
            "-p",
            "braidctl",
            "--bin",
            "braidctl",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(support::repo_root())
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("`cargo build -p braidctl` failed ({status})"));
    }
    Ok(target.join("debug/braidctl"))
}

/// Runs braidctl against the test cluster: (success, stdout, stderr).
pub(crate) fn run(cluster: &Cluster, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = Command::new(braidctl())
        .args(args)
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .stdin(Stdio::null())
        .output()
        .context("cannot run braidctl")?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Runs braidctl and fails unless it succeeds; its stdout.
pub(crate) fn braidctl_ok(cluster: &Cluster, args: &[&str]) -> anyhow::Result<String> {
    let (ok, stdout, stderr) = run(cluster, args)?;
    if !ok {
        bail!("braidctl {} failed:\n{stdout}{stderr}", args.join(" "));
    }
    Ok(stdout)
}

#[test]
fn install_then_switch_a_namespace_to_ambient() -> anyhow::Result<()> {
    let Some(cluster) = support::cluster() else {
        return Ok(());
    };
    cluster.install_crds()?;
    let _installed = Installed { cluster };
    let manifests = support::repo_root().join("manifests/install");
    let manifests = manifests.to_string_lossy();

    // A dry run is checked by the server and changes nothing.
    let dry = braidctl_ok(cluster, &["install", "--dry-run"])?;
    assert!(
        dry.contains("Deployment braid-system/braid-control created (dry run"),
        "{dry}"
    );
    assert!(
        dry.contains("MutatingWebhookConfiguration braid-sidecar-injector"),
        "{dry}"
    );
    assert!(dry.contains("Dry run: nothing was changed"), "{dry}");
    assert!(
        cluster
            .kubectl(&[
                "get",
                "mutatingwebhookconfiguration",
                "braid-sidecar-injector"
            ])
            .is_err(),
        "a dry run created the webhook configuration"
    );

    // The real install, then a second one that finds nothing to do.
    let first = braidctl_ok(cluster, &["install"])?;
    assert!(
        first.contains("Deployment braid-system/braid-control created"),
        "{first}"
    );
    assert!(first.contains("Braid is installed. Next:"), "{first}");
    let replicas = cluster.kubectl(&[
        "get",
        "deployment",
        "-n",
        "braid-system",
        "braid-control",
        "-o",
        "jsonpath={.spec.replicas}",
    ])?;
    assert_eq!(replicas, "2");
    let root = cluster.kubectl(&[
        "get",
        "configmap",
        "-n",
        "braid-system",
        "braid-ca-root",
        "-o",
        "jsonpath={.data.root-cert\\.pem}",
    ])?;
    assert!(root.starts_with("-----BEGIN CERTIFICATE-----"), "{root}");
    let again = braidctl_ok(cluster, &["install"])?;
    let changed: Vec<&str> = again
        .lines()
        .filter(|l| l.contains(" created") || l.contains(" configured"))
        .collect();
    assert!(
        changed.is_empty(),
        "a second install changed {changed:?}\n{again}"
    );
    assert!(again.contains("the existing CA is kept"), "{again}");

    // kubectl's own path validates once the namespace exists.
    cluster
        .kubectl(&["apply", "-k", &manifests, "--dry-run=server"])
        .context("kubectl apply -k manifests/install --dry-run=server")?;

    // A mode switch labels the namespace and explains each pod.
    let ns = cluster.namespace("install-mode", &[])?;
    cluster.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: {}}}\nspec:\n  containers:\n  - {{name: app, image: registry.invalid/app:1}}\n",
        ns.name()
    ))?;
    let report = braidctl_ok(cluster, &["mode", ns.name(), "ambient"])?;
    let label = cluster.kubectl(&[
        "get",
        "namespace",
        ns.name(),
        "-o",
        "jsonpath={.metadata.labels.braid\\.dev/mode}",
    ])?;
    assert_eq!(label, "ambient");
    assert!(
        report.contains(&format!(
            "namespace {}: braid.dev/mode changed from unset (none) to ambient",
            ns.name()
        )),
        "{report}"
    );
    // No kubelet: the pod stays Pending, so it is captured when it starts.
    assert!(
        report.contains("pod web (none now): captured by the node's ztunnel when it starts"),
        "{report}"
    );

    let (ok, _, stderr) = run(cluster, &["mode", "braid-no-such-namespace", "sidecar"])?;
    assert!(!ok, "a missing namespace must fail");
    assert!(
        stderr.contains("namespace braid-no-such-namespace does not exist"),
        "{stderr}"
    );
    Ok(())
}
