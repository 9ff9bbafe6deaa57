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

/// The primary network configuration a node's agent chains onto: a list
/// whose first plugin stands for the node's network plugin (the tests set
/// up pod networking themselves).
pub const PRIMARY_CONFLIST: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "braid-e2e",
  "plugins": [{"type": "ptp", "ipam": {"type": "host-local", "subnet": "198.18.0.0/15"}}]
}"#;

/// The file in a node's configuration directory holding [`PRIMARY_CONFLIST`].
pub const PRIMARY_FILE: &str = "10-braid-e2e.conflist";

/// The `braid-cni` entry of the chain in `conf_dir`, as the runtime would
/// hand it to the plugin: the list's `cniVersion` and `name` plus the
/// plugin's own fields. `Err` while the agent has not added it.
pub fn chained_conf(conf_dir: &Path) -> Result<Value, String> {
    let path = conf_dir.join(PRIMARY_FILE);
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let list: Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let plugins = list["plugins"].as_array().cloned().unwrap_or_default();
    let last = plugins.last().cloned().unwrap_or_default();
    if last["type"] != "braid-cni" {
        return Err(format!(
            "braid-cni is not the last plugin of {}: {list}",
            path.display()
        ));
    }
    let mut conf = last;
    conf["cniVersion"] = list["cniVersion"].clone();
    conf["name"] = list["name"].clone();
    Ok(conf)
}

/// Runs the `braid-cni` plugin binary for `pod` exactly as a runtime does:
/// its entry of the chain in `conf_dir` (which the node's agent wrote) with
/// `prevResult`, `CNI_*` environment only, result on stdout; killed after
/// 45 s.
pub fn run_cni(
    plugin: &Path,
    command: &str,
    conf_dir: &Path,
    def: &PodDef,
    pod: &TestPod,
) -> CniOutcome {
    let mut conf = chained_conf(conf_dir).unwrap_or_else(|e| panic!("CNI {command}: {e}"));
    conf["prevResult"] = prev_result(def, pod);
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
