//! The certificate verifiers behind [`server_config`](super::server_config)
//! and [`client_config`](super::client_config).

use std::{fmt, io, slice, sync::Arc};

use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, RootCertStore,
    SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{
        CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
    },
    pki_types::{CertificateDer, ServerName, UnixTime},
    server::danger::{ClientCertVerified, ClientCertVerifier},
};

use crate::{SpiffeId, cert::IdentityError};

/// The server presented a certificate for another identity than the one
/// the client expected (or for none).
///
/// Returned inside the handshake error; find it with
/// [`IdentityMismatch::in_io_error`] or [`IdentityMismatch::in_rustls_error`].
#[derive(Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct IdentityMismatch {
    expected: SpiffeId,
    presented: Result<SpiffeId, IdentityError>,
}

/// Verifies a server: chain to the bundle, then exactly the expected identity.
#[derive(Debug)]
pub(super) struct ServerVerifier {
    roots: Arc<RootCertStore>,
    expected: SpiffeId,
    algorithms: WebPkiSupportedAlgorithms,
}

/// Verifies a client: webpki's checks, then a SPIFFE ID must be present.
#[derive(Debug)]
pub(super) struct ClientVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
}

// === impl IdentityMismatch ===

impl IdentityMismatch {
    /// The identity the client required.
    pub fn expected(&self) -> &SpiffeId {
        &self.expected
    }

    /// The identity the server's certificate names, if it names a valid one.
    pub fn presented(&self) -> Option<&SpiffeId> {
        self.presented.as_ref().ok()
    }

    /// The mismatch behind a failed handshake, if that is why it failed.
    pub fn in_rustls_error(error: &Error) -> Option<&Self> {
        match error {
            Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
                inner.downcast_ref()
            }
            _ => None,
        }
    }

    /// The mismatch behind a failed handshake as tokio-rustls reports it.
    pub fn in_io_error(error: &io::Error) -> Option<&Self> {
        let inner = error.get_ref()?.downcast_ref::<Error>()?;
        Self::in_rustls_error(inner)
    }

    fn describe(&self) -> String {
        match &self.presented {
            Ok(presented) => format!(
                "server identity mismatch: expected {}, presented {presented}",
                self.expected
            ),
            Err(e) => format!(
                "server identity mismatch: expected {}, presented a certificate without a valid \
                 identity ({e})",
                self.expected
            ),
        }
    }
}

/// Same as `Display`: rustls prints this error with `{:?}`, and the message
/// is what an operator needs to see.
impl fmt::Debug for IdentityMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

// === impl ServerVerifier ===

impl ServerVerifier {
    pub(super) fn new(
        roots: Arc<RootCertStore>,
        expected: SpiffeId,
        provider: &CryptoProvider,
    ) -> Self {
        Self {
            roots,
            expected,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let presented = crate::peer_identity(slice::from_ref(end_entity));
        if let Err(error) = super::verify_server_chain(end_entity, intermediates, &self.roots, now)
        {
            tracing::warn!(
                expected = %self.expected,
                presented = %describe(&presented),
                %error,
                "refused the server's certificate: it is not trusted",
            );
            return Err(error);
        }
        match presented {
            Ok(id) if id == self.expected => Ok(ServerCertVerified::assertion()),
            presented => {
                let mismatch = IdentityMismatch {
                    expected: self.expected.clone(),
                    presented,
                };
                tracing::warn!(
                    expected = %mismatch.expected,
                    presented = %describe(&mismatch.presented),
                    "refused the server's certificate: it is not the expected identity",
                );
                Err(CertificateError::Other(OtherError(Arc::new(mismatch))).into())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

// === impl ClientVerifier ===

impl ClientVerifier {
    pub(super) fn new(webpki: Arc<dyn ClientCertVerifier>) -> Self {
        Self { webpki }
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let presented = crate::peer_identity(slice::from_ref(end_entity));
        let verified = self
            .webpki
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|error| {
                tracing::warn!(
                    presented = %describe(&presented),
                    %error,
                    "refused a client certificate: it is not trusted",
                );
            })?;
        if let Err(error) = presented {
            tracing::warn!(%error, "refused a client certificate: it names no valid identity");
            return Err(CertificateError::ApplicationVerificationFailure.into());
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A presented identity for logs: the ID, or why there is none.
fn describe(presented: &Result<SpiffeId, IdentityError>) -> String {
    match presented {
        Ok(id) => id.to_string(),
        Err(e) => format!("none ({e})"),
    }
}
