//! Data-plane modes and the labels that choose them.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Namespace or pod label that selects the data-plane mode.
pub const MODE_LABEL: &str = "braid.dev/mode";

/// Namespace or Service label naming the waypoint for ambient traffic (`none` opts out).
pub const WAYPOINT_LABEL: &str = "braid.dev/waypoint";

/// How a workload's traffic is handled by the mesh.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataPlaneMode {
    /// Not in the mesh.
    #[default]
    None,
    /// A sidecar proxy inside the pod.
    Sidecar,
    /// Captured by the node's ztunnel.
    Ambient,
}

/// A `braid.dev/mode` label value that is not one of the known modes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown data-plane mode {0:?}: use one of \"sidecar\", \"ambient\", \"none\"")]
pub struct UnknownMode(pub String);

// === impl DataPlaneMode ===

impl DataPlaneMode {
    /// The label value for this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Sidecar => "sidecar",
            Self::Ambient => "ambient",
        }
    }
}

impl FromStr for DataPlaneMode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "sidecar" => Ok(Self::Sidecar),
            "ambient" => Ok(Self::Ambient),
            other => Err(UnknownMode(other.to_string())),
        }
    }
}

impl fmt::Display for DataPlaneMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
