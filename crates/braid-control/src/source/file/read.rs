//! Reading a config file only once it holds still.
//!
//! A file rewritten in place (`kubectl get -o yaml > pods.yaml`, a script
//! writing document by document) can be read between two writes: cut at a
//! `---`, the first half is valid YAML, and applying it would delete every
//! object after the cut. So a changed file is trusted only once its size,
//! modification time and inode have stayed the same for [`STABLE_FOR`]; a
//! scan waits (once, for all such files) up to [`MAX_WAIT`] for that. A
//! file still changing after that is reported, and its last good version
//! keeps serving. Files replaced atomically (write a temporary file, then
//! rename it) never need any of this, but cost the same short wait.

use std::{
    fs::Metadata,
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use super::{DocError, ObjectKey};

/// How long a file must stay unchanged before a changed version is applied.
pub(super) const STABLE_FOR: Duration = Duration::from_millis(200);

/// The longest one scan waits for changed files to hold still.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(1);

/// Never poll more often than this while waiting.
const MIN_PAUSE: Duration = Duration::from_millis(10);

/// One file's content as a scan read it.
#[derive(Debug)]
pub(super) struct FileRead {
    /// The bytes read.
    pub(super) bytes: Vec<u8>,
    /// FNV-1a of `bytes`.
    pub(super) hash: u64,
    /// What the file looked like while read; `None` when it changed during
    /// the read itself, so `bytes` mix two versions.
    stamp: Option<Stamp>,
    /// When `stamp` was first seen.
    seen: Instant,
    /// False once [`settle`] gave up: `bytes` may be half a write.
    pub(super) settled: bool,
}

/// What tells one version of a file from the next without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: Option<(u64, u64)>,
}

/// Reads `path` once, noting whether it changed while being read.
pub(super) fn read(path: &Path) -> io::Result<FileRead> {
    let before = Stamp::of(&std::fs::metadata(path)?);
    let bytes = std::fs::read(path)?;
    let after = std::fs::metadata(path).map(|m| Stamp::of(&m)).ok();
    let whole = after == Some(before) && bytes.len() as u64 == before.len;
    Ok(FileRead {
        hash: crate::hash::fnv64(&bytes),
        bytes,
        stamp: whole.then_some(before),
        seen: Instant::now(),
        settled: true,
    })
}

/// Waits until every file in `reads` has held still for [`STABLE_FOR`],
/// re-reading those that changed meanwhile, for at most [`MAX_WAIT`]. Files
/// still changing then are marked unsettled. Blocks the calling thread.
pub(super) fn settle(reads: &mut [(PathBuf, io::Result<FileRead>)]) {
    let deadline = Instant::now() + MAX_WAIT;
    loop {
        let now = Instant::now();
        let pending: Vec<(usize, Duration)> = reads
            .iter()
            .enumerate()
            .filter_map(|(i, (_, r))| Some((i, r.as_ref().ok()?.unstable_for(now)?)))
            .collect();
        let Some(wait) = pending.iter().map(|(_, wait)| *wait).max() else {
            return;
        };
        if now >= deadline {
            for (i, _) in pending {
                if let (_, Ok(read)) = &mut reads[i] {
                    read.settled = false;
                }
            }
            return;
        }
        std::thread::sleep(wait.min(deadline - now).max(MIN_PAUSE));
        // Unchanged since read: the bytes stand, and the next round judges
        // them by the same stamp. Changed: what was read is stale.
        for (i, _) in pending {
            let (path, read) = &mut reads[i];
            let stamp = std::fs::metadata(&*path).map(|m| Stamp::of(&m)).ok();
            if stamp.is_none() || read.as_ref().is_ok_and(|r| r.stamp != stamp) {
                *read = self::read(path);
            }
        }
    }
}

/// The error for a file that kept changing while it was read.
pub(super) fn still_changing(vanished: &[ObjectKey]) -> DocError {
    let lost = match vanished {
        [] => String::new(),
        [one] => format!(" (what was read lacks {one})"),
        [first, rest @ ..] => format!(" (what was read lacks {first} and {} more)", rest.len()),
    };
    DocError {
        document: None,
        field: String::new(),
        message: format!(
            "file kept changing for {:?} while it was read, so it may be half written{lost}; \
             its last good version keeps serving until it holds still for {:?}; \
             replace config files atomically: write a temporary file, then rename it over this one",
            MAX_WAIT, STABLE_FOR,
        ),
    }
}

// === impl FileRead ===

impl FileRead {
    /// How much longer the file must stay unchanged to be trusted, or
    /// `None` if it already has: its modification time is old enough, or
    /// this scan has seen it unchanged for long enough (which also covers a
    /// modification time in the future, from clock skew or `cp -p`).
    fn unstable_for(&self, now: Instant) -> Option<Duration> {
        let Some(stamp) = self.stamp else {
            return Some(STABLE_FOR);
        };
        let age = stamp
            .modified
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or(Duration::ZERO);
        let still = age.max(now.saturating_duration_since(self.seen));
        STABLE_FOR.checked_sub(still).filter(|d| !d.is_zero())
    }
}

// === impl Stamp ===

impl Stamp {
    fn of(meta: &Metadata) -> Self {
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: super::walk::file_id(meta),
        }
    }
}
