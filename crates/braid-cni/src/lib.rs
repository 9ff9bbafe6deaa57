//! Braid's CNI plugin and node agent: the pieces that hand *ambient* pods to
//! the node's ztunnel.
//!
//! * [`handoff`]: the node-local protocol (Unix seqpacket, JSON packets, a
//!   pod's network namespace passed as an fd) from the agent to the
//!   ztunnel. The ztunnel uses [`handoff::HandoffListener`]; the agent
//!   [`handoff::HandoffClient`].
//! * [`agent`]: the node agent (`braid-cni agent`). It learns each pod's
//!   effective mode from the control plane ([`agent::ModeSource`]), installs
//!   the in-pod redirect rules of ambient pods, records them in a state
//!   directory and hands them to the ztunnel, replaying every recorded pod
//!   whenever the ztunnel (re)connects.
//! * [`plugin`]: the CNI plugin (the same binary, when `CNI_COMMAND` is
//!   set), chained after the main network plugin; it forwards Kubernetes pods
//!   to the agent over [`agent_api`] and passes `prevResult` through.
//! * [`chain`]: puts the plugin last in the node's CNI configuration (and
//!   takes it out), for `braid-cni install` and the agent's
//!   `--cni-conf-dir`.
//!
//! What it is not: it does not proxy traffic or open listeners (the ztunnel
//! does, inside the handed-over namespace), it does not write iptables rules
//! itself (`braid-capture` does), it never captures sidecar pods, and it
//! does not configure pod networking (the main CNI plugin did that).

pub mod agent;
pub mod agent_api;
pub mod chain;
pub mod handoff;
pub mod plugin;
