//! Runs `braid-cni` the way a container runtime does (env + stdin JSON,
//! stdout + exit code) and as the node agent; every wait has a deadline.

#![allow(dead_code, unreachable_pub)]

use std::{
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_braid-cni");

/// One plugin invocation's outcome.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: Option<Value>,
    pub raw_stdout: String,
    pub stderr: String,
}

/// A CNI invocation.
pub struct Cni<'a> {
    pub command: &'a str,
    pub stdin: String,
    pub netns: String,
    pub args: String,
    pub container_id: &'a str,
}

/// A chained conflist entry with a prevResult, pointed at `agent`.
pub fn config(agent: &Path) -> String {
    json!({
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "type": "braid-cni",
        "agentSocket": agent,
        "logLevel": "debug",
        "prevResult": prev_result(),
    })
    .to_string()
}

pub fn prev_result() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x"}],
        "ips": [{"address": "198.18.0.10/16", "interface": 0}],
        "dns": {},
    })
}

pub fn k8s_args(namespace: &str, name: &str, uid: &str) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};K8S_POD_UID={uid};K8S_POD_INFRA_CONTAINER_ID=c-{uid}"
    )
}

impl Cni<'_> {
    pub fn new(command: &str, stdin: String) -> Cni<'_> {
        Cni {
            command,
            stdin,
            netns: String::new(),
            args: String::new(),
            container_id: "c-1",
        }
    }

    /// Runs the plugin to completion (killed after 60 s).
    pub fn run(&self) -> Outcome {
        let mut child = Command::new(BIN)
            .env_clear()
            .env("CNI_COMMAND", self.command)
            .env("CNI_CONTAINERID", self.container_id)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_ARGS", &self.args)
            .env("CNI_PATH", "/opt/cni/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn braid-cni");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(self.stdin.as_bytes()).expect("write stdin");
        }
        let code = wait(&mut child, Duration::from_secs(60));
        let mut raw_stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = child.stdout.take() {
            out.read_to_string(&mut raw_stdout).expect("stdout");
        }
        if let Some(mut err) = child.stderr.take() {
            err.read_to_string(&mut stderr).expect("stderr");
        }
        Outcome {
            code,
            stdout: serde_json::from_str(&raw_stdout).ok(),
            raw_stdout,
            stderr,
        }
    }
}

/// Polls `child` until it exits; kills it (by its PID) at the deadline.
fn wait(child: &mut Child, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("braid-cni did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `ready` every 10 ms until true or `limit` passes.
pub fn eventually(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The agent binary as a child process, killed by PID when dropped.
pub struct AgentProcess {
    child: Child,
    pub socket: PathBuf,
}

impl AgentProcess {
    /// Starts `braid-cni agent` with a fixed mode map; returns once its
    /// plugin socket exists.
    pub fn start(dir: &Path, modes: &Value) -> AgentProcess {
        let mode_file = dir.join("modes.json");
        std::fs::write(&mode_file, modes.to_string()).expect("write mode file");
        let socket = dir.join("cni.sock");
        let child = Command::new(BIN)
            .args(["agent", "--node", "node-a", "--mode-wait-secs", "1"])
            .arg("--socket")
            .arg(&socket)
            .arg("--ztunnel-socket")
            .arg(dir.join("ztunnel.sock"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--mode-file")
            .arg(&mode_file)
            .env("BRAID_LOG", "debug")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn agent");
        let mut agent = AgentProcess { child, socket };
        let socket = agent.socket.clone();
        eventually("the agent socket", Duration::from_secs(10), || {
            assert!(
                agent.child.try_wait().ok().flatten().is_none(),
                "agent exited early"
            );
            socket.exists()
        });
        agent
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
