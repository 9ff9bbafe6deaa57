//! The CNI plugin (the `braid-cni` binary when `CNI_COMMAND` is set): a
//! chained plugin that forwards Kubernetes pods to the node agent and passes
//! the previous plugin's result through.
//!
//! Spec: CNI 1.1.0, accepting configs of every version in [`SUPPORTED`].
//! Only the result (or the spec's error object) is written to stdout.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::agent_api::{self, AgentRequest, CallError, Command};

/// The CNI versions this plugin accepts.
pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The agent socket when the config does not name one.
pub const DEFAULT_AGENT_SOCKET: &str = "/var/run/braid/cni.sock";

/// How long the plugin waits for the agent; more than the agent's own
/// wait for the control plane, so the agent's clearer error wins.
const AGENT_TIMEOUT: Duration = Duration::from_secs(30);

/// CNI error codes used here (spec §"Error").
mod code {
    pub(super) const INCOMPATIBLE_VERSION: u32 = 1;
    pub(super) const INVALID_ENV: u32 = 4;
    pub(super) const IO: u32 = 5;
    pub(super) const INVALID_CONFIG: u32 = 7;
    pub(super) const TRY_AGAIN_LATER: u32 = 11;
    pub(super) const NOT_AVAILABLE: u32 = 50;
    /// Ours: the agent refused or failed the request.
    pub(super) const AGENT_FAILED: u32 = 100;
    /// Ours: the agent answered nonsense or timed out.
    pub(super) const AGENT_PROTOCOL: u32 = 101;
}

/// The `CNI_*` environment of one invocation.
#[derive(Clone, Debug, Default)]
pub struct CniEnv {
    /// `CNI_COMMAND`: ADD, DEL, CHECK, VERSION, STATUS, GC.
    pub command: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// `CNI_ARGS`: `K=V;K=V`.
    pub args: String,
}

/// The network configuration on stdin: the fields this plugin reads (the
/// rest, `name`, `type`, `runtimeConfig`…, is ignored, as the spec allows;
/// `logLevel` is read before parsing, see [`log_level`]).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// Config version, one of [`SUPPORTED`].
    pub cni_version: String,
    /// The previous plugin's result (chained).
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// The node agent's socket (default [`DEFAULT_AGENT_SOCKET`]).
    #[serde(default)]
    pub agent_socket: Option<PathBuf>,
}

/// A failure, printed as the spec's error object.
#[derive(Debug, thiserror::Error)]
#[error("{msg}: {details}")]
pub struct CniError {
    /// Spec error code.
    pub code: u32,
    /// Short message.
    pub msg: String,
    /// What happened and what to do.
    pub details: String,
}

// === impl CniEnv ===

impl CniEnv {
    /// Reads the `CNI_*` variables of this process.
    pub fn from_process() -> Self {
        let var = |name| std::env::var(name).unwrap_or_default();
        Self {
            command: var("CNI_COMMAND"),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            args: var("CNI_ARGS"),
        }
    }

    fn k8s_args(&self) -> BTreeMap<&str, &str> {
        self.args
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .collect()
    }
}

// === impl CniError ===

impl CniError {
    fn new(code: u32, msg: &str, details: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.to_string(),
            details: details.into(),
        }
    }

    /// Stdin could not be read.
    pub fn stdin(error: &std::io::Error) -> Self {
        Self::new(code::IO, "cannot read stdin", error.to_string())
    }

    /// The spec's error object for `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> Value {
        json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        })
    }
}

/// The config's `cniVersion` if it can be read, for error objects.
pub fn requested_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| SUPPORTED.contains(&v.as_str()))
        .unwrap_or_else(|| SUPPORTED[SUPPORTED.len() - 1].to_string())
}

/// The config's `logLevel`, if it can be read.
pub fn log_level(stdin: &[u8]) -> Option<String> {
    let conf: Value = serde_json::from_slice(stdin).ok()?;
    conf.get("logLevel")?.as_str().map(str::to_string)
}

/// Runs one invocation; `Ok(Some(json))` is printed on stdout.
pub fn run(env: &CniEnv, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    match env.command.as_str() {
        "VERSION" => Ok(Some(json!({
            "cniVersion": requested_version(stdin),
            "supportedVersions": SUPPORTED,
        }))),
        "ADD" => add(env, &parse(stdin)?),
        "DEL" => del(env, &parse(stdin)?),
        "CHECK" => check(env, &parse(stdin)?),
        "STATUS" => status(&parse(stdin)?),
        // Nothing of ours outlives a DEL, so garbage collection has no work.
        "GC" => parse(stdin).map(|_| None),
        other => Err(CniError::new(
            code::INVALID_ENV,
            "unknown CNI_COMMAND",
            format!("CNI_COMMAND={other:?}; expected ADD, DEL, CHECK, VERSION, STATUS or GC"),
        )),
    }
}

fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
    let conf: NetConf = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(
            code::INVALID_CONFIG,
            "invalid network configuration",
            format!("stdin is not a braid-cni network configuration: {e}"),
        )
    })?;
    if !SUPPORTED.contains(&conf.cni_version.as_str()) {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            "incompatible CNI version",
            format!(
                "cniVersion {:?}; supported: {}",
                conf.cni_version,
                SUPPORTED.join(", ")
            ),
        ));
    }
    Ok(conf)
}

fn add(env: &CniEnv, conf: &NetConf) -> Result<Option<Value>, CniError> {
    let result = prev_result(conf)?;
    if let Some(request) = agent_request(env, Command::Add)? {
        call_agent(conf, &request)?;
    }
    Ok(Some(result))
}

fn del(env: &CniEnv, conf: &NetConf) -> Result<Option<Value>, CniError> {
    let Some(request) = agent_request(env, Command::Del)? else {
        return Ok(None);
    };
    match call_agent(conf, &request) {
        // An agent that is not running has nothing to release; the runtime
        // must be able to tear the pod down anyway.
        Err(e) if e.code == code::TRY_AGAIN_LATER => {
            tracing::warn!("DEL of {} ignored: {}", request.workload(), e.details);
            Ok(None)
        }
        other => other.map(|()| None),
    }
}

fn check(env: &CniEnv, conf: &NetConf) -> Result<Option<Value>, CniError> {
    prev_result(conf)?;
    if let Some(request) = agent_request(env, Command::Check)? {
        call_agent(conf, &request)?;
    }
    Ok(None)
}

fn status(conf: &NetConf) -> Result<Option<Value>, CniError> {
    let socket = agent_socket(conf);
    std::os::unix::net::UnixStream::connect(&socket)
        .map(|_| None)
        .map_err(|e| {
            CniError::new(
                code::NOT_AVAILABLE,
                "braid node agent not available",
                format!(
                    "{}: {e}; start braid-cni agent on this node",
                    socket.display()
                ),
            )
        })
}

/// The previous plugin's result with our `cniVersion` (the shapes of the
/// accepted versions are compatible for a plugin that adds nothing).
fn prev_result(conf: &NetConf) -> Result<Value, CniError> {
    let Some(Value::Object(result)) = &conf.prev_result else {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            "missing prevResult",
            "braid-cni is a chained plugin: list it after the main network plugin in the conflist",
        ));
    };
    let mut result = result.clone();
    result.insert("cniVersion".into(), Value::String(conf.cni_version.clone()));
    Ok(Value::Object(result))
}

/// The agent request, or `None` for a pod that is not a Kubernetes pod.
fn agent_request(env: &CniEnv, cmd: Command) -> Result<Option<AgentRequest>, CniError> {
    let args = env.k8s_args();
    let (Some(namespace), Some(name)) = (args.get("K8S_POD_NAMESPACE"), args.get("K8S_POD_NAME"))
    else {
        return Ok(None);
    };
    let container_id = args
        .get("K8S_POD_INFRA_CONTAINER_ID")
        .filter(|id| !id.is_empty())
        .map_or(env.container_id.as_str(), |id| id);
    if container_id.is_empty() || (cmd != Command::Del && env.netns.is_empty()) {
        return Err(CniError::new(
            code::INVALID_ENV,
            "missing CNI environment",
            "CNI_CONTAINERID and CNI_NETNS must be set for ADD and CHECK",
        ));
    }
    Ok(Some(AgentRequest {
        cmd,
        pod_namespace: namespace.to_string(),
        pod_name: name.to_string(),
        pod_uid: args.get("K8S_POD_UID").map_or("", |v| v).to_string(),
        container_id: container_id.to_string(),
        netns: env.netns.clone(),
    }))
}

fn agent_socket(conf: &NetConf) -> PathBuf {
    conf.agent_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_AGENT_SOCKET))
}

fn call_agent(conf: &NetConf, request: &AgentRequest) -> Result<(), CniError> {
    let socket = agent_socket(conf);
    let workload = request.workload();
    match agent_api::call(&socket, request, AGENT_TIMEOUT) {
        Ok(response) if response.ok => Ok(()),
        Ok(response) => Err(CniError::new(
            code::AGENT_FAILED,
            "braid node agent refused the pod",
            format!(
                "pod {workload}: {}",
                response.error.as_deref().unwrap_or("no reason given")
            ),
        )),
        Err(e @ CallError::Unreachable { .. }) => Err(CniError::new(
            code::TRY_AGAIN_LATER,
            "braid node agent unreachable",
            format!("pod {workload}: {e}"),
        )),
        Err(e @ CallError::Protocol { .. }) => Err(CniError::new(
            code::AGENT_PROTOCOL,
            "braid node agent failed",
            format!("pod {workload}: {e}"),
        )),
    }
}
