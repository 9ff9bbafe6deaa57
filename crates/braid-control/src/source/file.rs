//! The YAML-directory source: every `*.yaml`/`*.yml` under a directory
//! (nested folders, multi-document files) is read as Kubernetes objects and
//! watched for changes.
//!
//! Each file is applied atomically: when any document in it is bad, the
//! whole file keeps its last good version and the errors are reported.
//! Scans never follow a directory symlink out of the tree (`walk`), apply a
//! changed file only once it holds still (`read`), and run on a blocking
//! thread, so a slow one never stalls the runtime serving xDS.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
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

mod read;
mod walk;

use read::FileRead;

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
    /// Entries the last walk skipped, so each is logged once.
    skipped: BTreeSet<PathBuf>,
}

/// A live watch on the directory; dropping it stops the watch.
pub struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
    /// Capacity 1: a pending wake-up already means "rescan", so a storm of
    /// events costs nothing.
    events: mpsc::Receiver<()>,
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
            skipped: BTreeSet::new(),
        }
    }

    /// Reads the directory and returns what changed since the last scan.
    ///
    /// Blocks: it reads every file, and waits up to [`read::MAX_WAIT`] for
    /// changed files to hold still. Async code calls
    /// [`FileSource::scan_off_runtime`].
    pub fn scan(&mut self) -> Result<Vec<Change>, FileSourceError> {
        let walk = walk::walk(&self.root)?;
        self.note_skipped(walk.skipped);
        let mut changes = Vec::new();
        let present: std::collections::HashSet<&PathBuf> = walk.files.iter().collect();
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            self.remove_file(&path, &mut changes);
        }
        // Unchanged content is what already serves: only the rest must hold still.
        let mut reads: Vec<_> = walk
            .files
            .into_iter()
            .map(|path| {
                let read = read::read(&path);
                (path, read)
            })
            .filter(|(path, read)| !self.is_current(path, read))
            .collect();
        read::settle(&mut reads);
        for (path, read) in &reads {
            self.load_file(path, read, &mut changes);
        }
        // A file rejected for defining an object another file owned may load
        // now that the other file changed in this same scan.
        for (path, read) in &reads {
            if self.files.get(path).is_some_and(|s| s.failed) {
                self.load_file(path, read, &mut changes);
            }
        }
        Ok(changes)
    }

    /// [`FileSource::scan`] on a blocking thread, so a slow scan (a huge
    /// tree, a network mount, a file still being written) never stalls the
    /// runtime's workers, which serve xDS.
    pub async fn scan_off_runtime(mut self) -> (Self, Result<Vec<Change>, FileSourceError>) {
        let scanned = tokio::task::spawn_blocking(move || {
            let changes = self.scan();
            (self, changes)
        })
        .await;
        match scanned {
            Ok(scanned) => scanned,
            // A started blocking task is never cancelled, so this is a panic
            // in the scan: raise it here, as an inline scan would have.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Starts watching the directory. Call this before the initial
    /// [`FileSource::scan`], so no change between the two is missed.
    pub fn watch(&self) -> Result<DirWatcher, FileSourceError> {
        use notify::Watcher as _;
        let (event_tx, events) = mpsc::channel(1);
        let on_event = move |event: notify::Result<notify::Event>| {
            // Our own reads produce access events; reacting to them would
            // rescan forever. Errors (e.g. a queue overflow) do warrant one.
            if event.is_ok_and(|e| e.kind.is_access()) {
                return;
            }
            // The receiver only needs a wake-up; the rescan finds what
            // changed. A full channel already holds one.
            let _ = event_tx.try_send(());
        };
        // notify follows symlinks by default, so a `loop -> .` link would
        // have it add watches for the same folders over and over; the scan
        // does not follow them either. A ConfigMap's `..data` target is a
        // real folder in the tree, so it is watched anyway.
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut watcher = notify::RecommendedWatcher::new(on_event, config).map_err(|source| {
            FileSourceError::Watch {
                path: self.root.clone(),
                source,
            }
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
            let (source, scanned) = self.scan_off_runtime().await;
            self = source;
            let changes = match scanned {
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

    /// Whether `read` is exactly the version that already serves.
    fn is_current(&self, path: &Path, read: &std::io::Result<FileRead>) -> bool {
        read.as_ref().is_ok_and(|read| {
            self.files
                .get(path)
                .is_some_and(|s| s.hash == read.hash && !s.failed)
        })
    }

    fn load_file(
        &mut self,
        path: &Path,
        read: &std::io::Result<FileRead>,
        changes: &mut Vec<Change>,
    ) {
        let read = match read {
            Ok(read) => read,
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
        let (text, hash) = (&read.bytes, read.hash);
        let state = self.files.entry(path.to_path_buf()).or_default();
        if state.hash == hash && !state.failed {
            return;
        }
        let parsed = match std::str::from_utf8(text) {
            Ok(text) => document::parse(text, &self.settings),
            Err(e) => Err(vec![DocError {
                document: None,
                field: String::new(),
                message: format!("not UTF-8 text: {e}"),
            }]),
        };
        if !read.settled {
            let vanished = parsed
                .as_ref()
                .map_or(Vec::new(), |o| self.vanished(path, o));
            return self.fail(path, hash, vec![read::still_changing(&vanished)]);
        }
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

    /// The objects of `path`'s last good version that `objects` lacks.
    fn vanished(&self, path: &Path, objects: &Objects) -> Vec<ObjectKey> {
        let Some(state) = self.files.get(path) else {
            return Vec::new();
        };
        state
            .objects
            .iter()
            .filter(|(key, _)| !objects.iter().any(|(k, _)| k == key))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Logs entries the walk skipped, once each while they stay.
    fn note_skipped(&mut self, skipped: Vec<(PathBuf, &'static str)>) {
        let mut now = BTreeSet::new();
        for (path, why) in skipped {
            if !self.skipped.contains(&path) {
                tracing::warn!(path = %path.display(), "skipping config entry: {why}");
            }
            now.insert(path);
        }
        self.skipped = now;
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

#[cfg(test)]
mod tests;
