//! Putting `braid-cni` into the node's CNI configuration chain.
//!
//! The container runtime uses the first file of its configuration directory
//! (`/etc/cni/net.d`), in lexical order, ending in `.conflist`, `.conf` or
//! `.json`; the node's primary network plugin owns that file. `braid-cni`
//! must be the **last** plugin of that list, so it sees the pod's address
//! in `prevResult`. [`install`] appends it (converting a single-plugin
//! `.conf` or `.json` into a `.conflist`), [`remove`] takes it out again; both write
//! atomically and leave every other plugin as it was.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// The `type` of our chain entry.
const TYPE: &str = "braid-cni";

/// What [`install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// The entry was already there, last and with this socket.
    Present(PathBuf),
    /// The entry was added (or moved last, or its socket corrected).
    Added(PathBuf),
}

/// The chain could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// No configuration file to chain onto.
    #[error(
        "no CNI configuration (*.conflist, *.conf, *.json) in {}; \
         install the node's network plugin first, or point --cni-conf-dir at its directory",
        .0.display()
    )]
    NoConfig(PathBuf),
    /// A file or the directory could not be read or written.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was tried.
        action: &'static str,
        /// Cause.
        source: std::io::Error,
    },
    /// The primary configuration is not what the CNI spec describes.
    #[error("{}: {reason}; fix or replace this file (the runtime cannot use it either)", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which field is wrong, and how.
        reason: String,
    },
}

/// Makes `braid-cni` (reaching the agent at `agent_socket`) the last plugin
/// of the primary configuration in `dir`. Idempotent: an unchanged file is
/// not rewritten.
pub fn install(dir: &Path, agent_socket: &Path) -> Result<Installed, ChainError> {
    let path = primary(dir)?;
    let mut config = read(&path)?;
    // A single-plugin file (`.conf` or `.json`) is read by the runtime as
    // one plugin, so the list goes into a `.conflist` of the same name.
    let converted = config.get("plugins").is_none();
    let mut list = as_list(&path, &mut config)?;
    let changed = with_braid(&mut list, agent_socket).map_err(|reason| ChainError::Invalid {
        path: path.clone(),
        reason,
    })?;
    if !changed && !converted {
        return Ok(Installed::Present(path));
    }
    // A single-plugin file becomes a list; its name keeps its place in the
    // runtime's order.
    let target = if converted {
        path.with_extension("conflist")
    } else {
        path.clone()
    };
    write(&target, &list)?;
    if converted {
        std::fs::remove_file(&path).map_err(|source| ChainError::Io {
            path: path.clone(),
            action: "remove the converted file",
            source,
        })?;
    }
    Ok(Installed::Added(target))
}

/// Takes `braid-cni` out of the primary configuration in `dir`; says
/// whether it was there. No configuration at all is fine.
pub fn remove(dir: &Path) -> Result<bool, ChainError> {
    let path = match primary(dir) {
        Ok(path) => path,
        Err(ChainError::NoConfig(_)) => return Ok(false),
        Err(error) => return Err(error),
    };
    let mut config = read(&path)?;
    let Some(plugins) = config.get_mut("plugins").and_then(Value::as_array_mut) else {
        return Ok(false);
    };
    let before = plugins.len();
    plugins.retain(|plugin| !is_braid(plugin));
    if plugins.len() == before {
        return Ok(false);
    }
    write(&path, &config)?;
    Ok(true)
}

/// The file the runtime uses: the first configuration file in lexical
/// order (hidden files, such as our temporary ones, are skipped).
pub fn primary(dir: &Path) -> Result<PathBuf, ChainError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ChainError::Io {
        path: dir.to_path_buf(),
        action: "list",
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(".");
            let ext = path.extension().and_then(|e| e.to_str());
            !name.starts_with('.') && matches!(ext, Some("conflist" | "conf" | "json"))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .next()
        .ok_or_else(|| ChainError::NoConfig(dir.to_path_buf()))
}

/// Appends our entry to `list` (a `.conflist` object), or moves it last
/// and corrects its socket; `Err` names the field that is wrong. Returns
/// whether `list` changed.
pub fn with_braid(list: &mut Value, agent_socket: &Path) -> Result<bool, String> {
    let plugins = list
        .get_mut("plugins")
        .ok_or("field `plugins` is missing")?
        .as_array_mut()
        .ok_or("field `plugins` is not a list")?;
    let wanted = json!({ "type": TYPE, "agentSocket": agent_socket });
    if plugins.last() == Some(&wanted) && plugins.iter().filter(|p| is_braid(p)).count() == 1 {
        return Ok(false);
    }
    plugins.retain(|plugin| !is_braid(plugin));
    plugins.push(wanted);
    Ok(true)
}

fn is_braid(plugin: &Value) -> bool {
    plugin.get("type").and_then(Value::as_str) == Some(TYPE)
}

/// `config` as a list: itself if it has `plugins`, else (a single-plugin
/// `.conf`) a list holding it, with `cniVersion` and `name` moved up.
fn as_list(path: &Path, config: &mut Value) -> Result<Value, ChainError> {
    let invalid = |reason: &str| ChainError::Invalid {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let object = config
        .as_object_mut()
        .ok_or_else(|| invalid("not a JSON object"))?;
    if object.contains_key("plugins") {
        return Ok(Value::Object(object.clone()));
    }
    if !object.contains_key("type") {
        return Err(invalid("neither `plugins` (a list) nor `type` (a plugin)"));
    }
    let mut list = Map::new();
    for key in ["cniVersion", "name"] {
        let value = object
            .remove(key)
            .ok_or_else(|| invalid(&format!("field `{key}` is missing")))?;
        list.insert(key.to_string(), value);
    }
    list.insert(
        "plugins".into(),
        Value::Array(vec![Value::Object(object.clone())]),
    );
    Ok(Value::Object(list))
}

fn read(path: &Path) -> Result<Value, ChainError> {
    let text = std::fs::read(path).map_err(|source| ChainError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })?;
    serde_json::from_slice(&text).map_err(|e| ChainError::Invalid {
        path: path.to_path_buf(),
        reason: format!("not JSON ({e})"),
    })
}

/// Writes `config` to `path` through a hidden temporary file and a rename,
/// so the runtime never reads half a file.
fn write(path: &Path, config: &Value) -> Result<(), ChainError> {
    let io = |action, source| ChainError::Io {
        path: path.to_path_buf(),
        action,
        source,
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("conf");
    let tmp = path.with_file_name(format!(".{name}.braid-tmp"));
    let mut text =
        serde_json::to_vec_pretty(config).map_err(|e| io("encode", std::io::Error::other(e)))?;
    text.push(b'\n');
    std::fs::write(&tmp, text).map_err(|e| io("write a temporary file", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("rename into place", e))
}

#[cfg(test)]
mod tests;
