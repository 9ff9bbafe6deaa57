//! The Delta xDS client every Braid proxy (sidecar, ztunnel, waypoint) and
//! `braidctl x watch` use to receive configuration from `braid-control`.
//!
//! It is an explicit state machine over one `DeltaAggregatedResources` stream:
//!
//! * **Typed handlers per type URL.** [`ClientBuilder::watch`] registers a
//!   [`Handler`] for a [`Resource`] type (a `braid-model` type that knows its
//!   proto message and type URL). Each resource's `Any` is decoded and
//!   converted with `TryFrom` once, here; wire types never reach the handler.
//! * **A cache per type** ([`Store`]): name → (version, value), updated before
//!   the handler sees the [`Delta`], readable at any time through
//!   [`ClientHandle::store`].
//! * **ACK/NACK per response.** A resource that fails to decode or convert is
//!   not applied (its previous version stays) and the response is NACKed with
//!   `INVALID_ARGUMENT` naming every failing resource; the good resources of
//!   the same response are applied.
//! * **Subscriptions**: wildcard or explicit names, changed at run time with
//!   [`ClientHandle::subscribe`] / [`ClientHandle::unsubscribe`].
//! * **Reconnects** with exponential backoff and jitter ([`Backoff`]); every new
//!   stream announces, per type, the versions already held
//!   (`initial_resource_versions`) so the server sends only differences and
//!   lists what was removed meanwhile.
//! * **Certificates**: [`GrpcCertificateSource`] lets braid-identity's
//!   certificate manager fetch and renew certificates from the control
//!   plane's `CertificateService`, with the proxy's bearer token.
//! * **Observable**: [`ClientStatus`] (connection state, per type counts,
//!   last ACKed nonce/version, last NACK) via [`ClientHandle::status`].
//!
//! What it is not: not a server (that is `braid-control`), not an index (a
//! handler feeds the caller's own), and it does not dial TLS itself yet: the
//! endpoint is a plain `http://` URI until `braid-identity` provides the
//! client configuration. It also does not time out names the server never
//! answers for (Envoy's "does not exist" timers); a handler sees nothing for
//! them.
//!
//! ```no_run
//! use braid_xds::{Client, Delta, NodeInfo, Subscription};
//! # async fn example() -> Result<(), braid_xds::Error> {
//! let client = Client::builder("http://127.0.0.1:15010", NodeInfo::new("ztunnel~node-a"))
//!     .watch::<braid_model::Workload>(Subscription::Wildcard, |delta: Delta<_>| {
//!         for w in &delta.updated {
//!             println!("{} @ {}", w.name, w.version);
//!         }
//!     })
//!     .build()?;
//! let handle = client.handle();
//! let task = tokio::spawn(client.run());
//! // ... later
//! handle.shutdown();
//! let _ = task.await;
//! # Ok(())
//! # }
//! ```

mod backoff;
mod certificates;
pub mod channel;
mod client;
mod error;
mod handle;
mod resource;
mod status;
mod store;
mod subscription;
mod type_state;
mod watch;

/// Bytes of a server-supplied field (type URL, nonce, name) written to a log
/// line; every such field is also escaped ([`braid_model::text::Escaped`]) so
/// a control plane cannot forge log lines or drive a terminal.
const LOGGED_FIELD_BYTES: usize = 256;

/// Bytes of a NACK reason written to a log line (it quotes resource names).
const LOGGED_REASON_BYTES: usize = 1024;

#[cfg(feature = "test-util")]
pub mod test_util;

pub use backoff::Backoff;
pub use certificates::GrpcCertificateSource;
pub use channel::ControlPlaneTls;
pub use client::{Client, ClientBuilder, NodeInfo};
pub use error::{Error, Rejected, ResourceError};
pub use handle::ClientHandle;
pub use resource::Resource;
pub use status::{ClientStatus, ConnectionState, Nack, TypeStatus};
pub use store::{Cached, Delta, Handler, Store, Updated};
pub use subscription::Subscription;

/// The wildcard resource name: subscribes to every resource of a type.
///
/// Sent explicitly in `resource_names_subscribe` (rather than relying on the
/// legacy "empty first request means wildcard" rule) so the server never has
/// to guess, and so a wildcard watch can also name extra resources.
pub const WILDCARD: &str = "*";
