//! Identifier newtypes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A workload's stable id: `<namespace>/<name>`. Also its xDS resource name.
///
/// Pod names are unique within a namespace at any one time, and a proxy only
/// needs the current pod behind a name, so the name beats the Kubernetes uid
/// (which YAML files written by hand usually lack).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkloadUid(String);

/// A service's id: `<namespace>/<name>`. Also its xDS resource name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceRef {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
}

// === impl WorkloadUid ===

impl WorkloadUid {
    /// The uid of the pod `name` in `namespace`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self(format!("{namespace}/{name}"))
    }

    /// Wraps an id received from elsewhere (e.g. the wire) unchanged.
    pub fn from_raw(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkloadUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl ServiceRef ===

impl ServiceRef {
    /// A reference to the Service `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
