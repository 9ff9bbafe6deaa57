//! The root CA's files: `root-cert.pem` and `root-key.pem` in the CA
//! directory.
//!
//! The key is created with mode 0600 under a temporary name and renamed into
//! place, so it is never readable by others, not even for a moment, and a
//! crash never leaves a half-written key behind.

use std::{
    fs::{self, DirBuilder, File, OpenOptions},
    io::{self, Read, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use super::CaError;

/// File name of the root certificate.
pub(super) const CERT_FILE: &str = "root-cert.pem";

/// File name of the root private key.
pub(super) const KEY_FILE: &str = "root-key.pem";

/// Where the root certificate and key live.
pub(super) struct RootFiles {
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
}

// === impl RootFiles ===

impl RootFiles {
    pub(super) fn in_dir(dir: &Path) -> Self {
        Self {
            cert: dir.join(CERT_FILE),
            key: dir.join(KEY_FILE),
        }
    }

    /// The certificate and key PEM, or `None` if neither file exists.
    pub(super) fn read(&self) -> Result<Option<(String, String)>, CaError> {
        match (
            read_optional(&self.cert, false)?,
            read_optional(&self.key, true)?,
        ) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(self.incomplete(&self.cert, &self.key)),
            (None, Some(_)) => Err(self.incomplete(&self.key, &self.cert)),
        }
    }

    /// Writes a new root into `dir`, creating the directory (mode 0700) if
    /// needed. The key is written first and removed again if the certificate
    /// cannot be written, so a failure leaves the directory as it was.
    pub(super) fn create(&self, dir: &Path, cert_pem: &str, key_pem: &str) -> Result<(), CaError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error("create the CA directory", dir))?;
        write_atomically(&self.key, key_pem, 0o600)?;
        if let Err(e) = write_atomically(&self.cert, cert_pem, 0o644) {
            let _ = fs::remove_file(&self.key);
            return Err(e);
        }
        // Make the renames durable before anything is issued from this root.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("sync the CA directory", dir))
    }

    fn incomplete(&self, present: &Path, missing: &Path) -> CaError {
        CaError::Incomplete {
            present: present.to_path_buf(),
            missing: missing.to_path_buf(),
        }
    }
}

/// The file's contents, `None` if it does not exist. A `private` file must
/// not be accessible by group or others.
fn read_optional(path: &Path, private: bool) -> Result<Option<String>, CaError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("open", path)(e)),
    };
    if private {
        // Checked on the open file, so it is the file we go on to read.
        let mode = file
            .metadata()
            .map_err(io_error("inspect", path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CaError::KeyPermissions {
                path: path.to_path_buf(),
                mode: mode & 0o777,
            });
        }
    }
    let mut contents = String::new();
    file.read_to_string(&mut contents)
        .map_err(io_error("read", path))?;
    Ok(Some(contents))
}

/// Writes `contents` to a new file next to `path` created with `mode`, then
/// renames it over `path`.
fn write_atomically(path: &Path, contents: &str, mode: u32) -> Result<(), CaError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(contents.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("write", path)(e));
    }
    Ok(())
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CaError {
    let path = path.to_path_buf();
    move |source| CaError::Io {
        action,
        path,
        source,
    }
}
