//! The upstream layer, below both proxy stacks: for one pod, where a
//! connection (L4) or a request (L7) goes and how it gets there. A
//! destination resolves to a [`Route`] (over HBONE to the destination's
//! proxy, or plain TCP to something outside the mesh) and is dialled as the
//! pod ([`PodContext`]): with its identity, from inside its network
//! namespace. What fails on the way is an [`UpstreamError`], which keeps
//! what the layer below knew (the HBONE refusal, the I/O error) so each
//! stack can answer it in its own terms.

mod error;
mod pod;
mod route;

pub(crate) use error::UpstreamError;
pub(crate) use pod::PodContext;
pub(crate) use route::{Route, UpstreamIo, Via};
