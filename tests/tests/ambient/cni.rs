//! Running the `braid-cni` plugin exactly as a container runtime does.

// Two test targets include this with different needs: what one leaves
// unused the other uses.
#![allow(unreachable_pub, dead_code, unused_imports)]

use std::{
    io::{Read as _, Write as _},
    path::Path,
    process::{Command, Stdio},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::*;

// === the CNI plugin ===

/// What one plugin run returned.
#[derive(Debug)]
pub struct CniOutcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The `prevResult` the main plugin would have produced for `pod`.
pub fn prev_result(def: &PodDef, pod: &TestPod) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": pod.netns_path}],
        "ips": [{"address": format!("{}/16", def.ip), "interface": 0}],
        "dns": {},
    })
}

/// Runs the `braid-cni` plugin binary for `pod` exactly as a runtime does:
/// `CNI_*` environment only, network configuration on stdin, result on
/// stdout; killed after 45 s.
pub fn run_cni(
    plugin: &Path,
    command: &str,
    agent_socket: &Path,
    def: &PodDef,
    pod: &TestPod,
) -> CniOutcome {
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "k8s",
        "type": "braid-cni",
        "agentSocket": agent_socket,
        "prevResult": prev_result(def, pod),
    });
    let container = format!("c-{}", def.uid);
    let mut child = Command::new(plugin)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &container)
        .env("CNI_NETNS", &pod.netns_path)
        .env("CNI_IFNAME", "eth0")
        .env(
            "CNI_ARGS",
            format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={container};K8S_POD_UID={}",
                def.namespace, def.name, def.uid
            ),
        )
        .env("CNI_PATH", "/opt/cni/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the braid-cni plugin");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(conf.to_string().as_bytes())
            .expect("write the plugin's stdin");
    }
    // Drain the pipes on threads so a chatty plugin cannot block on them.
    let stdout = child.stdout.take().map(read_all);
    let stderr = child.stderr.take().map(read_all);
    let deadline = Instant::now() + Duration::from_secs(45);
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait for the plugin") {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("braid-cni {command} for {} took longer than 45 s", def.name);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let join = |h: Option<JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    CniOutcome {
        code,
        stdout: join(stdout),
        stderr: join(stderr),
    }
}

fn read_all(mut r: impl std::io::Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}
