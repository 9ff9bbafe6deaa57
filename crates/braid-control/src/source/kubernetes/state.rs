//! The Kubernetes source's bookkeeping, free of I/O: what each watch has
//! reported so far, turned into [`Change`]s for the index.
//!
//! Two rules shape it:
//! * **Last good keeps serving.** An object whose new version does not
//!   validate keeps its previous version in the index; the error is reported
//!   under the object's reference and, for Braid CRDs and routes, as a verdict the
//!   status writer turns into an `Invalid` condition (`Accepted=False` on
//!   an HTTPRoute).
//! * **A re-list is the truth.** After a watch restarts (its resource version
//!   expired, the API server restarted) the full list replaces what the watch
//!   had reported: objects missing from it were deleted while nobody watched.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
};

use braid_model::k8s::FieldError;

use crate::source::{Change, ConfigError, ConfigErrors, Kind, KubeObject, ObjectKey};

/// One object as a watch reported it, already converted.
#[derive(Clone, Debug)]
pub struct Observed {
    /// Kind, namespace and name (from the object's metadata).
    pub key: ObjectKey,
    /// `metadata.generation`, for status conditions.
    pub generation: Option<i64>,
    /// The converted object; `Ok(None)` when it exists but is not part of
    /// the mesh (a finished pod, a Secret of another type).
    pub object: Result<Option<Arc<KubeObject>>, FieldError>,
}

/// What a watch reported.
#[derive(Clone, Debug)]
pub enum WatchEvent {
    /// A (re-)list starts.
    Init,
    /// An object of the list.
    InitApply(Observed),
    /// The list is complete.
    InitDone,
    /// An object was created or changed.
    Apply(Observed),
    /// An object was deleted.
    Delete(ObjectKey),
}

/// The verdict on one Braid CRD object or HTTPRoute: its generation and, when it was
/// rejected, why (`field: message`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrdVerdict {
    /// `metadata.generation` the verdict is about.
    pub generation: Option<i64>,
    /// `None` when accepted.
    pub error: Option<String>,
}

/// Everything the watches reported.
#[derive(Debug)]
pub struct SourceState {
    kinds: BTreeMap<Kind, KindState>,
    errors: ConfigErrors,
    verdicts: BTreeMap<ObjectKey, CrdVerdict>,
}

#[derive(Debug, Default)]
struct KindState {
    /// The version of each object the index holds.
    known: HashMap<ObjectKey, Arc<KubeObject>>,
    /// Objects whose current version is rejected.
    failing: HashSet<ObjectKey>,
    /// The list being received, between `Init` and `InitDone`.
    relist: Option<Vec<Observed>>,
    /// A list has completed at least once.
    synced: bool,
}

// === impl SourceState ===

impl SourceState {
    /// State for watches of `kinds`; rejected objects are reported to `errors`.
    pub fn new(kinds: &[Kind], errors: ConfigErrors) -> Self {
        Self {
            kinds: kinds.iter().map(|k| (*k, KindState::default())).collect(),
            errors,
            verdicts: BTreeMap::new(),
        }
    }

    /// The kinds whose first list has not completed.
    pub fn unsynced(&self) -> Vec<Kind> {
        self.kinds
            .iter()
            .filter(|(_, s)| !s.synced)
            .map(|(k, _)| *k)
            .collect()
    }

    /// The current verdicts on Braid CRD objects and HTTPRoutes.
    pub fn verdicts(&self) -> &BTreeMap<ObjectKey, CrdVerdict> {
        &self.verdicts
    }

    /// Applies one event of `kind`'s watch, appending the resulting changes.
    pub fn handle(&mut self, kind: Kind, event: WatchEvent, changes: &mut Vec<Change>) {
        let Some(state) = self.kinds.get_mut(&kind) else {
            return;
        };
        match event {
            WatchEvent::Init => state.relist = Some(Vec::new()),
            WatchEvent::InitApply(observed) => match &mut state.relist {
                Some(list) => list.push(observed),
                // Not expected from the watcher; applying it is still right.
                None => self.observe(kind, observed, changes),
            },
            WatchEvent::InitDone => self.finish_relist(kind, changes),
            WatchEvent::Apply(observed) => self.observe(kind, observed, changes),
            WatchEvent::Delete(key) => self.delete(kind, &key, changes),
        }
    }

    fn observe(&mut self, kind: Kind, observed: Observed, changes: &mut Vec<Change>) {
        let Some(state) = self.kinds.get_mut(&kind) else {
            return;
        };
        let Observed {
            key,
            generation,
            object,
        } = observed;
        match object {
            Ok(Some(object)) => {
                if state.known.get(&key) != Some(&object) {
                    state.known.insert(key.clone(), object.clone());
                    changes.push(Change::Apply(key.clone(), object));
                }
                self.accept(&key, generation);
            }
            Ok(None) => {
                if state.known.remove(&key).is_some() {
                    changes.push(Change::Delete(key.clone()));
                }
                self.accept(&key, generation);
                self.verdicts.remove(&key);
            }
            Err(error) => self.reject(&key, generation, error),
        }
    }

    fn delete(&mut self, kind: Kind, key: &ObjectKey, changes: &mut Vec<Change>) {
        let Some(state) = self.kinds.get_mut(&kind) else {
            return;
        };
        if state.known.remove(key).is_some() {
            changes.push(Change::Delete(key.clone()));
        }
        if state.failing.remove(key) {
            self.errors.set(&error_path(key), Vec::new());
        }
        self.verdicts.remove(key);
    }

    /// Replaces what the watch reported with the completed list.
    fn finish_relist(&mut self, kind: Kind, changes: &mut Vec<Change>) {
        let Some(state) = self.kinds.get_mut(&kind) else {
            return;
        };
        let list = state.relist.take().unwrap_or_default();
        state.synced = true;
        let listed: HashSet<ObjectKey> = list.iter().map(|o| o.key.clone()).collect();
        let vanished: Vec<ObjectKey> = state
            .known
            .keys()
            .chain(state.failing.iter())
            .filter(|k| !listed.contains(*k))
            .cloned()
            .collect();
        for key in vanished {
            self.delete(kind, &key, changes);
        }
        for observed in list {
            self.observe(kind, observed, changes);
        }
    }

    fn accept(&mut self, key: &ObjectKey, generation: Option<i64>) {
        if let Some(state) = self.kinds.get_mut(&key.kind)
            && state.failing.remove(key)
        {
            self.errors.set(&error_path(key), Vec::new());
            tracing::info!(object = %key, "object is valid again");
        }
        if is_crd(key.kind) {
            self.verdicts.insert(
                key.clone(),
                CrdVerdict {
                    generation,
                    error: None,
                },
            );
        }
    }

    fn reject(&mut self, key: &ObjectKey, generation: Option<i64>, error: FieldError) {
        let path = error_path(key);
        let reported = ConfigError {
            file: path.clone(),
            document: None,
            field: error.field.clone(),
            message: error.message.clone(),
        };
        // Watches resend objects on every re-list; log each error once.
        if self.errors.get(&path) != [reported.clone()] {
            tracing::warn!(object = %key, error = %reported, "rejected object; its last good version keeps serving");
        }
        self.errors.set(&path, vec![reported]);
        if let Some(state) = self.kinds.get_mut(&key.kind) {
            state.failing.insert(key.clone());
        }
        if is_crd(key.kind) {
            let message = match error.field.is_empty() {
                true => error.message,
                false => format!("{}: {}", error.field, error.message),
            };
            self.verdicts.insert(
                key.clone(),
                CrdVerdict {
                    generation,
                    error: Some(message),
                },
            );
        }
    }
}

/// Where a rejected object's error is filed: its reference, e.g.
/// `AuthorizationPolicy shop/deny-all` (the file source files by path).
pub fn error_path(key: &ObjectKey) -> PathBuf {
    PathBuf::from(key.to_string())
}

/// The kinds the control plane writes status conditions on.
fn is_crd(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::AuthorizationPolicy | Kind::PeerAuthentication | Kind::HttpRoute | Kind::Gateway
    )
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
