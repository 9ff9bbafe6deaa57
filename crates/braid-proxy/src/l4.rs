//! The L4 stack for one pod: connections proxied as bytes. Outbound, a
//! connection the outbound listener did not give to the HTTP stack is
//! resolved, dialled and relayed ([`outbound`]); inbound, HBONE on 15008
//! and plaintext captured to 15006 are checked against the pod's policy and
//! connected to the pod's port ([`inbound`]).

pub(crate) mod inbound;
pub(crate) mod outbound;

/// Where captured outbound traffic lands.
pub const OUTBOUND_PORT: u16 = braid_model::catalog::ports::OUTBOUND.number;
/// Where captured plaintext inbound traffic lands.
pub const INBOUND_PLAINTEXT_PORT: u16 = braid_model::catalog::ports::INBOUND_PLAINTEXT.number;
