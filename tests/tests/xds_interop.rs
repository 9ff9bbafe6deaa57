//! Interop: a standard xDS client that Braid did not write subscribes to
//! Braid's resources over the standard Delta ADS service and decodes them
//! with the protos in `proto/`.
//!
//! The client is the Go program in `tests/xds-interop/`: Envoy's own
//! generated code (go-control-plane) for the transport, and descriptors
//! compiled at runtime from `proto/` (protocompile + dynamicpb) for the
//! resources. This test builds it with `go build`, starts the control plane
//! in-process on a YAML directory, runs the client against the xDS address
//! and checks what it decoded.

use std::{
    collections::BTreeMap,
    io::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;
use tokio::process::Command;

const WORKLOAD: &str = "type.googleapis.com/braid.workload.v1alpha1.Workload";
const SERVICE: &str = "type.googleapis.com/braid.workload.v1alpha1.Service";
const AUTHORIZATION: &str = "type.googleapis.com/braid.security.v1alpha1.Authorization";
const PEER_AUTHENTICATION: &str = "type.googleapis.com/braid.security.v1alpha1.PeerAuthentication";
const HTTP_ROUTE: &str = "type.googleapis.com/braid.route.v1alpha1.HttpRoute";

/// Two ambient pods, a service selecting them and a DENY policy, in one file
/// so the control plane applies them as one batch.
const CONFIG: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {braid.dev/mode: ambient}
---
apiVersion: v1
kind: Pod
metadata: {name: web-a, namespace: shop, labels: {app: web}}
spec:
  nodeName: node-1
  serviceAccountName: web
  containers: [{name: web, image: "example/web:1", ports: [{containerPort: 8080}]}]
status:
  phase: Running
  podIP: 198.18.0.11
  podIPs: [{ip: 198.18.0.11}]
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, namespace: shop, labels: {app: web}}
spec:
  nodeName: node-2
  serviceAccountName: web
  containers: [{name: web, image: "example/web:1", ports: [{containerPort: 8080}]}]
status:
  phase: Running
  podIP: 198.18.1.12
  podIPs: [{ip: 198.18.1.12}]
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  clusterIP: 198.19.0.10
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: braid.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny-legacy, namespace: shop}
spec:
  action: DENY
  rules:
  - from: {namespaces: [legacy]}
---
apiVersion: braid.dev/v1alpha1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec:
  mtls: {mode: STRICT}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    timeouts: {request: 300ms}
    backendRefs: [{name: web, port: 80, weight: 90}]
"#;

/// Distinct resources the client waits for: 2 workloads, 1 service, 1
/// authorization, 1 peer authentication and 1 HTTP route.
const EXPECTED_RESOURCES: usize = 6;

/// Bound on the client run (it has its own, shorter `-timeout`).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(40);

/// Bound on `go build` (a cold module and build cache takes a while).
const GO_BUILD_TIMEOUT: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread")]
async fn go_control_plane_client_decodes_braid_resources() -> Result<()> {
    let Some((_build_dir, client)) = build_go_client().await? else {
        return Ok(());
    };

    let dir = tempfile::tempdir().context("create config directory")?;
    std::fs::write(dir.path().join("shop.yaml"), CONFIG).context("write config")?;
    let cp = braid_control::ControlPlane::start(braid_control::Config::for_tests(dir.path()))
        .await
        .context("start the control plane")?;
    let output = run_client(&client, cp.xds_addr()).await;
    cp.shutdown().await;
    let resources = parse_output(&output?)?;

    check_workload(&resources, "web-a", [198, 18, 0, 11])?;
    check_workload(&resources, "web-b", [198, 18, 1, 12])?;
    check_service(&resources)?;
    check_authorization(&resources)?;
    check_peer_authentication(&resources)?;
    check_http_route(&resources)?;
    ensure!(
        resources.len() == EXPECTED_RESOURCES,
        "unexpected extra resources: {:?}",
        resources.keys().collect::<Vec<_>>()
    );
    Ok(())
}

fn repo_root() -> PathBuf {
    // CARGO_MANIFEST_DIR is <repo>/tests.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// Builds the Go client outside the source tree and returns it with the
/// temporary directory holding it; `None` (after saying so on stderr) when Go
/// is not installed and this is not CI.
async fn build_go_client() -> Result<Option<(tempfile::TempDir, PathBuf)>> {
    match Command::new("go").arg("version").output().await {
        Ok(out) if out.status.success() => {}
        Ok(out) => bail!(
            "`go version` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                bail!("`go` is not installed, but CI=true: the xDS interop test must run in CI");
            }
            // Bypass libtest's output capture so the skip is visible.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED xds_interop: `go` is not installed (install Go to run this test; it is required when CI=true)"
            );
            return Ok(None);
        }
        Err(e) => return Err(e).context("run `go version`"),
    }

    // Inside the target directory, never in the tree; a fresh directory per
    // run because the target directory may be shared by concurrent runs (Go's
    // build cache makes the rebuild a link step).
    let build_dir = tempfile::Builder::new()
        .prefix("go-xds-interop-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .context("create a directory for the Go client")?;
    let binary = build_dir.path().join("xds-interop");
    let src = repo_root().join("tests").join("xds-interop");
    let build = Command::new("go")
        .args(["build", "-mod=readonly", "-buildvcs=false", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(&src)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(GO_BUILD_TIMEOUT, build)
        .await
        .with_context(|| {
            format!(
                "`go build` in {} took longer than {GO_BUILD_TIMEOUT:?}",
                src.display()
            )
        })?
        .context("run `go build`")?;
    ensure!(
        out.status.success(),
        "`go build` in {} failed ({}):\n{}",
        src.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Some((build_dir, binary)))
}

/// Runs the client until it holds every expected resource; returns its stdout.
async fn run_client(client: &Path, xds: SocketAddr) -> Result<String> {
    let run = Command::new(client)
        .arg("-addr")
        .arg(xds.to_string())
        .arg("-proto")
        .arg(repo_root().join("proto"))
        .args(["-count", &EXPECTED_RESOURCES.to_string(), "-timeout", "30s"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(CLIENT_TIMEOUT, run)
        .await
        .with_context(|| format!("the Go xDS client did not finish within {CLIENT_TIMEOUT:?}"))?
        .context("run the Go xDS client")?;
    let stdout = String::from_utf8(out.stdout).context("client stdout is not UTF-8")?;
    ensure!(
        out.status.success(),
        "the Go xDS client failed ({}):\nstderr:\n{}\nstdout:\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// The resources the client holds at the end: (type URL, name) -> decoded JSON.
type Resources = BTreeMap<(String, String), Value>;

fn parse_output(stdout: &str) -> Result<Resources> {
    let mut resources = Resources::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("client line is not JSON: {line}"))?;
        let type_url = str_field(&v, "type_url")?.to_owned();
        if let Some(removed) = v.get("removed") {
            let name = removed
                .as_str()
                .with_context(|| format!("`removed` is not a string: {line}"))?;
            resources.remove(&(type_url, name.to_owned()));
            continue;
        }
        let name = str_field(&v, "name")?.to_owned();
        ensure!(
            !str_field(&v, "version")?.is_empty(),
            "resource without a version: {line}"
        );
        let resource = v
            .get("resource")
            .with_context(|| format!("no `resource`: {line}"))?
            .clone();
        resources.insert((type_url, name), resource);
    }
    Ok(resources)
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .with_context(|| format!("no string field `{key}` in {v}"))
}

/// The one resource of `type_url` whose decoded `name` field is `name`.
fn find<'a>(resources: &'a Resources, type_url: &str, name: &str) -> Result<(&'a str, &'a Value)> {
    let found: Vec<_> = resources
        .iter()
        .filter(|((t, _), r)| t == type_url && r.get("name").and_then(Value::as_str) == Some(name))
        .map(|((_, n), r)| (n.as_str(), r))
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        _ => bail!(
            "expected exactly one {type_url} named {name:?}, found {}; held resources: {:#?}",
            found.len(),
            resources
        ),
    }
}

fn check_workload(resources: &Resources, pod: &str, ip: [u8; 4]) -> Result<()> {
    let (name, w) = find(resources, WORKLOAD, pod)?;
    ensure!(w["namespace"] == "shop", "workload {pod}: namespace: {w}");
    ensure!(
        w["uid"] == name,
        "workload {pod}: the xDS resource name {name:?} is not the uid: {w}"
    );
    ensure!(
        w["mode"] == "DATA_PLANE_MODE_AMBIENT",
        "workload {pod}: mode: {w}"
    );
    let addresses = decode_bytes_list(&w["addresses"])
        .with_context(|| format!("workload {pod}: addresses: {w}"))?;
    ensure!(
        addresses == [ip.to_vec()],
        "workload {pod}: addresses {addresses:?}, want [{ip:?}]: {w}"
    );
    Ok(())
}

fn check_service(resources: &Resources) -> Result<()> {
    let (_, s) = find(resources, SERVICE, "web")?;
    ensure!(s["namespace"] == "shop", "service: namespace: {s}");
    ensure!(
        s["hostname"] == "web.shop.svc.cluster.local",
        "service: hostname: {s}"
    );
    let vips = decode_bytes_list(&s["vips"]).with_context(|| format!("service: vips: {s}"))?;
    ensure!(
        vips == [vec![198, 19, 0, 10]],
        "service: vips {vips:?}: {s}"
    );
    let ports = s["ports"]
        .as_array()
        .with_context(|| format!("service: no ports: {s}"))?;
    ensure!(
        ports.iter().any(|p| p["port"] == 80),
        "service: no port 80: {s}"
    );
    let mut endpoints = s["endpoints"]
        .as_array()
        .with_context(|| format!("service: no endpoints: {s}"))?
        .iter()
        .map(|e| {
            let uid = e["workloadUid"].as_str().unwrap_or_default().to_owned();
            Ok((uid, decode_bytes(&e["address"])?))
        })
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("service: endpoints: {s}"))?;
    endpoints.sort();
    ensure!(
        endpoints
            == [
                ("shop/web-a".to_owned(), vec![198, 18, 0, 11]),
                ("shop/web-b".to_owned(), vec![198, 18, 1, 12]),
            ],
        "service: endpoints {endpoints:?}: {s}"
    );
    Ok(())
}

fn check_authorization(resources: &Resources) -> Result<()> {
    let (_, a) = find(resources, AUTHORIZATION, "deny-legacy")?;
    ensure!(a["namespace"] == "shop", "authorization: namespace: {a}");
    ensure!(a["action"] == "ACTION_DENY", "authorization: action: {a}");
    ensure!(
        a["rules"][0]["sourceNamespaces"] == serde_json::json!(["legacy"]),
        "authorization: rules: {a}"
    );
    Ok(())
}

fn check_peer_authentication(resources: &Resources) -> Result<()> {
    let (_, p) = find(resources, PEER_AUTHENTICATION, "strict")?;
    ensure!(
        p["namespace"] == "shop",
        "peer authentication: namespace: {p}"
    );
    ensure!(
        p["mode"] == "MTLS_MODE_STRICT",
        "peer authentication: mode: {p}"
    );
    Ok(())
}

fn check_http_route(resources: &Resources) -> Result<()> {
    let (_, r) = find(resources, HTTP_ROUTE, "canary")?;
    ensure!(r["namespace"] == "shop", "route: namespace: {r}");
    let parent = &r["parents"][0]["service"];
    ensure!(
        parent["service"]["name"] == "web" && parent["port"] == 80,
        "route: parent: {r}"
    );
    let rule = &r["rules"][0];
    ensure!(
        rule["matches"][0]["path"]["prefix"] == "/api",
        "route: match: {r}"
    );
    ensure!(
        rule["backends"][0]["weight"] == 90 && rule["backends"][0]["service"]["name"] == "web",
        "route: backend: {r}"
    );
    ensure!(
        rule["timeouts"]["request"] == "0.300s",
        "route: timeout: {r}"
    );
    Ok(())
}

/// protojson renders `repeated bytes` as a list of standard base64 strings.
fn decode_bytes_list(v: &Value) -> Result<Vec<Vec<u8>>> {
    v.as_array()
        .context("not a list")?
        .iter()
        .map(decode_bytes)
        .collect()
}

/// protojson renders `bytes` as a standard base64 string.
fn decode_bytes(v: &Value) -> Result<Vec<u8>> {
    base64_decode(v.as_str().with_context(|| format!("not a string: {v}"))?)
}

/// Standard-alphabet base64 with optional padding (what protojson emits).
fn base64_decode(s: &str) -> Result<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' | b'-' => Some(62),
            b'/' | b'_' => Some(63),
            _ => None,
        }
    }
    let digits = s.trim_end_matches('=').as_bytes();
    ensure!(digits.len() % 4 != 1, "invalid base64 length: {s:?}");
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | value(c).with_context(|| format!("invalid base64 {s:?}"))?;
        }
        acc <<= 6 * (4 - chunk.len());
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

#[test]
fn base64_decodes_protojson_bytes() -> Result<()> {
    assert_eq!(base64_decode("xhIACw==")?, [198, 18, 0, 11]);
    assert_eq!(base64_decode("xhIBDA")?, [198, 18, 1, 12]);
    assert_eq!(base64_decode("AAECAw==")?, [0, 1, 2, 3]);
    assert_eq!(base64_decode("")?, Vec::<u8>::new());
    assert_eq!(base64_decode("AAE=")?, [0, 1]);
    assert!(base64_decode("A").is_err());
    Ok(())
}
