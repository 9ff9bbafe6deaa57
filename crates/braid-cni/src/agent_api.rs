//! The request/response protocol between the CNI plugin and the node agent:
//! one JSON object per line over a Unix stream socket, one request per
//! connection.
//!
//! ```text
//! → {"cmd":"add","pod_namespace":"shop","pod_name":"web-0","pod_uid":"…","container_id":"…","netns":"/proc/42/ns/net"}
//! ← {"ok":true}            or  {"ok":false,"error":"…"}
//! ```

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// The largest request or response line either side reads, in bytes.
pub const MAX_LINE: u64 = 64 * 1024;

/// What the runtime asked the plugin to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    /// A pod sandbox was created.
    Add,
    /// A pod sandbox is being torn down (idempotent).
    Del,
    /// Verify that a pod is set up as ADD left it.
    Check,
}

/// One plugin request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRequest {
    /// The command.
    pub cmd: Command,
    /// Kubernetes namespace of the pod.
    pub pod_namespace: String,
    /// Pod name.
    pub pod_name: String,
    /// Kubernetes pod UID; may be empty (then `container_id` names the pod).
    #[serde(default)]
    pub pod_uid: String,
    /// The sandbox (infra) container id.
    pub container_id: String,
    /// Path of the pod's network namespace; may be empty on DEL.
    #[serde(default)]
    pub netns: String,
}

/// The agent's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentResponse {
    /// Whether the command succeeded.
    pub ok: bool,
    /// Why not, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a call to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The agent's socket could not be reached (the agent is not running).
    #[error("cannot reach the braid node agent at {}: {source}; is braid-cni agent running on this node?", path.display())]
    Unreachable {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The exchange broke off or the answer was not understood.
    #[error("braid node agent at {} did not answer properly: {reason}", path.display())]
    Protocol {
        /// Socket path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

// === impl AgentRequest ===

impl AgentRequest {
    /// The pod's stable key: its UID, else the sandbox container id.
    pub fn uid(&self) -> &str {
        if self.pod_uid.is_empty() {
            &self.container_id
        } else {
            &self.pod_uid
        }
    }

    /// `<namespace>/<pod name>`: the pod's Workload resource name.
    pub fn workload(&self) -> String {
        format!("{}/{}", self.pod_namespace, self.pod_name)
    }
}

// === impl AgentResponse ===

impl AgentResponse {
    /// Success.
    pub fn ok() -> Self {
        Self {
            ok: true,
            error: None,
        }
    }

    /// Failure with a reason.
    pub fn error(reason: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(reason.into()),
        }
    }
}

/// Sends `request` to the agent at `path` and waits up to `timeout` for the
/// answer (blocking: the plugin is a short-lived process without a runtime).
pub fn call(
    path: &Path,
    request: &AgentRequest,
    timeout: Duration,
) -> Result<AgentResponse, CallError> {
    let unreachable = |source| CallError::Unreachable {
        path: path.to_path_buf(),
        source,
    };
    let protocol = |reason: String| CallError::Protocol {
        path: path.to_path_buf(),
        reason,
    };
    let mut stream = UnixStream::connect(path).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| protocol(e.to_string()))?;
    let mut line = serde_json::to_vec(request).map_err(|e| protocol(e.to_string()))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| protocol(format!("sending the request: {e}")))?;
    let mut answer = String::new();
    BufReader::new(std::io::Read::take(&stream, MAX_LINE))
        .read_line(&mut answer)
        .map_err(|e| protocol(format!("reading the answer (timeout {timeout:?}): {e}")))?;
    serde_json::from_str(&answer).map_err(|e| protocol(format!("answer {answer:?}: {e}")))
}
