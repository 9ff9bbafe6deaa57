//! Who a proxy is: the bearer token it presents (`authorization: Bearer
//! <token>`) on the certificate service and on the xDS stream. A proxy token
//! from a `braid.dev/proxy-token` Secret is looked up locally; with `--source
//! kube` any other token goes to the API server's TokenReview.
//!
//! This module turns tokens into principals; turning a refusal into a gRPC
//! status is the caller's business.

use std::sync::Arc;

use braid_identity::SpiffeId;
use tokio::sync::watch;
use tonic::{Request, Status};

use crate::{
    identities::{Identities, Refusal},
    source::token::Principal,
    tokenreview::TokenReviewer,
};

/// Authenticates proxies.
#[derive(Clone, Debug)]
pub struct Authenticator {
    identities: watch::Receiver<Arc<Identities>>,
    reviewer: Option<(Arc<TokenReviewer>, (String, String))>,
}

// === impl Authenticator ===

impl Authenticator {
    /// Knows the proxy tokens of `identities` only.
    pub fn new(identities: watch::Receiver<Arc<Identities>>) -> Self {
        Self {
            identities,
            reviewer: None,
        }
    }

    /// Also accepts Kubernetes ServiceAccount tokens, reviewed by the API
    /// server; `node_account` is the node proxies' (namespace, name).
    pub fn with_token_review(
        mut self,
        reviewer: Arc<TokenReviewer>,
        node_account: (String, String),
    ) -> Self {
        self.reviewer = Some((reviewer, node_account));
        self
    }

    /// The current view of who may hold which identity.
    pub fn identities(&self) -> Arc<Identities> {
        self.identities.borrow().clone()
    }

    /// Whether `principal` may get a certificate for `id`: the rules of
    /// [`Identities::authorize_principal`], and the node proxies' own
    /// account (`--node-service-account`) is reserved as well, whatever its
    /// name: the install's default is in [`crate::identities::RESERVED`], a
    /// renamed one is only known here.
    pub fn authorize(&self, principal: &Principal, id: &SpiffeId) -> Result<Principal, Refusal> {
        if let Some((_, (ns, sa))) = &self.reviewer
            && id.namespace() == ns
            && id.service_account() == sa
        {
            return Err(Refusal::Reserved {
                principal: principal.to_string(),
                id: id.to_string(),
                component: "the node proxies (--node-service-account)",
            });
        }
        self.identities().authorize_principal(principal, id)
    }

    /// Who holds `token`: a proxy token first; failing that, the API
    /// server's word.
    pub async fn principal(&self, token: &str) -> Result<Principal, Refusal> {
        if let Some(principal) = self.identities.borrow().principal(token) {
            return Ok(principal.clone());
        }
        let Some((reviewer, (ns, sa))) = &self.reviewer else {
            return Err(Refusal::UnknownToken);
        };
        let claims = reviewer.review(token).await.map_err(Refusal::TokenReview)?;
        let identities = self.identities();
        claims
            .principal((ns, sa), |ns, pod| identities.pod_node(ns, pod))
            .map_err(Refusal::TokenReview)
    }
}

/// The bearer token of `request`; `Ok(None)` when it sends none.
pub fn bearer<T>(request: &Request<T>) -> Result<Option<&str>, Status> {
    let Some(value) = request.metadata().get("authorization") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Some)
        .ok_or_else(|| {
            Status::unauthenticated("malformed authorization metadata: expected `Bearer <token>`")
        })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use super::*;

    /// An authenticator with token review on, for a renamed node account.
    /// The kube client is never used: `authorize` does no I/O.
    fn with_node_account(ns: &str, sa: &str) -> anyhow::Result<Authenticator> {
        let (_tx, identities) = watch::channel(Arc::new(Identities::default()));
        let config = kube::Config::new("http://127.0.0.1:9".parse()?);
        let reviewer = TokenReviewer::new(kube::Client::try_from(config)?, "braid");
        Ok(Authenticator::new(identities)
            .with_token_review(Arc::new(reviewer), (ns.to_string(), sa.to_string())))
    }

    #[tokio::test]
    async fn sign_refuses_a_renamed_node_account_identity() -> anyhow::Result<()> {
        let auth = with_node_account("mesh-infra", "nodes")?;
        let node = Principal::Node("node-a".into());
        let id = SpiffeId::from_str("spiffe://cluster.local/ns/mesh-infra/sa/nodes")?;
        match auth.authorize(&node, &id) {
            Err(Refusal::Reserved { component, .. }) => {
                assert!(component.contains("--node-service-account"), "{component}");
            }
            other => panic!("expected a reserved refusal, got {other:?}"),
        }
        // Another account in that namespace is judged by the usual rules
        // (here: no such pod), not reserved.
        let other = SpiffeId::from_str("spiffe://cluster.local/ns/mesh-infra/sa/other")?;
        assert!(!matches!(
            auth.authorize(&node, &other),
            Err(Refusal::Reserved { .. })
        ));
        Ok(())
    }
}
