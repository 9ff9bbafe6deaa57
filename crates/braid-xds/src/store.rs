//! What a watch delivers: the per-type cache ([`Store`]) and the applied
//! changes handed to a [`Handler`] ([`Delta`]).

use std::{
    collections::BTreeMap,
    sync::{Arc, PoisonError, RwLock},
};

/// The resources of one type the client holds: name → [`Cached`].
///
/// Updated by the client before its handler is called, so a handler (or
/// anyone holding a clone) reading the store sees at least the state the
/// delta describes. Cloning is cheap (a shared reference); reads take a short
/// lock and never wait on the network.
pub struct Store<T> {
    inner: Arc<RwLock<BTreeMap<String, Cached<T>>>>,
}

/// One cached resource: the server's version and the converted value.
#[derive(Debug)]
pub struct Cached<T> {
    /// The per-resource version the server sent.
    pub version: String,
    /// The converted value, shared with handlers and snapshots.
    pub value: Arc<T>,
}

/// The changes one response applied to a type's [`Store`].
///
/// Only effective changes are reported: a rejected resource, a resource
/// resent with the version already held and a removal of a name not held are
/// absent.
#[derive(Debug)]
pub struct Delta<T> {
    /// `system_version_info` of the response (for logs; not a resource version).
    pub system_version_info: String,
    /// Added or changed resources.
    pub updated: Vec<Updated<T>>,
    /// Names no longer held: removed by the server, or unsubscribed locally.
    pub removed: Vec<String>,
}

/// An added or changed resource in a [`Delta`].
#[derive(Debug)]
pub struct Updated<T> {
    /// Resource name (the key in the store).
    pub name: String,
    /// Its new version.
    pub version: String,
    /// Its new value.
    pub value: Arc<T>,
}

/// Receives the applied deltas of one type.
///
/// Called on the client's task, once per response (or unsubscribe) that
/// changed the store, in order. It must not block: forward slow work to a
/// channel. A panic ends the client's task. Implemented for every
/// `FnMut(Delta<T>) + Send + 'static`.
pub trait Handler<T>: Send + 'static {
    /// Handles one applied delta.
    fn handle(&mut self, delta: Delta<T>);
}

impl<T, F> Handler<T> for F
where
    F: FnMut(Delta<T>) + Send + 'static,
{
    fn handle(&mut self, delta: Delta<T>) {
        self(delta)
    }
}

// === impl Store ===

impl<T> Store<T> {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(RwLock::new(BTreeMap::new())),
        }
    }

    /// The resource named `name`, if held.
    pub fn get(&self, name: &str) -> Option<Cached<T>> {
        self.read().get(name).cloned()
    }

    /// Every held resource, by name.
    pub fn snapshot(&self) -> BTreeMap<String, Cached<T>> {
        self.read().clone()
    }

    /// How many resources are held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no resource is held.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// name → version of every held resource, for `initial_resource_versions`.
    pub(crate) fn versions(&self) -> BTreeMap<String, String> {
        self.read()
            .iter()
            .map(|(name, c)| (name.clone(), c.version.clone()))
            .collect()
    }

    /// Applies updates and removals in one write. Returns what changed: the
    /// updates whose version differs from the one held, and the removed
    /// names that were held.
    pub(crate) fn apply(
        &self,
        updated: Vec<Updated<T>>,
        removed: &[String],
    ) -> (Vec<Updated<T>>, Vec<String>) {
        let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let changed: Vec<Updated<T>> = updated
            .into_iter()
            .filter(|u| {
                map.get(&u.name)
                    .is_none_or(|held| held.version != u.version)
            })
            .collect();
        for u in &changed {
            let cached = Cached {
                version: u.version.clone(),
                value: u.value.clone(),
            };
            map.insert(u.name.clone(), cached);
        }
        let removed = removed
            .iter()
            .filter(|name| map.remove(name.as_str()).is_some())
            .cloned()
            .collect();
        (changed, removed)
    }

    // A poisoned lock only means a reader panicked; the map itself is always
    // left consistent (each write is a single insert or remove), so keep going.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Cached<T>>> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Clone for Store<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Store<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("len", &self.len()).finish()
    }
}

// === impl Cached ===

impl<T> Clone for Cached<T> {
    fn clone(&self) -> Self {
        Self {
            version: self.version.clone(),
            value: self.value.clone(),
        }
    }
}

// === impl Delta ===

impl<T> Delta<T> {
    /// Whether the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.updated.is_empty() && self.removed.is_empty()
    }
}
