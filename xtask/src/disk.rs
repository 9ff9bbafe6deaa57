//! Keeps the shared build cache from filling the disk.
//!
//! CI reuses one target directory across fresh clones (`.ci/run`), so every
//! commit leaves its own copies of the workspace's test binaries and
//! incremental state behind. Nothing ever deletes them, and a full disk
//! fails the run in unrelated places (the linker, `go build`). Before the
//! suite builds, the directory is trimmed back under a budget.

use std::{
    fs,
    io::ErrorKind,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

/// Above this many bytes the target directory is trimmed (one full debug
/// build of the workspace with line-table debug info is well below it).
pub(crate) const TARGET_BUDGET: u64 = 24 << 30;

/// The target directory cargo uses for this workspace.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Trims `target` under `budget` bytes: first the incremental caches (cheap
/// to lose), then the debug build outputs (a full rebuild). Release outputs
/// (benchmarks) are kept. Returns what was removed, for the log.
pub(crate) fn trim(target: &Path, budget: u64) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    let steps: [&[&str]; 2] = [
        &["debug/incremental"],
        &[
            "debug/deps",
            "debug/build",
            "debug/examples",
            "debug/.fingerprint",
        ],
    ];
    for step in steps {
        let size = dir_size(target)?;
        if size <= budget {
            break;
        }
        for part in step {
            let path = target.join(part);
            match fs::remove_dir_all(&path) {
                Ok(()) => removed.push(format!("{} (target was {})", path.display(), gib(size))),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("remove {}", path.display()));
                }
            }
        }
    }
    Ok(removed)
}

/// Total size of the regular files under `path` (0 when it does not exist).
pub(crate) fn dir_size(path: &Path) -> anyhow::Result<u64> {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let mut total = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("read {}", path.display()))?;
        // A concurrent build may delete files while we walk: skip them.
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += dir_size(&entry.path())?;
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: usize) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, vec![0u8; bytes]).expect("write");
    }

    #[test]
    fn under_budget_nothing_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("debug/incremental/a"), 100);
        assert!(trim(dir.path(), 1000).expect("trim").is_empty());
        assert!(dir.path().join("debug/incremental/a").exists());
    }

    #[test]
    fn incremental_goes_first_then_debug_outputs_but_never_release() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("debug/incremental/a"), 600);
        write(&dir.path().join("debug/deps/b"), 300);
        write(&dir.path().join("release/c"), 50);

        // Dropping incremental state is enough for this budget.
        let removed = trim(dir.path(), 500).expect("trim");
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert!(dir.path().join("debug/deps/b").exists());

        // A tighter budget removes the debug outputs too; release stays.
        let removed = trim(dir.path(), 100).expect("trim");
        assert!(!removed.is_empty());
        assert!(!dir.path().join("debug/deps").exists());
        assert!(dir.path().join("release/c").exists());
        assert_eq!(dir_size(dir.path()).expect("size"), 50);
    }
}
