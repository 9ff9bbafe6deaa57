//! The certificate service (`braid.security.v1alpha1.CertificateService`):
//! signs CSRs for SPIFFE identities with the control plane's CA, after
//! checking the caller's bearer token against [`Identities`]: a proxy
//! token, or with `--source kube` a ServiceAccount token the API server
//! vouches for ([`TokenReviewer`]).
//!
//! This module is the one place refusals become gRPC statuses.

use std::{str::FromStr as _, sync::Arc, time::Duration};

use braid_api::braid::security::v1alpha1::{
    SignRequest, SignResponse, certificate_service_server::CertificateService,
};
use braid_identity::{Ca, SpiffeId};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::{
    identities::{Identities, Refusal},
    source::token::Principal,
    tokenreview::TokenReviewer,
};

/// Signs certificates for authorized proxies.
#[derive(Debug, Clone)]
pub struct CertificateServer {
    ca: Arc<Ca>,
    identities: watch::Receiver<Arc<Identities>>,
    lifetime: Duration,
    reviewer: Option<(Arc<TokenReviewer>, (String, String))>,
}

// === impl CertificateServer ===

impl CertificateServer {
    /// A service issuing certificates valid for `lifetime`.
    pub fn new(
        ca: Arc<Ca>,
        identities: watch::Receiver<Arc<Identities>>,
        lifetime: Duration,
    ) -> Self {
        Self {
            ca,
            identities,
            lifetime,
            reviewer: None,
        }
    }
}

impl CertificateServer {
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

    /// A proxy token first; failing that, the API server's word.
    async fn authorize(&self, token: &str, id: &SpiffeId) -> Result<Principal, Refusal> {
        let known = self.identities.borrow().principal(token).cloned();
        let principal = match (known, &self.reviewer) {
            (Some(principal), _) => principal,
            (None, None) => return Err(Refusal::UnknownToken),
            (None, Some((reviewer, (ns, sa)))) => {
                let claims = reviewer.review(token).await.map_err(Refusal::TokenReview)?;
                let identities = self.identities.borrow().clone();
                claims
                    .principal((ns, sa), |ns, pod| identities.pod_node(ns, pod))
                    .map_err(Refusal::TokenReview)?
            }
        };
        self.identities.borrow().authorize_principal(&principal, id)
    }
}

fn bearer<T>(request: &Request<T>) -> Result<&str, Status> {
    let value = request.metadata().get("authorization").ok_or_else(|| {
        Status::unauthenticated("missing token: send `authorization: Bearer <token>` with a token from a braid.dev/proxy-token Secret or, on Kubernetes, the pod's projected ServiceAccount token")
    })?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Status::unauthenticated("malformed authorization metadata: expected `Bearer <token>`")
        })
}

#[tonic::async_trait]
impl CertificateService for CertificateServer {
    async fn sign(&self, request: Request<SignRequest>) -> Result<Response<SignResponse>, Status> {
        let token = bearer(&request)?.to_string();
        let SignRequest { csr, identity } = request.into_inner();
        let id =
            SpiffeId::from_str(&identity).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if id.trust_domain() != self.ca.trust_domain().as_str() {
            return Err(Status::invalid_argument(format!(
                "{id} is outside this control plane's trust domain {:?}",
                self.ca.trust_domain().as_str()
            )));
        }
        let principal = self.authorize(&token, &id).await.map_err(|refusal| {
            tracing::warn!(%id, reason = %refusal, "refused a certificate request");
            match refusal {
                Refusal::UnknownToken | Refusal::TokenReview(_) => {
                    Status::unauthenticated(refusal.to_string())
                }
                _ => Status::permission_denied(refusal.to_string()),
            }
        })?;
        let issued = self.ca.sign(&csr, &id, self.lifetime).map_err(|e| {
            Status::invalid_argument(format!("cannot sign the request for {id}: {e}"))
        })?;
        tracing::debug!(%id, %principal, "issued a certificate");
        Ok(Response::new(SignResponse {
            cert_chain_pem: issued.chain_pem(),
            trust_bundle_pem: issued.trust_bundle.to_pem(),
            not_after: Some(prost_types::Timestamp::from(issued.not_after)),
        }))
    }
}
