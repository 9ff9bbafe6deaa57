//! rustls configurations for the mesh's mutual TLS: TLS 1.3 only, ALPN `h2`,
//! the aws-lc-rs provider, and SPIFFE identities instead of host names.
//!
//! Both sides present a [`WorkloadCertificate`] and verify the peer's chain
//! against a [`TrustBundle`] with webpki. The client additionally requires
//! the server to be the *expected* identity (from configuration, never from
//! the server itself); the server accepts any client that chains to the
//! bundle and names one SPIFFE ID, and leaves the decision about that
//! identity to authorization ([`peer_identity`] after the handshake).
//!
//! Session resumption is off: every connection verifies the peer's current
//! certificate, so expiry and rotation take effect on the next connection.
//! The server name given to `connect` is not checked; SPIFFE certificates
//! carry no DNS names, so pass the destination IP address.

use std::sync::{Arc, LazyLock};

use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    client::{Resumption, verify_server_cert_signed_by_trust_anchor},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, UnixTime},
    server::{NoServerSessionStorage, ParsedCertificate, WebPkiClientVerifier},
};

use crate::{SpiffeId, TrustBundle, WorkloadCertificate};

mod verifier;

pub use crate::cert::{IdentityError, peer_identity};
pub use verifier::IdentityMismatch;

/// The one application protocol spoken inside the tunnel: HTTP/2 (HBONE).
pub const ALPN_H2: &[u8] = b"h2";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls refused the certificate, key or settings.
    #[error("could not build the TLS {side} configuration: {source}")]
    Config {
        /// `client` or `server`.
        side: &'static str,
        /// The rustls error.
        source: rustls::Error,
    },
    /// The trust bundle cannot be used to verify clients.
    #[error("could not build the client certificate verifier from the trust bundle: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// A server configuration presenting `cert` and requiring every client to
/// present a certificate that chains to `bundle` and names one SPIFFE ID.
///
/// After the handshake, get the client's identity with [`peer_identity`] on
/// the connection's peer certificates.
pub fn server_config(
    cert: &WorkloadCertificate,
    bundle: &TrustBundle,
) -> Result<Arc<ServerConfig>, TlsError> {
    build_server_config(cert, bundle, true)
}

/// A client configuration presenting `cert` and accepting only a server
/// whose certificate chains to `bundle` and names exactly `expected`.
///
/// A server with any other identity is refused with an [`IdentityMismatch`]
/// naming both identities (also logged as a warning).
pub fn client_config(
    cert: &WorkloadCertificate,
    bundle: &TrustBundle,
    expected: SpiffeId,
) -> Result<Arc<ClientConfig>, TlsError> {
    build_client_config(Some(cert), bundle, expected)
}

/// A server configuration for the control plane's own port: like
/// [`server_config`], but a client certificate is optional, because proxies
/// reach the certificate service there before they have one (they
/// authenticate with a token instead). A certificate that is presented must
/// still chain to the bundle and name one SPIFFE ID.
pub fn server_config_client_cert_optional(
    cert: &WorkloadCertificate,
    bundle: &TrustBundle,
) -> Result<Arc<ServerConfig>, TlsError> {
    build_server_config(cert, bundle, false)
}

fn build_server_config(
    cert: &WorkloadCertificate,
    bundle: &TrustBundle,
    client_cert_required: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let mut webpki =
        WebPkiClientVerifier::builder_with_provider(bundle.root_store(), provider.clone());
    if !client_cert_required {
        webpki = webpki.allow_unauthenticated();
    }
    let error = |source| TlsError::Config {
        side: "server",
        source,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(error)?
        .with_client_cert_verifier(Arc::new(verifier::ClientVerifier::new(webpki.build()?)))
        .with_single_cert(cert.chain().to_vec(), cert.key().clone_key())
        .map_err(error)?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// A client configuration that verifies the server is `expected` (chained to
/// `bundle`) and presents no certificate: for reaching the control plane
/// before the proxy has one, and for tools such as braidctl.
pub fn client_config_without_cert(
    bundle: &TrustBundle,
    expected: SpiffeId,
) -> Result<Arc<ClientConfig>, TlsError> {
    build_client_config(None, bundle, expected)
}

fn build_client_config(
    cert: Option<&WorkloadCertificate>,
    bundle: &TrustBundle,
    expected: SpiffeId,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let verifier = verifier::ServerVerifier::new(bundle.root_store(), expected, &provider);
    let error = |source| TlsError::Config {
        side: "client",
        source,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match cert {
        Some(cert) => builder
            .with_client_auth_cert(cert.chain().to_vec(), cert.key().clone_key())
            .map_err(error)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The crypto provider every configuration uses: aws-lc-rs.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: LazyLock<Arc<CryptoProvider>> =
        LazyLock::new(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    PROVIDER.clone()
}

/// Verifies that `chain` (leaf first) chains to `bundle` at `now`, for
/// server use; names are not checked.
pub(crate) fn verify_chain(
    chain: &[CertificateDer<'_>],
    bundle: &TrustBundle,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or(rustls::Error::NoCertificatesPresented)?;
    verify_server_chain(leaf, intermediates, &bundle.root_store(), now)
}

fn verify_server_chain(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    roots: &RootCertStore,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let parsed = ParsedCertificate::try_from(leaf)?;
    let algorithms = provider().signature_verification_algorithms;
    verify_server_cert_signed_by_trust_anchor(&parsed, roots, intermediates, now, algorithms.all)
}

#[cfg(test)]
mod tests;
