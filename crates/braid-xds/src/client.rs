//! Building a client: the server, the node, the watches, and the knobs of
//! the connection. The run loop lives in `client/run.rs`.

use std::{any::Any, collections::BTreeMap, sync::Arc, time::Duration};

use braid_api::envoy::config::core::v3 as core;
use tokio::sync::{mpsc, watch};
use tonic::transport::Endpoint;

use crate::{
    Backoff, ClientHandle, ClientStatus, Error, Handler, Resource, Store, Subscription,
    backoff::Attempts, handle::Command, type_state::TypeState, watch::Watch,
};

mod run;

/// Who the client is, sent as `node` in the first request of every stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node id, e.g. `ztunnel~198.18.0.1~node-a`; the server keys its
    /// per-proxy state and its status API by it.
    pub id: String,
    /// Local service cluster; empty when not applicable.
    pub cluster: String,
    /// Client type, e.g. `braid-proxy` or `braidctl`.
    pub user_agent_name: String,
    /// Client version.
    pub user_agent_version: String,
}

/// Configures a [`Client`]; see [`Client::builder`].
pub struct ClientBuilder {
    uri: String,
    node: NodeInfo,
    backoff: Backoff,
    connect_timeout: Duration,
    max_message_size: usize,
    types: BTreeMap<&'static str, TypeState>,
    stores: BTreeMap<&'static str, Arc<dyn Any + Send + Sync>>,
    duplicate: Option<&'static str>,
    tls: Option<crate::ControlPlaneTls>,
    token: Option<String>,
}

/// A Delta xDS client: one stream to one server, reconnecting until shut
/// down. Get a [`ClientHandle`] with [`Client::handle`], then drive it with
/// [`Client::run`].
pub struct Client {
    uri: String,
    endpoint: Endpoint,
    /// TLS to the control plane, when it serves TLS.
    tls: Option<Arc<braid_identity::rustls::ClientConfig>>,
    node: core::Node,
    /// `authorization` metadata sent when the stream opens.
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    max_message_size: usize,
    attempts: Attempts,
    types: BTreeMap<&'static str, TypeState>,
    commands: mpsc::UnboundedReceiver<Command>,
    shutdown: watch::Receiver<bool>,
    status: watch::Sender<ClientStatus>,
    handle: ClientHandle,
}

// === impl NodeInfo ===

impl NodeInfo {
    /// A node with this id, identifying itself as this crate and version.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            cluster: String::new(),
            user_agent_name: env!("CARGO_PKG_NAME").to_string(),
            user_agent_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    fn to_proto(&self) -> core::Node {
        core::Node {
            id: self.id.clone(),
            cluster: self.cluster.clone(),
            user_agent_name: self.user_agent_name.clone(),
            user_agent_version_type: Some(core::node::UserAgentVersionType::UserAgentVersion(
                self.user_agent_version.clone(),
            )),
            ..Default::default()
        }
    }
}

// === impl ClientBuilder ===

impl ClientBuilder {
    /// Watches resource type `T`: subscribes as `subscription` says, keeps a
    /// [`Store<T>`] (see [`ClientHandle::store`]) and calls `handler` with
    /// every applied [`Delta`](crate::Delta). One watch per type; a second one
    /// makes [`build`](Self::build) fail.
    pub fn watch<T: Resource>(
        mut self,
        subscription: Subscription,
        handler: impl Handler<T>,
    ) -> Self {
        if self.types.contains_key(T::TYPE_URL) {
            self.duplicate.get_or_insert(T::TYPE_URL);
            return self;
        }
        let store = Store::<T>::new();
        self.stores.insert(T::TYPE_URL, Arc::new(store.clone()));
        let watch = Box::new(Watch::new(store, handler));
        self.types.insert(
            T::TYPE_URL,
            TypeState::new(T::TYPE_URL, subscription, watch),
        );
        self
    }

    /// Sets the reconnect backoff (default: [`Backoff::default`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets how long one connection attempt may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the largest response accepted, in bytes (default 64 MiB). The
    /// first response of a wildcard watch carries the whole mesh, so gRPC's
    /// usual 4 MiB is too small for a large cluster.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Speaks TLS to the control plane, which must present `tls.expected`
    /// chained to `tls.bundle` (default: plaintext).
    pub fn control_plane_tls(mut self, tls: crate::ControlPlaneTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Presents `token` (`authorization: Bearer <token>`) when the stream
    /// opens: the proxy's credential, as for the certificate service.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Checks the configuration and creates the client; nothing connects yet.
    pub fn build(self) -> Result<Client, Error> {
        if let Some(type_url) = self.duplicate {
            return Err(Error::DuplicateWatch { type_url });
        }
        let authorization = self
            .token
            .as_deref()
            .map(|t| format!("Bearer {}", t.trim()).parse())
            .transpose()
            .map_err(|_| Error::InvalidToken)?;
        let endpoint = Endpoint::from_shared(self.uri.clone())
            .map_err(|source| Error::InvalidUri {
                uri: self.uri.clone(),
                source,
            })?
            .connect_timeout(self.connect_timeout)
            // xDS streams idle for long stretches; pings find a dead peer (a
            // crashed control plane, a dropped NAT entry) that TCP would not.
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let statuses = self
            .types
            .iter()
            .map(|(url, state)| (*url, state.status().clone()))
            .collect();
        let (status_tx, status_rx) = watch::channel(ClientStatus::new(statuses));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let handle = ClientHandle::new(commands_tx, shutdown_tx, status_rx, self.stores);
        let tls = self
            .tls
            .as_ref()
            .map(crate::channel::client_config)
            .transpose()?;
        Ok(Client {
            uri: self.uri,
            endpoint,
            tls,
            node: self.node.to_proto(),
            authorization,
            max_message_size: self.max_message_size,
            attempts: Attempts::new(self.backoff),
            types: self.types,
            commands: commands_rx,
            shutdown: shutdown_rx,
            status: status_tx,
            handle,
        })
    }
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("uri", &self.uri)
            .field("node", &self.node)
            .field("types", &self.types.keys().collect::<Vec<_>>())
            .finish()
    }
}

// === impl Client ===

impl Client {
    /// Starts configuring a client of the server at `uri` (e.g.
    /// `http://braid-control:15010`) for `node`.
    pub fn builder(uri: impl Into<String>, node: NodeInfo) -> ClientBuilder {
        ClientBuilder {
            uri: uri.into(),
            node,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
            max_message_size: 64 << 20,
            types: BTreeMap::new(),
            stores: BTreeMap::new(),
            duplicate: None,
            tls: None,
            token: None,
        }
    }

    /// A handle to change subscriptions, read status and stores, and shut
    /// the client down.
    pub fn handle(&self) -> ClientHandle {
        self.handle.clone()
    }

    /// Runs the client on a new task; returns its handle and the task.
    pub fn spawn(self) -> (ClientHandle, tokio::task::JoinHandle<()>) {
        let handle = self.handle();
        (handle, tokio::spawn(self.run()))
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("uri", &self.uri)
            .field("types", &self.types.keys().collect::<Vec<_>>())
            .finish()
    }
}
