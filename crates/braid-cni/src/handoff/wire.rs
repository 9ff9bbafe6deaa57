//! The JSON messages of the hand-off protocol and their strict decoding.

use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

use super::{HandoffError, PodEvent, socket::Packet};

/// agent → ztunnel.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Request {
    Hello { version: u32 },
    AddPod { uid: String, workload: String },
    RemovePod { uid: String },
    SnapshotSent,
}

/// ztunnel → agent.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Reply {
    Ack { error: Option<String> },
}

/// A decoded agent message.
#[derive(Debug)]
pub(crate) enum Incoming {
    Hello(u32),
    Event(PodEvent),
}

// === impl Request ===

impl Request {
    /// The message type, as on the wire.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::AddPod { .. } => "add_pod",
            Self::RemovePod { .. } => "remove_pod",
            Self::SnapshotSent => "snapshot_sent",
        }
    }

    /// What to call this message in errors and logs.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::AddPod { uid, workload } => format!("add_pod {workload} (uid {uid})"),
            Self::RemovePod { uid } => format!("remove_pod {uid}"),
            other => other.kind().to_string(),
        }
    }
}

/// Serializes a message; these types cannot fail to serialize.
pub(crate) fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).unwrap_or_default()
}

/// Decodes an agent packet, checking its fd count. The packet's fds are
/// consumed: the one `add_pod` keeps, or closed.
pub(crate) fn decode_request(packet: Packet) -> Result<Incoming, HandoffError> {
    if packet.truncated {
        return Err(HandoffError::Oversized);
    }
    let request: Request = serde_json::from_slice(&packet.bytes)
        .map_err(|e| HandoffError::Malformed(e.to_string()))?;
    let mut fds = packet.fds;
    let expected = usize::from(matches!(request, Request::AddPod { .. }));
    if fds.len() != expected {
        return Err(HandoffError::FdCount {
            message: request.kind(),
            expected,
            got: fds.len(),
        });
    }
    Ok(match request {
        Request::Hello { version } => Incoming::Hello(version),
        Request::AddPod { uid, workload } => {
            check_uid(&uid)?;
            check_workload(&workload)?;
            let netns: OwnedFd = fds.pop().ok_or(HandoffError::Malformed("no fd".into()))?;
            Incoming::Event(PodEvent::Add {
                uid,
                workload,
                netns,
            })
        }
        Request::RemovePod { uid } => {
            check_uid(&uid)?;
            Incoming::Event(PodEvent::Remove { uid })
        }
        Request::SnapshotSent => Incoming::Event(PodEvent::SnapshotSent),
    })
}

/// Decodes a ztunnel packet.
pub(crate) fn decode_reply(packet: Packet) -> Result<Reply, HandoffError> {
    if packet.truncated {
        return Err(HandoffError::Oversized);
    }
    if !packet.fds.is_empty() {
        return Err(HandoffError::FdCount {
            message: "ack",
            expected: 0,
            got: packet.fds.len(),
        });
    }
    serde_json::from_slice(&packet.bytes).map_err(|e| HandoffError::Malformed(e.to_string()))
}

fn check_uid(uid: &str) -> Result<(), HandoffError> {
    if uid.is_empty() {
        return Err(HandoffError::Malformed("field uid is empty".into()));
    }
    Ok(())
}

fn check_workload(workload: &str) -> Result<(), HandoffError> {
    match workload.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => Ok(()),
        _ => Err(HandoffError::Malformed(format!(
            "field workload {workload:?} is not \"<namespace>/<pod name>\""
        ))),
    }
}
