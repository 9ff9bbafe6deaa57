//! Starting the mesh of a sidecar test: the control plane on the host link
//! and, per sidecar pod, `braid-proxy init` and `braid-proxy sidecar`
//! inside the pod's namespace, as an init container and a sidecar
//! container would.

use std::{
    ffi::OsString,
    net::SocketAddr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use braid_capture::testing::TestPod;

use crate::support::{HOST, Process, binaries, child_env, free_port, http_get, pod_token, tail};

/// A running control plane and the sidecars started against it.
pub(crate) struct Mesh {
    /// The test's directory (logs, CA, tokens).
    pub(crate) dir: PathBuf,
    /// The control plane first, then each sidecar in start order.
    pub(crate) processes: Vec<Process>,
    xds: SocketAddr,
    ca_root: String,
}

// === impl Mesh ===

impl Mesh {
    /// Starts `braid-control` reading `config_dir`, listening on the host
    /// link, and waits until it is ready.
    pub(crate) fn start(dir: &Path, config_dir: &Path) -> anyhow::Result<Self> {
        let xds = SocketAddr::from((HOST, free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let ca_dir = dir.join("ca");
        let args: Vec<OsString> = [
            "--config-dir",
            &config_dir.display().to_string(),
            "--xds-listen",
            &xds.to_string(),
            "--admin-listen",
            &admin.to_string(),
            "--ca-dir",
            &ca_dir.display().to_string(),
            "--debounce-ms",
            "20",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let control = Process::start(
            "braid-control",
            &binaries().control,
            args,
            child_env("info"),
            dir.join("braid-control.log"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match http_get(admin, "/ready") {
                Ok((200, _)) if ca_dir.join("root-cert.pem").is_file() => break,
                other if Instant::now() > deadline => anyhow::bail!(
                    "braid-control was not ready within 20 s (/ready: {other:?}); its log ends:\n{}",
                    tail(&control.log, 30)
                ),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        // A sidecar may run as the proxy uid without capabilities, as an
        // injected one does: what it reads must be readable by that uid.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        let ca_root = dir.join("root-cert.pem");
        std::fs::copy(ca_dir.join("root-cert.pem"), &ca_root)?;
        std::fs::set_permissions(&ca_root, std::fs::Permissions::from_mode(0o644))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            processes: vec![control],
            xds,
            ca_root: ca_root.display().to_string(),
        })
    }

    /// The CA directory of the control plane.
    pub(crate) fn ca_dir(&self) -> PathBuf {
        self.dir.join("ca")
    }

    /// Runs `init` in `pod`, then starts its sidecar (`<wrapper...>` in
    /// front of it, e.g. `setpriv` to run as the proxy uid) logging in
    /// `log_format` to `sidecar-<pod>.log`.
    pub(crate) fn add_sidecar(
        &mut self,
        pod: &TestPod,
        namespace: &str,
        wrapper: &[&str],
        log_format: &str,
    ) -> anyhow::Result<()> {
        let (program, args) = in_pod(pod, &[], &["init"]);
        let out = std::process::Command::new(&program).args(&args).output()?;
        anyhow::ensure!(
            out.status.success(),
            "init in {}: {}",
            pod.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let mut args = vec!["sidecar".to_string()];
        args.extend(self.pod_args(pod, namespace)?);
        args.extend(["--log-format".to_string(), log_format.to_string()]);
        self.run_in(pod, wrapper, "sidecar", &args);
        Ok(())
    }

    /// Starts `braid-proxy waypoint` in `pod` (no redirect rules: a
    /// waypoint is addressed, not captured) as waypoint `waypoint`
    /// (`<namespace>/<name>`), logging to `waypoint-<pod>.log`.
    pub(crate) fn add_waypoint(
        &mut self,
        pod: &TestPod,
        namespace: &str,
        waypoint: &str,
    ) -> anyhow::Result<()> {
        let mut args = vec!["waypoint".to_string()];
        args.extend(self.pod_args(pod, namespace)?);
        args.extend(["--waypoint", waypoint, "--worker-threads", "1"].map(String::from));
        self.run_in(pod, &[], "waypoint", &args);
        Ok(())
    }

    /// Writes `pod`'s token (readable by the proxy uid); the flags every
    /// one-pod proxy takes: its pod, the control plane, the CA, the token.
    fn pod_args(&self, pod: &TestPod, namespace: &str) -> anyhow::Result<Vec<String>> {
        let token_file = self.dir.join(format!("{}.token", pod.name));
        std::fs::write(&token_file, pod_token(&pod.name))?;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644))?;
        Ok(vec![
            "--pod".into(),
            format!("{namespace}/{}", pod.name),
            "--control-plane".into(),
            format!("http://{}", self.xds),
            "--ca-root".into(),
            self.ca_root.clone(),
            "--token-file".into(),
            token_file.display().to_string(),
        ])
    }

    /// Starts `braid-proxy <args>` in `pod` behind `wrapper`, logging to
    /// `<role>-<pod>.log`.
    fn run_in(&mut self, pod: &TestPod, wrapper: &[&str], role: &str, args: &[String]) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (program, args) = in_pod(pod, wrapper, &args);
        self.processes.push(Process::start(
            &format!("{role} {}", pod.name),
            &program,
            args,
            child_env("debug"),
            self.dir.join(format!("{role}-{}.log", pod.name)),
        ));
    }

    /// Stops every process, sidecars first.
    pub(crate) fn stop(&mut self) {
        for process in self.processes.iter_mut().rev() {
            process.stop();
        }
    }
}

/// `ip netns exec <pod> <wrapper...> braid-proxy <args>`.
pub(crate) fn in_pod(pod: &TestPod, wrapper: &[&str], args: &[&str]) -> (PathBuf, Vec<OsString>) {
    let mut all: Vec<OsString> = vec!["netns".into(), "exec".into(), pod.netns_name.clone().into()];
    all.extend(wrapper.iter().map(OsString::from));
    all.push(binaries().proxy.clone().into());
    all.extend(args.iter().map(OsString::from));
    (PathBuf::from("ip"), all)
}
