//! Proxy tokens: how a proxy proves who it is to the certificate service in
//! the YAML-directory setup (on Kubernetes, ServiceAccount tokens take this
//! role). The operator lists each token as a Secret of type
//! `braid.dev/proxy-token`:
//!
//! ```yaml
//! apiVersion: v1
//! kind: Secret
//! metadata: {name: ztunnel-node-a, namespace: braid-system}
//! type: braid.dev/proxy-token
//! stringData:
//!   token: 0c3b8a...          # at least 32 characters
//!   node: node-a              # a node proxy: identities of pods on node-a
//!   # pod: shop/web-0         # or a sidecar: only that pod's service account
//! ```

use std::fmt;

use braid_model::k8s::FieldError;
use k8s_openapi::api::core::v1::Secret;

/// The Secret type that marks a proxy token.
pub const SECRET_TYPE: &str = "braid.dev/proxy-token";

/// Tokens shorter than this are refused: they must not be guessable.
const MIN_TOKEN_LEN: usize = 32;

/// A token and who holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyToken {
    /// Secret namespace.
    pub namespace: String,
    /// Secret name.
    pub name: String,
    /// The bearer token.
    pub token: String,
    /// Who may present it.
    pub principal: Principal,
}

/// The proxy a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A node proxy (ztunnel): identities of pods scheduled on this node.
    Node(String),
    /// A sidecar: only the service account of this pod.
    Pod {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        name: String,
    },
}

// === impl ProxyToken ===

impl ProxyToken {
    /// Reads a `braid.dev/proxy-token` Secret (namespace already defaulted).
    pub fn from_secret(secret: &Secret) -> Result<Self, FieldError> {
        if secret.type_.as_deref() != Some(SECRET_TYPE) {
            return Err(FieldError::new(
                "type",
                format!(
                    "Braid reads only Secrets of type {SECRET_TYPE:?} (proxy tokens); keep other Secrets out of the config directory"
                ),
            ));
        }
        let token = value(secret, "token")?.ok_or_else(|| {
            FieldError::new(
                "stringData.token",
                "missing: the bearer token proxies present",
            )
        })?;
        if token.len() < MIN_TOKEN_LEN {
            return Err(FieldError::new(
                "stringData.token",
                format!(
                    "too short ({} characters): use at least {MIN_TOKEN_LEN} random characters, e.g. `openssl rand -hex 32`",
                    token.len()
                ),
            ));
        }
        let principal = match (value(secret, "node")?, value(secret, "pod")?) {
            (Some(node), None) if !node.is_empty() => Principal::Node(node),
            (None, Some(pod)) => match pod.split_once('/') {
                Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                    Principal::Pod {
                        namespace: ns.to_string(),
                        name: name.to_string(),
                    }
                }
                _ => {
                    return Err(FieldError::new(
                        "stringData.pod",
                        format!("{pod:?} is not <namespace>/<pod name>"),
                    ));
                }
            },
            _ => {
                return Err(FieldError::new(
                    "stringData",
                    "set exactly one of `node` (a node proxy) or `pod` (a sidecar, as <namespace>/<name>)",
                ));
            }
        };
        Ok(Self {
            namespace: secret.metadata.namespace.clone().unwrap_or_default(),
            name: secret.metadata.name.clone().unwrap_or_default(),
            token,
            principal,
        })
    }
}

/// `stringData.<key>`, else `data.<key>` (base64-decoded by serde), as text.
fn value(secret: &Secret, key: &str) -> Result<Option<String>, FieldError> {
    if let Some(v) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        return Ok(Some(v.clone()));
    }
    match secret.data.as_ref().and_then(|d| d.get(key)) {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes.0.clone())
            .map(Some)
            .map_err(|_| FieldError::new(format!("data.{key}"), "must be UTF-8 text")),
    }
}

// The token is a credential: never print it.
impl fmt::Debug for ProxyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyToken")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node(node) => write!(f, "node proxy on {node}"),
            Self::Pod { namespace, name } => write!(f, "sidecar of pod {namespace}/{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(json: serde_json::Value) -> Secret {
        serde_json::from_value(json).expect("valid secret")
    }

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn node_and_pod_tokens() {
        let node = secret(
            serde_json::json!({"metadata": {"name": "n", "namespace": "braid-system"}, "type": SECRET_TYPE, "stringData": {"token": TOKEN, "node": "node-a"}}),
        );
        assert_eq!(
            ProxyToken::from_secret(&node).expect("valid").principal,
            Principal::Node("node-a".into())
        );
        // `data` is base64, as kubectl writes it.
        let pod = secret(
            serde_json::json!({"metadata": {"name": "p"}, "type": SECRET_TYPE, "data": {"token": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "pod": "c2hvcC93ZWItMA=="}}),
        );
        let t = ProxyToken::from_secret(&pod).expect("valid");
        assert_eq!(
            t.principal,
            Principal::Pod {
                namespace: "shop".into(),
                name: "web-0".into()
            }
        );
        assert_eq!(t.token, TOKEN);
        assert!(
            !format!("{t:?}").contains(TOKEN),
            "Debug must not print the token"
        );
    }

    #[test]
    fn bad_tokens_name_the_field() {
        let cases = [
            (
                serde_json::json!({"type": "Opaque", "stringData": {"token": TOKEN, "node": "a"}}),
                "type",
            ),
            (
                serde_json::json!({"type": SECRET_TYPE, "stringData": {"node": "a"}}),
                "stringData.token",
            ),
            (
                serde_json::json!({"type": SECRET_TYPE, "stringData": {"token": "short", "node": "a"}}),
                "stringData.token",
            ),
            (
                serde_json::json!({"type": SECRET_TYPE, "stringData": {"token": TOKEN}}),
                "stringData",
            ),
            (
                serde_json::json!({"type": SECRET_TYPE, "stringData": {"token": TOKEN, "node": "a", "pod": "b/c"}}),
                "stringData",
            ),
            (
                serde_json::json!({"type": SECRET_TYPE, "stringData": {"token": TOKEN, "pod": "web-0"}}),
                "stringData.pod",
            ),
        ];
        for (json, field) in cases {
            let err = ProxyToken::from_secret(&secret(json.clone())).expect_err("invalid");
            assert_eq!(err.field, field, "{json}: {err}");
        }
    }
}
