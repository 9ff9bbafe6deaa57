//! The plugin socket: one JSON request line in, one JSON response line out,
//! per connection.

use std::{path::Path, time::Duration};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
};

use super::{Agent, AgentError};
use crate::agent_api::{AgentRequest, AgentResponse, MAX_LINE};

/// How long a plugin may take to send its request line.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `path` (replacing a stale socket), mode 0600: only root may ask
/// the agent to touch pods' namespaces.
pub(super) fn bind(path: &Path) -> Result<UnixListener, AgentError> {
    let error = |source| AgentError::Serve {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(error(e)),
        _ => {}
    }
    let listener = UnixListener::bind(path).map_err(error)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(error)?;
    Ok(listener)
}

/// Accepts forever, one task per connection. An accept error (out of file
/// descriptors) is retried with a backoff rather than ending the agent.
pub(super) async fn serve(listener: UnixListener, agent: Agent) -> Result<(), AgentError> {
    let mut gate = braid_listen::Gate::new("CNI plugin socket");
    loop {
        let ((stream, _), _) = gate.accept(|| listener.accept()).await;
        let agent = agent.clone();
        tokio::spawn(async move {
            if let Err(error) = answer(stream, &agent).await {
                tracing::warn!(%error, "plugin connection failed");
            }
        });
    }
}

async fn answer(stream: UnixStream, agent: &Agent) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_LINE));
    let response = match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => AgentResponse::error(format!("no request line within {READ_TIMEOUT:?}")),
        Ok(read) => {
            read?;
            match serde_json::from_str::<AgentRequest>(&line) {
                Err(e) => AgentResponse::error(format!("invalid request {line:?}: {e}")),
                Ok(request) => respond(agent, &request).await,
            }
        }
    };
    let mut bytes = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.shutdown().await
}

async fn respond(agent: &Agent, request: &AgentRequest) -> AgentResponse {
    let workload = request.workload();
    match agent.handle(request).await {
        Ok(()) => AgentResponse::ok(),
        Err(error) => {
            tracing::warn!(cmd = ?request.cmd, %workload, %error, "plugin request failed");
            AgentResponse::error(error.to_string())
        }
    }
}
