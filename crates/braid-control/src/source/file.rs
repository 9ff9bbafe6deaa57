//! The YAML-directory source: every `*.yaml`/`*.yml` under a directory
//! (nested folders, multi-document files) is read as Kubernetes objects and
//! watched for changes.
//!
//! Each file is applied atomically: when any document in it is bad, the
//! whole file keeps its last good version and the errors are reported.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use braid_model::k8s::MeshSettings;
use tokio::sync::mpsc;

use super::{
    Change, ConfigError, ConfigErrors, KubeObject, ObjectKey,
    document::{self, DocError, Objects},
};

/// How long to wait for more file events before rescanning, so an editor's
/// write-rename-chmod dance becomes one rescan.
const SETTLE: Duration = Duration::from_millis(15);

/// The longest a rescan waits for events to settle.
const MAX_SETTLE: Duration = Duration::from_millis(250);

/// Rescan even without events now and then, in case the watcher missed some
/// (e.g. inotify queue overflow).
const RESCAN_INTERVAL: Duration = Duration::from_secs(30);

/// The directory cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    /// Listing the directory failed.
    #[error("cannot read config directory {path}: {source}; check that it exists and is readable")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Setting up the file watcher failed.
    #[error("cannot watch config directory {path}: {source}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// The watcher error.
        source: notify::Error,
    },
}

/// Reads and watches one directory.
#[derive(Debug)]
pub struct FileSource {
    root: PathBuf,
    settings: MeshSettings,
    files: BTreeMap<PathBuf, FileState>,
    owners: HashMap<ObjectKey, PathBuf>,
    errors: ConfigErrors,
}

/// A live watch on the directory; dropping it stops the watch.
pub struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
    events: mpsc::UnboundedReceiver<()>,
}

impl std::fmt::Debug for DirWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatcher").finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct FileState {
    hash: u64,
    /// The objects of the last version that loaded.
    objects: Objects,
    /// The current version failed to load; retry on every scan, since a
    /// duplicate-object error may clear when another file changes.
    failed: bool,
}

// === impl FileSource ===

impl FileSource {
    /// A source for `root`; nothing is read until [`FileSource::scan`].
    pub fn new(root: impl Into<PathBuf>, settings: MeshSettings, errors: ConfigErrors) -> Self {
        Self {
            root: root.into(),
            settings,
            files: BTreeMap::new(),
            owners: HashMap::new(),
            errors,
        }
    }

    /// Reads the directory and returns what changed since the last scan.
    pub fn scan(&mut self) -> Result<Vec<Change>, FileSourceError> {
        let mut paths = Vec::new();
        walk(&self.root, &mut paths)?;
        let mut changes = Vec::new();
        let present: std::collections::HashSet<&PathBuf> = paths.iter().collect();
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            self.remove_file(&path, &mut changes);
        }
        for path in &paths {
            self.load_file(path, &mut changes);
        }
        // A file rejected for defining an object another file owned may load
        // now that the other file changed in this same scan.
        let failed: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(_, s)| s.failed)
            .map(|(p, _)| p.clone())
            .collect();
        for path in failed {
            self.load_file(&path, &mut changes);
        }
        Ok(changes)
    }

    /// Starts watching the directory. Call this before the initial
    /// [`FileSource::scan`], so no change between the two is missed.
    pub fn watch(&self) -> Result<DirWatcher, FileSourceError> {
        use notify::Watcher as _;
        let (event_tx, events) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Our own reads produce access events; reacting to them would
                // rescan forever. Errors (e.g. a queue overflow) do warrant one.
                if event.is_ok_and(|e| e.kind.is_access()) {
                    return;
                }
                // The receiver only needs a wake-up; the rescan finds what changed.
                let _ = event_tx.send(());
            })
            .map_err(|source| FileSourceError::Watch {
                path: self.root.clone(),
                source,
            })?;
        watcher
            .watch(&self.root, notify::RecursiveMode::Recursive)
            .map_err(|source| FileSourceError::Watch {
                path: self.root.clone(),
                source,
            })?;
        Ok(DirWatcher {
            _watcher: watcher,
            events,
        })
    }

    /// Rescans on every batch of file events and sends each non-empty batch
    /// of changes to `tx`, until `tx` closes.
    pub async fn run(
        mut self,
        watcher: DirWatcher,
        tx: mpsc::Sender<Vec<Change>>,
        metrics: Arc<crate::metrics::Metrics>,
    ) {
        let DirWatcher {
            _watcher,
            mut events,
        } = watcher;
        loop {
            tokio::select! {
                event = events.recv() => {
                    if event.is_none() {
                        return;
                    }
                    // Let the burst of events from one save settle, but not
                    // forever while something writes continuously.
                    let cap = tokio::time::Instant::now() + MAX_SETTLE;
                    while tokio::time::Instant::now() < cap
                        && let Ok(Some(())) = tokio::time::timeout(SETTLE, events.recv()).await
                    {}
                }
                _ = tokio::time::sleep(RESCAN_INTERVAL) => {}
                _ = tx.closed() => return,
            }
            metrics
                .config_scans
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let changes = match self.scan() {
                Ok(changes) => changes,
                Err(e) => {
                    tracing::warn!(error = %e, "config directory rescan failed; keeping the last good configuration");
                    continue;
                }
            };
            if !changes.is_empty() && tx.send(changes).await.is_err() {
                return;
            }
        }
    }

    fn remove_file(&mut self, path: &Path, changes: &mut Vec<Change>) {
        if let Some(state) = self.files.remove(path) {
            for (key, _) in state.objects {
                if self.owners.get(&key).is_some_and(|owner| owner == path) {
                    self.owners.remove(&key);
                    changes.push(Change::Delete(key));
                }
            }
            tracing::info!(file = %path.display(), "config file removed");
        }
        self.errors.set(path, Vec::new());
    }

    fn load_file(&mut self, path: &Path, changes: &mut Vec<Change>) {
        let text = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.fail(
                    path,
                    0,
                    vec![DocError {
                        document: None,
                        field: String::new(),
                        message: format!("cannot read file: {e}"),
                    }],
                );
                return;
            }
        };
        let hash = crate::hash::fnv64(&text);
        let state = self.files.entry(path.to_path_buf()).or_default();
        if state.hash == hash && !state.failed {
            return;
        }
        let parsed = match std::str::from_utf8(&text) {
            Ok(text) => document::parse(text, &self.settings),
            Err(e) => Err(vec![DocError {
                document: None,
                field: String::new(),
                message: format!("not UTF-8 text: {e}"),
            }]),
        };
        let objects = match parsed.and_then(|objects| self.check_owners(path, objects)) {
            Ok(objects) => objects,
            Err(errors) => return self.fail(path, hash, errors),
        };
        let state = self.files.entry(path.to_path_buf()).or_default();
        let was_failed = state.failed;
        let old: HashMap<ObjectKey, Arc<KubeObject>> =
            std::mem::take(&mut state.objects).into_iter().collect();
        state.hash = hash;
        state.failed = false;
        for (key, object) in &objects {
            if old.get(key).is_none_or(|o| o != object) {
                changes.push(Change::Apply(key.clone(), object.clone()));
            }
            self.owners.insert(key.clone(), path.to_path_buf());
        }
        for key in old.keys() {
            if !objects.iter().any(|(k, _)| k == key) {
                self.owners.remove(key);
                changes.push(Change::Delete(key.clone()));
            }
        }
        state.objects = objects;
        if was_failed {
            tracing::info!(file = %path.display(), "config file loads again");
        }
        self.errors.set(path, Vec::new());
    }

    /// Rejects documents that define an object another file already defines.
    fn check_owners(&self, path: &Path, objects: Objects) -> Result<Objects, Vec<DocError>> {
        let mut seen = HashMap::new();
        let mut errors = Vec::new();
        for (i, (key, _)) in objects.iter().enumerate() {
            if let Some(owner) = self.owners.get(key).filter(|owner| *owner != path) {
                errors.push(DocError {
                    document: None,
                    field: "metadata.name".into(),
                    message: format!(
                        "{key} is already defined in {}; define each object once",
                        owner.display()
                    ),
                });
            } else if seen.insert(key.clone(), i).is_some() {
                errors.push(DocError {
                    document: None,
                    field: "metadata.name".into(),
                    message: format!("{key} is defined twice in this file"),
                });
            }
        }
        if errors.is_empty() {
            Ok(objects)
        } else {
            Err(errors)
        }
    }

    fn fail(&mut self, path: &Path, hash: u64, errors: Vec<DocError>) {
        let state = self.files.entry(path.to_path_buf()).or_default();
        state.hash = hash;
        state.failed = true;
        let errors: Vec<ConfigError> = errors
            .into_iter()
            .map(|e| ConfigError {
                file: path.to_path_buf(),
                document: e.document,
                field: e.field,
                message: e.message,
            })
            .collect();
        // Failed files are retried on every scan; log only what is new.
        if self.errors.get(path) != errors {
            for e in &errors {
                tracing::warn!(error = %e, "rejected config file; its last good version keeps serving");
            }
        }
        self.errors.set(path, errors);
    }
}

/// Collects YAML files under `dir`, sorted, skipping hidden entries (editor
/// swap files, and the `..data` folders of mounted ConfigMaps, whose files
/// are reachable through the visible symlinks).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), FileSourceError> {
    let entries = std::fs::read_dir(dir).map_err(|source| FileSourceError::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            // An unreadable subfolder should not hide the rest of the tree.
            if let Err(e) = walk(&path, out) {
                tracing::warn!(error = %e, "skipping folder");
            }
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
