//! The certificate service (`braid.security.v1alpha1.CertificateService`):
//! signs CSRs for SPIFFE identities with the control plane's CA, after
//! checking the caller's bearer token against [`Identities`].
//!
//! This module is the one place refusals become gRPC statuses.

use std::{str::FromStr as _, sync::Arc, time::Duration};

use braid_api::braid::security::v1alpha1::{
    SignRequest, SignResponse, certificate_service_server::CertificateService,
};
use braid_identity::{Ca, SpiffeId};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::identities::{Identities, Refusal};

/// Signs certificates for authorized proxies.
#[derive(Debug, Clone)]
pub struct CertificateServer {
    ca: Arc<Ca>,
    identities: watch::Receiver<Arc<Identities>>,
    lifetime: Duration,
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
        }
    }
}

fn bearer<T>(request: &Request<T>) -> Result<&str, Status> {
    let value = request.metadata().get("authorization").ok_or_else(|| {
        Status::unauthenticated("missing token: send `authorization: Bearer <token>` with a token from a braid.dev/proxy-token Secret")
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
        let principal = self
            .identities
            .borrow()
            .authorize(&token, &id)
            .map_err(|refusal| {
                tracing::warn!(%id, reason = %refusal, "refused a certificate request");
                match refusal {
                    Refusal::UnknownToken => Status::unauthenticated(refusal.to_string()),
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
