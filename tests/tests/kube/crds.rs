//! Braid's CRDs as the real API server sees them: every generated CRD and
//! every example in `manifests/examples/` applies; invalid policies are
//! rejected with an error naming the field; `kubectl get bap` shows the
//! printer columns. Also Gateway API's standard CRDs (from the Go module
//! proxy, never checked in) install and take an HTTPRoute, and the status
//! writer's leader election and conditions ([`status`]).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use anyhow::{Context as _, bail};

use crate::support::{self, Cluster};

#[path = "crds/status.rs"]
mod status;

/// The Gateway API release the tests install: its module version on the Go
/// module proxy.
pub const GATEWAY_API_VERSION: &str = "v1.6.3";

/// The namespaces `manifests/examples/00-namespaces.yaml` creates.
const EXAMPLE_NAMESPACES: [&str; 3] = ["storefront", "payments", "batch"];

/// Installs Gateway API's standard-channel CRDs ([`GATEWAY_API_VERSION`])
/// and waits until they are established; once per test process.
///
/// The YAML comes from the module `sigs.k8s.io/gateway-api` on the Go module
/// proxy (`config/crd/standard/`), downloaded into `$GOMODCACHE` (default
/// `/var/cache/braid/go/mod`, like `cargo xtask cluster`), so a warm cache
/// needs no network.
pub fn install_gateway_api(cluster: &Cluster) -> anyhow::Result<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        let install = || -> anyhow::Result<()> {
            let dir = gateway_api_module()?.join("config/crd/standard");
            let shown = dir.to_string_lossy();
            cluster.kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &shown])?;
            for crd in gateway_api_crd_names(&dir)? {
                cluster.kubectl(&[
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    &format!("crd/{crd}"),
                ])?;
            }
            Ok(())
        };
        install().map_err(|e| format!("{e:#}"))
    });
    match result {
        Ok(()) => Ok(()),
        Err(e) => bail!("installing Gateway API {GATEWAY_API_VERSION} failed: {e}"),
    }
}

/// The module directory of `sigs.k8s.io/gateway-api@GATEWAY_API_VERSION`,
/// downloaded (from the Go module proxy only) when not cached yet.
fn gateway_api_module() -> anyhow::Result<PathBuf> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let modcache = var("GOMODCACHE").unwrap_or_else(|| "/var/cache/braid/go/mod".into());
    let flags = match var("GOFLAGS") {
        Some(flags) if flags.contains("-modcacherw") => flags,
        Some(flags) => format!("{flags} -modcacherw"),
        None => "-modcacherw".into(),
    };
    let module = format!("sigs.k8s.io/gateway-api@{GATEWAY_API_VERSION}");
    let output = Command::new("go")
        .args(["mod", "download", "-json", &module])
        // Outside any Go module, and never straight from GitHub.
        .current_dir(std::env::temp_dir())
        .env("GOMODCACHE", &modcache)
        .env("GOFLAGS", flags)
        .env("GOTOOLCHAIN", "local")
        .env(
            "GOPROXY",
            var("GOPROXY").unwrap_or_else(|| "https://proxy.golang.org".into()),
        )
        .output()
        .context("cannot run `go` (install Go; the test cluster's build needs it too)")?;
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "`go mod download -json {module}` printed no JSON ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })?;
    if let Some(error) = info["Error"].as_str() {
        bail!("`go mod download {module}` failed: {error}");
    }
    let dir = info["Dir"]
        .as_str()
        .with_context(|| format!("`go mod download -json {module}` named no Dir: {info}"))?;
    Ok(PathBuf::from(dir))
}

/// The CRD names (`httproutes.gateway.networking.k8s.io`) of the files in
/// `dir`; other documents (the bundle's ValidatingAdmissionPolicy) are
/// skipped.
fn gateway_api_crd_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        if !text.contains("\nkind: CustomResourceDefinition\n") {
            continue;
        }
        let name = text
            .lines()
            .find_map(|line| line.strip_prefix("  name: "))
            .with_context(|| format!("{} names no CRD", path.display()))?;
        names.push(name.trim().to_string());
    }
    if names.is_empty() {
        bail!("{} holds no CRDs", dir.display());
    }
    Ok(names)
}

/// `text` with every example namespace renamed to `<name>-<suffix>`, so this
/// run's objects never meet another run's (or another test's `shop`).
fn renamed(text: &str, suffix: &str) -> String {
    EXAMPLE_NAMESPACES
        .iter()
        .fold(text.to_string(), |text, ns| {
            text.replace(ns, &format!("{ns}-{suffix}"))
        })
}

/// Deletes the renamed example namespaces on drop.
struct ExampleNamespaces {
    cluster: &'static Cluster,
    suffix: String,
}

impl Drop for ExampleNamespaces {
    fn drop(&mut self) {
        for ns in EXAMPLE_NAMESPACES {
            let name = format!("{ns}-{}", self.suffix);
            let _ = self.cluster.kubectl(&[
                "delete",
                "namespace",
                &name,
                "--wait=false",
                "--ignore-not-found",
            ]);
        }
    }
}

/// The rows of `kubectl get` output, split on whitespace (header first).
fn table(output: &str) -> Vec<Vec<String>> {
    output
        .lines()
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn every_crd_and_example_applies() -> anyhow::Result<()> {
    let Some(cluster) = support::cluster() else {
        return Ok(());
    };
    cluster.install_crds()?;
    for crd in braid_crd::all_crds() {
        let name = crd.metadata.name.context("CRD without a name")?;
        let established = cluster.kubectl(&[
            "get",
            "crd",
            &name,
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#,
        ])?;
        assert_eq!(established, "True", "{name}");
    }

    let dir = support::repo_root().join("manifests/examples");
    let declared = std::fs::read_to_string(dir.join("00-namespaces.yaml"))?;
    let declared: Vec<&str> = declared
        .lines()
        .filter_map(|line| line.strip_prefix("  name: "))
        .collect();
    assert_eq!(declared, EXAMPLE_NAMESPACES, "update EXAMPLE_NAMESPACES");

    let suffix = format!("ex{}", std::process::id());
    let _cleanup = ExampleNamespaces {
        cluster,
        suffix: suffix.clone(),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    assert!(files.len() >= 3, "examples: {files:?}");
    for file in &files {
        let yaml = std::fs::read_to_string(file)?;
        cluster
            .apply(&renamed(&yaml, &suffix))
            .with_context(|| format!("applying {}", file.display()))?;
    }

    let payments = renamed("payments", &suffix);
    let policies = table(&cluster.kubectl(&["get", "bap", "--namespace", &payments])?);
    assert_eq!(policies[0], ["NAME", "ACTION", "ACCEPTED", "AGE"]);
    let rows: Vec<(&str, &str)> = policies[1..]
        .iter()
        .map(|row| (row[0].as_str(), row[1].as_str()))
        .collect();
    let deny = renamed("deny-batch", &suffix);
    assert_eq!(rows, [("api-callers", "ALLOW"), (deny.as_str(), "DENY")]);
    let peer = table(&cluster.kubectl(&["get", "bpa", "--namespace", &payments])?);
    assert_eq!(peer[0], ["NAME", "MODE", "ACCEPTED", "AGE"]);
    assert_eq!(peer[1][..2], ["strict", "STRICT"]);
    let storefront = renamed("storefront", &suffix);
    let mode = cluster.kubectl(&[
        "get",
        "namespace",
        &storefront,
        "-o",
        r"jsonpath={.metadata.labels.braid\.dev/mode}",
    ])?;
    assert_eq!(mode, "ambient");
    Ok(())
}

/// An AuthorizationPolicy whose spec is `spec` (YAML, indented by two).
fn policy(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: braid.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}"
    )
}

#[test]
fn invalid_policies_are_rejected_naming_the_field() -> anyhow::Result<()> {
    let Some(cluster) = support::cluster() else {
        return Ok(());
    };
    cluster.install_crds()?;
    let ns = cluster.namespace("crds-invalid", &[])?;
    let ns = ns.name();
    let many_rules = "  rules:\n".to_string() + &"  - to: {ports: [80]}\n".repeat(65);
    let cases = [
        ("  action: MAYBE\n", "spec.action", "Unsupported value"),
        (
            "  rules:\n  - to: {ports: [80, 70000]}\n",
            "spec.rules[0].to.ports[1]",
            "less than or equal to 65535",
        ),
        (
            "  rules:\n  - {}\n  - from: {principals: ['cluster.local/ns/shop/sa/web']}\n",
            "spec.rules[1].from.principals[0]",
            "should match",
        ),
        (
            "  rules:\n  - from: {principals: ['spiffe://td/ns/*/sa/web']}\n",
            "spec.rules[0].from.principals[0]",
            "should match",
        ),
        (
            "  rules:\n  - from: {namespaces: [Shop]}\n",
            "spec.rules[0].from.namespaces[0]",
            "should match",
        ),
        (
            "  rules:\n  - from: {}\n",
            "spec.rules[0].from",
            "must list principals or namespaces",
        ),
        (
            "  rules:\n  - to: {ports: []}\n",
            "spec.rules[0].to",
            "must list ports",
        ),
        (
            many_rules.as_str(),
            "spec.rules",
            "must have at most 64 items",
        ),
    ];
    for (i, (spec, field, message)) in cases.into_iter().enumerate() {
        let name = format!("bad-{i}");
        let err = match cluster.apply(&policy(ns, &name, spec)) {
            Ok(out) => panic!("{field}: the API server accepted {spec:?}: {out}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(&format!("{field}:")), "{field}: {err}");
        assert!(err.contains(message), "{field}: {message:?} not in {err}");
    }
    let bad_mode = "apiVersion: braid.dev/v1alpha1\nkind: PeerAuthentication\nmetadata: {name: bad}\nspec: {mtls: {mode: strict}}\n";
    let err = cluster
        .kubectl_stdin(&["apply", "--namespace", ns, "-f", "-"], bad_mode)
        .expect_err("lower-case mode");
    assert!(
        format!("{err:#}").contains("spec.mtls.mode: Unsupported value"),
        "{err:#}"
    );
    assert_eq!(
        cluster.kubectl(&["get", "bap,bpa", "--namespace", ns, "-o", "name"])?,
        ""
    );

    // What the converter accepts, the API server accepts.
    let good = "  rules:\n  - from: {principals: ['*', '*/sa/web', 'spiffe://td/ns/shop/*', 'spiffe://td/ns/shop/sa/web'], namespaces: [shop-1]}\n    to: {ports: [1, 65535]}\n";
    cluster.apply(&policy(ns, "good", good))?;
    Ok(())
}

#[test]
fn gateway_api_installs_and_takes_an_httproute() -> anyhow::Result<()> {
    let Some(cluster) = support::cluster() else {
        return Ok(());
    };
    install_gateway_api(cluster)?;
    let ns = cluster.namespace("crds-gateway", &[])?;
    let ns = ns.name();
    cluster.apply(&format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
  namespace: {ns}
spec:
  parentRefs:
  - {{group: '', kind: Service, name: reviews}}
  rules:
  - matches:
    - path: {{value: /v2}}
    backendRefs:
    - {{name: reviews-v2, port: 9080}}
"
    ))?;
    // The schema's defaults were applied: the CRDs are live, not just stored.
    let path_type = cluster.kubectl(&[
        "get",
        "httproute",
        "reviews",
        "--namespace",
        ns,
        "-o",
        "jsonpath={.spec.rules[0].matches[0].path.type}",
    ])?;
    assert_eq!(path_type, "PathPrefix");
    let bundle = cluster.kubectl(&[
        "get",
        "crd",
        "httproutes.gateway.networking.k8s.io",
        "-o",
        r"jsonpath={.metadata.annotations.gateway\.networking\.k8s\.io/bundle-version}",
    ])?;
    assert_eq!(bundle, GATEWAY_API_VERSION);
    Ok(())
}
