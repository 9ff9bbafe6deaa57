//! Kubernetes ServiceAccount tokens as proxy credentials (`--source kube`):
//! a token the certificate service does not know as a proxy token is sent
//! to the API server's TokenReview, with the audience the injected projected
//! token carries (`--token-audience`, default `braid`).
//!
//! What the review says becomes a [`Claims`]: the namespace and account,
//! and for a token bound to a pod the pod's name and node. Turning claims
//! into a [`Principal`] is pure ([`Claims::principal`]): the node proxies'
//! account (`--node-service-account`) is a node principal, scoped by the
//! token's node claim or else the bound pod's `nodeName`; any other
//! account must hold a pod-bound token and gets only that pod's identity.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::{Api, Client, api::PostParams};

use crate::source::token::Principal;

/// How long a successful review is reused; a revoked token keeps working
/// at most this long.
const CACHE_FOR: Duration = Duration::from_secs(60);

/// Reviews kept at most; the cache is emptied when full.
const CACHE_MAX: usize = 10_000;

const POD_NAME: &str = "authentication.kubernetes.io/pod-name";
const NODE_NAME: &str = "authentication.kubernetes.io/node-name";
const SA_PREFIX: &str = "system:serviceaccount:";

/// What an authenticated ServiceAccount token says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The account's namespace.
    pub namespace: String,
    /// The account.
    pub service_account: String,
    /// The pod the token is bound to.
    pub pod: Option<String>,
    /// The node of that pod (bound tokens, Kubernetes 1.30+).
    pub node: Option<String>,
}

/// Reviews tokens against the API server, caching successes briefly.
pub struct TokenReviewer {
    api: Api<TokenReview>,
    audience: String,
    cache: Mutex<HashMap<String, (Instant, Claims)>>,
}

impl std::fmt::Debug for TokenReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewer")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

// === impl TokenReviewer ===

impl TokenReviewer {
    /// A reviewer asking `client`'s API server, for tokens minted for `audience`.
    pub fn new(client: Client, audience: impl Into<String>) -> Self {
        Self {
            api: Api::all(client),
            audience: audience.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Who holds `token`; an error says why it is not accepted.
    pub async fn review(&self, token: &str) -> Result<Claims, String> {
        if let Some(claims) = self.cached(token) {
            return Ok(claims);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..Default::default()
        };
        let reviewed = self
            .api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("the TokenReview request failed: {e}; check the control plane's RBAC (create tokenreviews)"))?;
        let claims = claims(reviewed.status.as_ref(), &self.audience)?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(token.to_string(), (Instant::now(), claims.clone()));
        Ok(claims)
    }

    fn cached(&self, token: &str) -> Option<Claims> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(token)
            .filter(|(at, _)| at.elapsed() < CACHE_FOR)
            .map(|(_, claims)| claims.clone())
    }
}

/// Reads a TokenReview's answer.
pub fn claims(status: Option<&TokenReviewStatus>, audience: &str) -> Result<Claims, String> {
    let status = status.ok_or("the API server's TokenReview has no status")?;
    if status.authenticated != Some(true) {
        return Err(match status.error.as_deref() {
            Some(e) if !e.is_empty() => format!("the API server rejected the token: {e}"),
            _ => format!(
                "the API server did not authenticate the token; it must be a ServiceAccount token with audience {audience:?}"
            ),
        });
    }
    let user = status.user.as_ref().ok_or("authenticated, but no user")?;
    let username = user.username.as_deref().unwrap_or_default();
    let (namespace, service_account) = username
        .strip_prefix(SA_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .ok_or_else(|| format!("{username:?} is not a ServiceAccount; proxies present their pod's ServiceAccount token"))?;
    let extra = |key: &str| {
        user.extra
            .as_ref()
            .and_then(|e| e.get(key))
            .and_then(|v| v.first())
            .filter(|v| !v.is_empty())
            .cloned()
    };
    Ok(Claims {
        namespace: namespace.to_string(),
        service_account: service_account.to_string(),
        pod: extra(POD_NAME),
        node: extra(NODE_NAME),
    })
}

// === impl Claims ===

impl Claims {
    /// The principal these claims make: `node_account` (`namespace`,
    /// `name`) is the node proxies'; `pod_node` finds a pod's `nodeName`
    /// when the token carries no node claim.
    pub fn principal(
        &self,
        node_account: (&str, &str),
        pod_node: impl Fn(&str, &str) -> Option<String>,
    ) -> Result<Principal, String> {
        let who = format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        );
        let Some(pod) = &self.pod else {
            return Err(format!(
                "{who}: the token is not bound to a pod; mount a projected ServiceAccount token (audience braid) instead of a long-lived one"
            ));
        };
        if (self.namespace.as_str(), self.service_account.as_str()) == node_account {
            let node = self
                .node
                .clone()
                .or_else(|| pod_node(&self.namespace, pod))
                .ok_or_else(|| {
                    format!(
                        "{who}: pod {}/{pod} is not scheduled on a node the control plane knows",
                        self.namespace
                    )
                })?;
            return Ok(Principal::Node(node));
        }
        Ok(Principal::Pod {
            namespace: self.namespace.clone(),
            name: pod.clone(),
        })
    }
}

#[cfg(test)]
#[path = "tokenreview/tests.rs"]
mod tests;
