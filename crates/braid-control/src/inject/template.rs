//! What the injector adds to a pod: the `braid-init` container, the
//! `braid-proxy` sidecar and their volumes. Built as k8s-openapi types, so
//! field names and shapes are the API's own.

use braid_model::k8s::SIDECAR_CONTAINER;
use k8s_openapi::{
    api::core::v1::{
        Capabilities, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, HTTPGetAction,
        KeyToPath, ObjectFieldSelector, Probe, ProjectedVolumeSource, SecurityContext,
        ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{
    CA_ROOT_CONFIGMAP, CA_ROOT_DIR, CA_ROOT_KEY, CA_ROOT_VOLUME, INIT_CONTAINER, InjectConfig,
    PROXY_UID, READINESS_PORT, TOKEN_AUDIENCE, TOKEN_DIR, TOKEN_FILE, TOKEN_VOLUME,
    exclusions::Exclusions,
};

/// Lifetime of the projected token; the kubelet refreshes it at 80 %.
const TOKEN_SECONDS: i64 = 3600;

/// The init container that installs the sidecar redirect rules: root with
/// `NET_ADMIN` and `NET_RAW` (iptables), nothing else.
pub(super) fn init_container(config: &InjectConfig, exclusions: &Exclusions) -> Container {
    let mut args = vec!["init".to_string()];
    args.extend(exclusions.args());
    Container {
        name: INIT_CONTAINER.to_string(),
        image: Some(config.proxy_image.clone()),
        args: Some(args),
        security_context: Some(SecurityContext {
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".to_string(), "NET_RAW".to_string()]),
                drop: Some(vec!["ALL".to_string()]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The proxy: a native sidecar (`restartPolicy: Always`, for
/// `initContainers`) or, with `legacy_sidecar`, a regular container. The
/// startup probe holds back the containers after it until the proxy has its
/// configuration and certificate.
pub(crate) fn proxy_container(config: &InjectConfig) -> Container {
    let ready = Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz/ready".to_string()),
            port: IntOrString::Int(READINESS_PORT),
            ..Default::default()
        }),
        period_seconds: Some(1),
        failure_threshold: Some(600),
        ..Default::default()
    };
    let readiness = Probe {
        period_seconds: Some(5),
        failure_threshold: Some(3),
        ..ready.clone()
    };
    Container {
        name: SIDECAR_CONTAINER.to_string(),
        image: Some(config.proxy_image.clone()),
        restart_policy: (!config.legacy_sidecar).then(|| "Always".to_string()),
        args: Some(vec![
            "sidecar".to_string(),
            "--pod".to_string(),
            "$(BRAID_POD_NAMESPACE)/$(BRAID_POD_NAME)".to_string(),
        ]),
        env: Some(vec![
            field_env("BRAID_POD_NAME", "metadata.name"),
            field_env("BRAID_POD_NAMESPACE", "metadata.namespace"),
            env("BRAID_CONTROL_PLANE", &config.control_plane),
            env("BRAID_CA_ROOT", &format!("{CA_ROOT_DIR}/{CA_ROOT_KEY}")),
            env("BRAID_TOKEN_FILE", &format!("{TOKEN_DIR}/{TOKEN_FILE}")),
            env("BRAID_TRUST_DOMAIN", &config.trust_domain),
        ]),
        startup_probe: Some(ready),
        readiness_probe: Some(readiness),
        security_context: Some(SecurityContext {
            run_as_user: Some(PROXY_UID),
            run_as_group: Some(PROXY_UID),
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount(CA_ROOT_VOLUME, CA_ROOT_DIR),
            mount(TOKEN_VOLUME, TOKEN_DIR),
        ]),
        ..Default::default()
    }
}

/// The proxy's volumes: the root certificate and its token.
pub(crate) fn volumes() -> Vec<Volume> {
    let ca_root = Volume {
        name: CA_ROOT_VOLUME.to_string(),
        config_map: Some(ConfigMapVolumeSource {
            name: CA_ROOT_CONFIGMAP.to_string(),
            items: Some(vec![KeyToPath {
                key: CA_ROOT_KEY.to_string(),
                path: CA_ROOT_KEY.to_string(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = Volume {
        name: TOKEN_VOLUME.to_string(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(TOKEN_AUDIENCE.to_string()),
                    expiration_seconds: Some(TOKEN_SECONDS),
                    path: TOKEN_FILE.to_string(),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    vec![ca_root, token]
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..Default::default()
    }
}

/// An environment variable from the downward API.
fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: volume.to_string(),
        mount_path: path.to_string(),
        read_only: Some(true),
        ..Default::default()
    }
}
