//! The agent's record of the pods it knows: one JSON file per pod uid in the
//! state directory. Captured pods are replayed to a (re)connecting ztunnel;
//! uncaptured ones are kept so the agent can capture them in place when
//! their mode turns ambient, without waiting for the pod to be re-created.

use std::{
    io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// One pod the agent knows (added by CNI ADD, not yet deleted), as recorded
/// on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodRecord {
    /// Pod UID (or container id).
    pub uid: String,
    /// `<namespace>/<pod name>`.
    pub workload: String,
    /// Path of the pod's network namespace.
    pub netns: PathBuf,
    /// Whether the pod is captured now: its ambient rules are installed and
    /// the ztunnel holds its namespace. Records written before the field
    /// existed were all of captured pods, so a missing field reads `true`.
    #[serde(default = "captured_by_default")]
    pub captured: bool,
}

fn captured_by_default() -> bool {
    true
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

/// A state file could not be read, written or removed.
#[derive(Debug, thiserror::Error)]
#[error("pod state {}: {reason}; check --state-dir", path.display())]
pub struct StateError {
    /// The file or directory.
    pub path: PathBuf,
    /// What failed.
    pub reason: String,
}

// === impl StateDir ===

impl StateDir {
    /// Opens (creating, mode 0700) the directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StateError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| error(&dir, "cannot create", e))?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| error(&dir, "cannot restrict to 0700", e))?;
        Ok(Self { dir })
    }

    /// Records `pod`, replacing an earlier record with the same uid. The
    /// write is atomic (temp file + rename) so a crash never leaves half a
    /// record.
    pub fn save(&self, pod: &PodRecord) -> Result<(), StateError> {
        let path = self.path_of(&pod.uid)?;
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(pod).map_err(|e| StateError {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&tmp, json).map_err(|e| error(&tmp, "cannot write", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| error(&path, "cannot rename into place", e))
    }

    /// The record for `uid`, if any.
    pub fn load(&self, uid: &str) -> Result<Option<PodRecord>, StateError> {
        let path = self.path_of(uid)?;
        match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(error(&path, "cannot read", e)),
        }
    }

    /// Deletes the record for `uid`; no record is fine (DEL is idempotent).
    pub fn remove(&self, uid: &str) -> Result<(), StateError> {
        let path = self.path_of(uid)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(error(&path, "cannot delete", e)),
            _ => Ok(()),
        }
    }

    /// Every readable record, sorted by uid. Unreadable files are logged and
    /// skipped: one corrupt file must not stop the replay of the others.
    pub fn all(&self) -> Result<Vec<PodRecord>, StateError> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| error(&self.dir, "cannot list", e))?;
        let mut pods = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match std::fs::read(&path).map_err(|e| error(&path, "cannot read", e)) {
                Ok(bytes) => match parse(&path, &bytes) {
                    Ok(pod) => pods.push(pod),
                    Err(e) => tracing::warn!("skipping {e}"),
                },
                Err(e) => tracing::warn!("skipping {e}"),
            }
        }
        pods.sort_by(|a, b| a.uid.cmp(&b.uid));
        Ok(pods)
    }

    /// The file for `uid`; refuses uids that could escape the directory.
    fn path_of(&self, uid: &str) -> Result<PathBuf, StateError> {
        let safe = !uid.is_empty()
            && uid.len() <= 253
            && uid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !uid.starts_with('.');
        if !safe {
            return Err(StateError {
                path: self.dir.clone(),
                reason: format!(
                    "pod uid {uid:?} is not usable as a file name (letters, digits, '-', '_', '.')"
                ),
            });
        }
        Ok(self.dir.join(format!("{uid}.json")))
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<PodRecord, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError {
        path: path.to_path_buf(),
        reason: format!("not a pod record ({e}); delete the file if the pod is gone"),
    })
}

fn error(path: &Path, what: &str, e: io::Error) -> StateError {
    StateError {
        path: path.to_path_buf(),
        reason: format!("{what}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_list_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(dir.path().join("s")).expect("open");
        let pod = |uid: &str| PodRecord {
            uid: uid.into(),
            workload: "shop/web".into(),
            netns: "/proc/1/ns/net".into(),
            captured: uid != "b",
        };
        state.save(&pod("b")).expect("save");
        state.save(&pod("a")).expect("save");
        std::fs::write(dir.path().join("s/junk.json"), "{").expect("write");
        assert_eq!(state.load("a").expect("load"), Some(pod("a")));
        assert_eq!(state.all().expect("all"), vec![pod("a"), pod("b")]);
        state.remove("a").expect("remove");
        state.remove("a").expect("idempotent");
        assert_eq!(state.load("a").expect("load"), None);
        let bad = state.save(&pod("../x")).expect_err("escape");
        assert!(bad.to_string().contains("../x"), "{bad}");
    }

    #[test]
    fn a_record_written_before_the_captured_field_reads_as_captured() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(dir.path()).expect("open");
        let old = r#"{"uid": "u1", "workload": "shop/web-0", "netns": "/proc/1/ns/net"}"#;
        std::fs::write(dir.path().join("u1.json"), old).expect("write");
        let pod = state.load("u1").expect("load").expect("a record");
        assert!(pod.captured, "{pod:?}");
        // An unknown field is still refused, naming the file.
        let typo = r#"{"uid": "u2", "workload": "shop/web-1", "netns": "/x", "captred": false}"#;
        std::fs::write(dir.path().join("u2.json"), typo).expect("write");
        let error = state.load("u2").expect_err("unknown field");
        assert!(error.to_string().contains("u2.json"), "{error}");
    }
}
