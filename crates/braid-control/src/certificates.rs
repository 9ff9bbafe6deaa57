//! The certificate service (`braid.security.v1alpha1.CertificateService`):
//! signs CSRs for SPIFFE identities with the control plane's CA, after
//! checking the caller's bearer token against [`Identities`]: a proxy
//! token, or with `--source kube` a ServiceAccount token the API server
//! vouches for ([`TokenReviewer`]). It never issues the identities of the
//! mesh's own components (the control plane's above all: the control plane
//! issues its own from the CA without this service), nor those of pods
//! outside the mesh.
//!
//! This module is the one place refusals become gRPC statuses.

use std::{str::FromStr as _, sync::Arc, time::Duration};

use braid_api::braid::security::v1alpha1::{
    SignRequest, SignResponse, certificate_service_server::CertificateService,
};
use braid_identity::{Ca, SpiffeId};
use tonic::{Request, Response, Status};

use crate::{
    auth::{Authenticator, bearer},
    identities::Refusal,
};

/// Signs certificates for authorized proxies.
#[derive(Debug, Clone)]
pub struct CertificateServer {
    ca: Arc<Ca>,
    auth: Authenticator,
    lifetime: Duration,
}

// === impl CertificateServer ===

impl CertificateServer {
    /// A service issuing certificates valid for `lifetime`.
    pub fn new(ca: Arc<Ca>, auth: Authenticator, lifetime: Duration) -> Self {
        Self { ca, auth, lifetime }
    }
}

#[tonic::async_trait]
impl CertificateService for CertificateServer {
    async fn sign(&self, request: Request<SignRequest>) -> Result<Response<SignResponse>, Status> {
        let token = bearer(&request)?
            .ok_or_else(|| Status::unauthenticated("missing token: send `authorization: Bearer <token>` with a token from a braid.dev/proxy-token Secret or, on Kubernetes, the pod's projected ServiceAccount token"))?
            .to_string();
        let SignRequest { csr, identity } = request.into_inner();
        let id =
            SpiffeId::from_str(&identity).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if id.trust_domain() != self.ca.trust_domain().as_str() {
            return Err(Status::invalid_argument(format!(
                "{id} is outside this control plane's trust domain {:?}",
                self.ca.trust_domain().as_str()
            )));
        }
        let authorized = match self.auth.principal(&token).await {
            Ok(principal) => self.auth.authorize(&principal, &id),
            Err(refusal) => Err(refusal),
        };
        let principal = authorized.map_err(|refusal| {
            tracing::warn!(%id, reason = %refusal, "refused a certificate request");
            match refusal {
                Refusal::UnknownToken | Refusal::TokenReview(_) => {
                    Status::unauthenticated(refusal.to_string())
                }
                Refusal::Reserved { .. }
                | Refusal::NotOnNode { .. }
                | Refusal::NotMeshed { .. }
                | Refusal::NotItsPod { .. } => Status::permission_denied(refusal.to_string()),
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
