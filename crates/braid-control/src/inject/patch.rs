//! The injection decision, as a pure function: a Pod, the injector's
//! configuration and what the control plane knows of the pod's namespace →
//! a JSON Patch (RFC 6902) or a reason to leave the pod alone.

use braid_model::{DataPlaneMode, MODE_LABEL, k8s::SIDECAR_CONTAINER};
use k8s_openapi::api::core::v1::{Container, Pod};
use serde::Serialize;
use serde_json::Value;

use super::{INJECTED_ANNOTATION, InjectConfig, exclusions::Exclusions, template};

/// What the control plane knows about the pod's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceMode {
    /// The namespace is not in the control plane's configuration.
    Unknown,
    /// The namespace is known; its `braid.dev/mode` label, if valid.
    Known(Option<DataPlaneMode>),
}

/// What to do with a pod.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Add the proxy with these JSON Patch operations.
    Inject(Vec<Operation>),
    /// Admit the pod unchanged.
    Skip {
        /// Why (for logs).
        reason: String,
        /// A message for the user who created the pod, when they can act on it.
        warning: Option<String>,
    },
}

/// One JSON Patch operation. The injector only ever adds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Operation {
    /// Always `add`.
    pub op: &'static str,
    /// A JSON Pointer into the pod.
    pub path: String,
    /// The value to add.
    pub value: Value,
}

/// Decides whether `pod` gets a sidecar and builds the patch.
///
/// The effective mode is the pod's `braid.dev/mode` label, else its
/// namespace's. Only `sidecar` injects, and never twice: a pod with the
/// `braid.dev/injected` annotation or a `braid-proxy` container is left
/// alone. `braid-init` (unless the CNI plugin installs the rules) and the
/// native sidecar go *first* among the init containers, so the app's own
/// init containers already run inside the mesh.
pub fn inject(pod: &Pod, config: &InjectConfig, namespace: NamespaceMode) -> Decision {
    let labels = pod.metadata.labels.as_ref();
    let mode = match labels.and_then(|l| l.get(MODE_LABEL)) {
        Some(value) => match value.parse::<DataPlaneMode>() {
            Ok(mode) => mode,
            Err(e) => {
                return skip_warn(format!("label {MODE_LABEL}: {e}; sidecar not injected"));
            }
        },
        None => match namespace {
            NamespaceMode::Known(mode) => mode.unwrap_or_default(),
            NamespaceMode::Unknown => {
                return skip_warn(
                    "the namespace is unknown to the Braid control plane; sidecar not injected"
                        .to_string(),
                );
            }
        },
    };
    if mode != DataPlaneMode::Sidecar {
        return skip(format!("effective mode is {mode}"));
    }
    let annotations = pod.metadata.annotations.as_ref();
    if annotations.is_some_and(|a| a.contains_key(INJECTED_ANNOTATION)) {
        return skip(format!("annotation {INJECTED_ANNOTATION} present"));
    }
    let Some(spec) = &pod.spec else {
        return skip_warn("the pod has no spec; sidecar not injected".to_string());
    };
    let has_proxy = |containers: Option<&Vec<Container>>| {
        containers.is_some_and(|c| c.iter().any(|c| c.name == SIDECAR_CONTAINER))
    };
    if has_proxy(Some(&spec.containers)) || has_proxy(spec.init_containers.as_ref()) {
        return skip(format!("a container named {SIDECAR_CONTAINER} exists"));
    }
    let exclusions = match Exclusions::from_annotations(annotations) {
        Ok(exclusions) => exclusions,
        Err(e) => return skip_warn(format!("{e}; sidecar not injected")),
    };

    let mut ops = Vec::new();
    match annotations {
        Some(_) => ops.push(add(
            format!("/metadata/annotations/{}", escape(INJECTED_ANNOTATION)),
            Value::from("true"),
        )),
        None => ops.push(add(
            "/metadata/annotations".to_string(),
            serde_json::json!({ INJECTED_ANNOTATION: "true" }),
        )),
    }
    let mut init = Vec::new();
    if !config.cni_sidecar_rules {
        init.push(template::init_container(config, &exclusions));
    }
    let proxy = template::proxy_container(config);
    if config.legacy_sidecar {
        // Containers start in order: first gives the proxy a head start.
        ops.push(add("/spec/containers/0".to_string(), to_value(&proxy)));
    } else {
        init.push(proxy);
    }
    let existing = spec.init_containers.as_ref().map_or(0, Vec::len);
    if existing == 0 {
        if !init.is_empty() {
            ops.push(add("/spec/initContainers".to_string(), to_value(&init)));
        }
    } else {
        for (i, container) in init.iter().enumerate() {
            ops.push(add(
                format!("/spec/initContainers/{i}"),
                to_value(container),
            ));
        }
    }
    let volumes = template::volumes();
    if spec.volumes.as_ref().is_none_or(Vec::is_empty) {
        ops.push(add("/spec/volumes".to_string(), to_value(&volumes)));
    } else {
        for volume in &volumes {
            ops.push(add("/spec/volumes/-".to_string(), to_value(volume)));
        }
    }
    Decision::Inject(ops)
}

/// A JSON Pointer reference token: `~` → `~0`, `/` → `~1` (RFC 6901).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn add(path: String, value: Value) -> Operation {
    Operation {
        op: "add",
        path,
        value,
    }
}

/// k8s-openapi types always serialize; `Null` would only hide a bug.
fn to_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn skip(reason: String) -> Decision {
    Decision::Skip {
        reason,
        warning: None,
    }
}

fn skip_warn(warning: String) -> Decision {
    Decision::Skip {
        reason: warning.clone(),
        warning: Some(warning),
    }
}
