//! What the index's tests share: loading YAML documents into an index the
//! way a source would, and publishing its updates the way the server does.

use braid_model::k8s::MeshSettings;

use crate::{
    index::Index,
    snapshot::Snapshot,
    source::{Change, document},
};

/// Applies every object in `yaml` to `index`, as a directory source would.
pub(crate) fn load(index: &mut Index, yaml: &str) {
    for (key, object) in document::parse(yaml, &MeshSettings::default()).expect("valid test YAML") {
        index.apply(Change::Apply(key, object));
    }
}

/// The snapshot after `snapshot` with the index's pending updates, or the
/// same snapshot when nothing changed.
pub(crate) fn publish(index: &mut Index, snapshot: &Snapshot) -> Snapshot {
    let updates = index.updates(snapshot);
    snapshot.next(updates).unwrap_or_else(|| snapshot.clone())
}
