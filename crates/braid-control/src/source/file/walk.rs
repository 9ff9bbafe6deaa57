//! Finding the YAML files under the config directory, without ever looping.
//!
//! A directory symlink could point back up the tree (`ln -s . loop`): two
//! such links make the number of paths grow exponentially, and even one
//! makes every file appear dozens of times. So directory symlinks are not
//! followed, with one exception: a mounted ConfigMap, whose nested keys are
//! reached through top-level links into `..data`. Visited directories are
//! also tracked by device and inode, so no directory is ever walked twice
//! whatever links point at it.

use std::{
    collections::HashSet,
    fs::Metadata,
    path::{Component, Path, PathBuf},
};

use super::FileSourceError;

/// The symlink a Kubernetes ConfigMap (or Secret, projected) volume points
/// at its current timestamped folder; the kubelet swaps it atomically.
const CONFIGMAP_DATA: &str = "..data";

/// Why an entry is skipped, for the log.
const DIR_LINK: &str = "it is a symlink to a folder, and only a mounted ConfigMap's links \
                        into ..data are followed (a link could loop); link the files instead";
const SEEN: &str = "it is a folder already read through another path";
const NOT_A_FILE: &str = "it is not a regular file (reading a named pipe would block the scan)";

/// What a walk found.
#[derive(Debug, Default)]
pub(super) struct Walk {
    /// The YAML files to read, sorted.
    pub(super) files: Vec<PathBuf>,
    /// Entries deliberately not walked or read, with why (a sentence).
    pub(super) skipped: Vec<(PathBuf, &'static str)>,
}

/// Collects the `*.yaml`/`*.yml` files under `root`, in sorted order.
///
/// Hidden entries are skipped (editor swap files, and a ConfigMap's `..data`
/// and timestamped folders, whose files are reached through the visible
/// symlinks). File symlinks are followed; directory symlinks only when they
/// point into `..data` (see the module docs). Only regular files are read:
/// a FIFO would block the scan forever.
pub(super) fn walk(root: &Path) -> Result<Walk, FileSourceError> {
    let mut walk = Walk::default();
    let mut visited = HashSet::new();
    if let Some(id) = std::fs::metadata(root).ok().and_then(|m| file_id(&m)) {
        visited.insert(id);
    }
    walk_dir(root, &mut visited, &mut walk)?;
    Ok(walk)
}

fn walk_dir(
    dir: &Path,
    visited: &mut HashSet<(u64, u64)>,
    walk: &mut Walk,
) -> Result<(), FileSourceError> {
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
        let Ok(own) = std::fs::symlink_metadata(&path) else {
            continue; // removed since the listing
        };
        // A symlink's target; a dangling link counts as a file, so reading
        // it reports the broken link.
        let target = if own.file_type().is_symlink() {
            std::fs::metadata(&path).ok()
        } else {
            Some(own.clone())
        };
        match target {
            Some(meta) if meta.is_dir() => {
                if own.file_type().is_symlink() && !into_configmap_data(&path) {
                    walk.skipped.push((path, DIR_LINK));
                } else if file_id(&meta).is_some_and(|id| !visited.insert(id)) {
                    walk.skipped.push((path, SEEN));
                } else if let Err(e) = walk_dir(&path, visited, walk) {
                    // An unreadable subfolder should not hide the rest of the tree.
                    tracing::warn!(error = %e, "skipping folder");
                }
            }
            Some(meta) if !meta.is_file() && is_yaml(&path) => {
                walk.skipped.push((path, NOT_A_FILE));
            }
            Some(meta) if !meta.is_file() => {}
            _ if is_yaml(&path) => walk.files.push(path),
            _ => {}
        }
    }
    Ok(())
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext == "yaml" || ext == "yml")
}

/// Whether `link` is how a ConfigMap volume exposes a nested key: a
/// relative link `name -> ..data/name`.
fn into_configmap_data(link: &Path) -> bool {
    std::fs::read_link(link).is_ok_and(|target| {
        target.components().next() == Some(Component::Normal(CONFIGMAP_DATA.as_ref()))
    })
}

/// A file's or directory's (device, inode): the same one under any path
/// (the walk's loop guard, and part of what tells a file's versions apart).
#[cfg(unix)]
pub(super) fn file_id(meta: &Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    Some((meta.dev(), meta.ino()))
}

/// Without inodes, not following directory symlinks is the walk's only
/// guard.
#[cfg(not(unix))]
pub(super) fn file_id(_: &Metadata) -> Option<(u64, u64)> {
    None
}
