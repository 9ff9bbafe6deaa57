//! The edge between typed watches and the untyped stream loop: a [`Watch`]
//! knows its resource type; the loop sees only [`ErasedWatch`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use braid_api::envoy::service::discovery::v3 as xds;
use braid_model::text::escaped;

use crate::{
    Delta, Handler, LOGGED_FIELD_BYTES, Rejected, Resource, ResourceError, Store, Updated,
    resource::decode, subscription::Subscribed,
};

/// A watch with its type erased: what the stream loop needs from it.
pub(crate) trait ErasedWatch: Send {
    /// Decodes and applies one response's resources and removals, calls the
    /// handler with what changed, and returns the resources it rejected.
    fn apply(&mut self, response: RawDelta, subscribed: &Subscribed) -> Vec<Rejected>;

    /// Drops resources the caller unsubscribed from and tells the handler.
    fn forget(&mut self, names: Vec<String>);

    /// name → version of every held resource.
    fn versions(&self) -> BTreeMap<String, String>;

    /// How many resources are held.
    fn len(&self) -> usize;
}

/// The undecoded part of a response that a watch applies.
pub(crate) struct RawDelta {
    pub(crate) system_version_info: String,
    pub(crate) resources: Vec<xds::Resource>,
    pub(crate) removed: Vec<String>,
}

/// A typed watch: the store it fills and the handler it calls.
pub(crate) struct Watch<T, H> {
    store: Store<T>,
    handler: H,
}

// === impl Watch ===

impl<T: Resource, H: Handler<T>> Watch<T, H> {
    pub(crate) fn new(store: Store<T>, handler: H) -> Self {
        Self { store, handler }
    }

    fn notify(
        &mut self,
        system_version_info: String,
        updated: Vec<Updated<T>>,
        removed: Vec<String>,
    ) {
        let delta = Delta {
            system_version_info,
            updated,
            removed,
        };
        if !delta.is_empty() {
            self.handler.handle(delta);
        }
    }
}

impl<T: Resource, H: Handler<T>> ErasedWatch for Watch<T, H> {
    fn apply(&mut self, response: RawDelta, subscribed: &Subscribed) -> Vec<Rejected> {
        // Two entries for one name leave no way to tell which the server
        // meant, so neither is applied.
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for r in &response.resources {
            *seen.entry(r.name.as_str()).or_default() += 1;
        }
        let duplicated: Vec<String> = seen
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(name, _)| name.to_string())
            .collect();

        let mut updated = Vec::with_capacity(response.resources.len());
        let mut rejected = Vec::new();
        for r in response.resources {
            let result = if duplicated.contains(&r.name) {
                Err(ResourceError::Duplicate)
            } else if !subscribed.wants(&r.name) {
                tracing::debug!(type_url = T::TYPE_URL, name = %escaped(&r.name).truncated(LOGGED_FIELD_BYTES), "ignoring a resource not subscribed to");
                continue;
            } else {
                decode::<T>(&r)
            };
            match result {
                Ok(value) => updated.push(Updated {
                    name: r.name,
                    version: r.version,
                    value: Arc::new(value),
                }),
                Err(error) => rejected.push(Rejected {
                    name: r.name,
                    error,
                }),
            }
        }
        let (updated, removed) = self.store.apply(updated, &response.removed);
        self.notify(response.system_version_info, updated, removed);
        rejected
    }

    fn forget(&mut self, names: Vec<String>) {
        let (_, removed) = self.store.apply(Vec::new(), &names);
        self.notify(String::new(), Vec::new(), removed);
    }

    fn versions(&self) -> BTreeMap<String, String> {
        self.store.versions()
    }

    fn len(&self) -> usize {
        self.store.len()
    }
}
