//! The caller's side of a running client: change subscriptions, read status
//! and stores, shut down. Cheap to clone; usable from any task.

use std::{any::Any, collections::BTreeMap, sync::Arc};

use tokio::sync::{mpsc, watch};

use crate::{ClientStatus, Error, Resource, Store};

/// A handle to a [`Client`](crate::Client), obtained with
/// [`Client::handle`](crate::Client::handle) before running it.
///
/// Subscription changes are queued to the client's task: sent at once while
/// the stream is open, otherwise folded into the next stream's initial
/// requests.
#[derive(Clone)]
pub struct ClientHandle {
    commands: mpsc::UnboundedSender<Command>,
    shutdown: Arc<watch::Sender<bool>>,
    status: watch::Receiver<ClientStatus>,
    /// type URL → `Store<T>` of that type, recovered by downcasting.
    stores: Arc<BTreeMap<&'static str, Arc<dyn Any + Send + Sync>>>,
}

/// A subscription change for the client's task.
#[derive(Debug)]
pub(crate) enum Command {
    Subscribe {
        type_url: &'static str,
        names: Vec<String>,
    },
    Unsubscribe {
        type_url: &'static str,
        names: Vec<String>,
    },
}

// === impl ClientHandle ===

impl ClientHandle {
    pub(crate) fn new(
        commands: mpsc::UnboundedSender<Command>,
        shutdown: watch::Sender<bool>,
        status: watch::Receiver<ClientStatus>,
        stores: BTreeMap<&'static str, Arc<dyn Any + Send + Sync>>,
    ) -> Self {
        Self {
            commands,
            shutdown: Arc::new(shutdown),
            status,
            stores: Arc::new(stores),
        }
    }

    /// Adds `names` to the subscription of `type_url` (sent as
    /// `resource_names_subscribe`, without a nonce). Names already subscribed
    /// are ignored; [`WILDCARD`](crate::WILDCARD) turns the wildcard on.
    pub fn subscribe<I, S>(&self, type_url: &str, names: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let type_url = self.watched(type_url)?;
        let names = names.into_iter().map(Into::into).collect();
        self.send(Command::Subscribe { type_url, names })
    }

    /// Removes `names` from the subscription of `type_url` (sent as
    /// `resource_names_unsubscribe`). Resources no longer wanted are dropped
    /// from the store and the handler sees them removed; a wildcard watch
    /// keeps them, since the wildcard still covers them.
    /// [`WILDCARD`](crate::WILDCARD) turns the wildcard off, keeping only
    /// resources subscribed by name.
    pub fn unsubscribe<I, S>(&self, type_url: &str, names: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let type_url = self.watched(type_url)?;
        let names = names.into_iter().map(Into::into).collect();
        self.send(Command::Unsubscribe { type_url, names })
    }

    /// The client's current state.
    pub fn status(&self) -> ClientStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change, for waiting on a condition
    /// (e.g. `wait_for(ClientStatus::is_synced)`) instead of polling.
    pub fn status_changes(&self) -> watch::Receiver<ClientStatus> {
        self.status.clone()
    }

    /// The store of resource type `T`, if the client watches it.
    pub fn store<T: Resource>(&self) -> Option<Store<T>> {
        self.stores
            .get(T::TYPE_URL)?
            .downcast_ref::<Store<T>>()
            .cloned()
    }

    /// Asks the client to close its stream and return from
    /// [`Client::run`](crate::Client::run). Idempotent.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    fn watched(&self, type_url: &str) -> Result<&'static str, Error> {
        self.stores
            .keys()
            .find(|url| **url == type_url)
            .copied()
            .ok_or_else(|| Error::NotWatched {
                type_url: type_url.to_string(),
            })
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).map_err(|_| Error::Stopped)
    }
}

impl std::fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandle")
            .field("types", &self.stores.keys().collect::<Vec<_>>())
            .finish()
    }
}
