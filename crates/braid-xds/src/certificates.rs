//! The client side of the control plane's certificate service: a
//! [`CertificateSource`] for braid-identity's certificate manager that asks
//! `braid.security.v1alpha1.CertificateService/Sign` over gRPC, authenticated
//! with the proxy's bearer token.

use braid_api::braid::security::v1alpha1::{
    SignRequest, certificate_service_client::CertificateServiceClient,
};
use braid_identity::{
    CertificateSource, IssuedChain, SignFuture, SourceError, SpiffeId,
    rustls::pki_types::CertificateSigningRequestDer,
};
use tonic::{Code, Request, metadata::MetadataValue, transport::Channel};

use crate::Error;

/// Signs CSRs with the control plane's CA.
#[derive(Clone)]
pub struct GrpcCertificateSource {
    client: CertificateServiceClient<Channel>,
    authorization: MetadataValue<tonic::metadata::Ascii>,
}

// === impl GrpcCertificateSource ===

impl GrpcCertificateSource {
    /// A source for the control plane at `uri` (e.g. `http://127.0.0.1:15010`),
    /// presenting `token`, over TLS when `tls` is given. Connects lazily, on
    /// the first request.
    pub fn new(
        uri: &str,
        token: &str,
        tls: Option<&crate::ControlPlaneTls>,
    ) -> Result<Self, Error> {
        let channel = crate::channel::channel(uri, tls)?;
        let authorization = format!("Bearer {token}")
            .parse()
            .map_err(|_| Error::InvalidToken)?;
        Ok(Self {
            client: CertificateServiceClient::new(channel),
            authorization,
        })
    }
}

impl std::fmt::Debug for GrpcCertificateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never print it.
        f.debug_struct("GrpcCertificateSource")
            .finish_non_exhaustive()
    }
}

impl CertificateSource for GrpcCertificateSource {
    fn sign(&self, csr: CertificateSigningRequestDer<'static>, id: SpiffeId) -> SignFuture<'_> {
        Box::pin(async move {
            let mut request = Request::new(SignRequest {
                csr: csr.as_ref().to_vec(),
                identity: id.to_string(),
            });
            request
                .metadata_mut()
                .insert("authorization", self.authorization.clone());
            let response = self
                .client
                .clone()
                .sign(request)
                .await
                .map_err(|status| classify(&id, &status))?
                .into_inner();
            IssuedChain::from_pem(&response.cert_chain_pem, &response.trust_bundle_pem).map_err(
                |e| {
                    SourceError::unavailable(format!(
                        "the control plane sent an unreadable certificate for {id}: {e}"
                    ))
                },
            )
        })
    }
}

/// Refusals are final for this request (retried only after the longest
/// backoff); anything else is the CA being unreachable or overloaded.
fn classify(id: &SpiffeId, status: &tonic::Status) -> SourceError {
    match status.code() {
        Code::PermissionDenied | Code::Unauthenticated | Code::InvalidArgument => {
            SourceError::refused(id, status.message())
        }
        Code::Unimplemented => SourceError::refused(
            id,
            "the control plane has no certificate authority: start braid-control with --ca-dir",
        ),
        _ => SourceError::unavailable(format!("{}: {}", status.code(), status.message())),
    }
}
