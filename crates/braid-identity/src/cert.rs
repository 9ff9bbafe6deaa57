//! Reading certificates: PEM in, the few fields Braid relies on out.
//!
//! Only reading happens here; whether a certificate is *trusted* is decided by
//! webpki in [`crate::tls`]. [`peer_identity`] is meant for certificates that
//! have already been verified.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, pem::PemObject};
use x509_parser::{certificate::X509Certificate, extensions::GeneralName, prelude::FromDer};

use crate::{SpiffeId, SpiffeIdError};

/// Why a certificate does not name exactly one valid SPIFFE identity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The peer sent no certificate.
    #[error("the peer presented no certificate")]
    NoCertificate,
    /// The certificate is not valid DER.
    #[error("could not parse the certificate: {0}")]
    Unparseable(String),
    /// No URI SAN at all.
    #[error(
        "the certificate has no URI subject alternative name: a SPIFFE certificate carries \
         exactly one spiffe:// URI"
    )]
    NoUri,
    /// More than one URI SAN: the SPIFFE spec allows exactly one.
    #[error(
        "the certificate has {} URI subject alternative names ({}): a SPIFFE certificate \
         carries exactly one", .0.len(), .0.join(", ")
    )]
    ManyUris(Vec<String>),
    /// The URI SAN is not a Braid identity.
    #[error("the certificate's URI subject alternative name is not a valid identity: {0}")]
    Invalid(#[from] SpiffeIdError),
}

/// The SPIFFE identity of a peer whose certificate chain has been verified:
/// `certs` as rustls hands them over (leaf first), e.g. from
/// `ServerConnection::peer_certificates`.
///
/// The leaf must carry exactly one URI SAN, and it must be a valid
/// [`SpiffeId`]; nothing else in the certificate is looked at. This does not
/// verify the chain: only call it on certificates a verifier accepted, such as
/// the peer certificates of a finished handshake with
/// [`server_config`](crate::tls::server_config).
pub fn peer_identity(certs: &[CertificateDer<'_>]) -> Result<SpiffeId, IdentityError> {
    let leaf = certs.first().ok_or(IdentityError::NoCertificate)?;
    let info = CertInfo::parse(leaf).map_err(IdentityError::Unparseable)?;
    info.spiffe_id()
}

/// What Braid reads from a certificate.
#[derive(Clone, Debug)]
pub(crate) struct CertInfo {
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    /// Every URI SAN, in order.
    pub(crate) uris: Vec<String>,
    /// `basicConstraints CA:true`, and `keyCertSign` if a key usage is given.
    pub(crate) can_sign_certs: bool,
    /// Issuer and subject are the same name.
    pub(crate) self_issued: bool,
    /// DER of the SubjectPublicKeyInfo.
    pub(crate) spki: Vec<u8>,
}

// === impl CertInfo ===

impl CertInfo {
    /// Parses a DER certificate; the error says what is malformed.
    pub(crate) fn parse(der: &CertificateDer<'_>) -> Result<Self, String> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err("trailing bytes after the certificate".to_string());
        }
        let uris = match cert.subject_alternative_name().map_err(|e| e.to_string())? {
            None => Vec::new(),
            Some(san) => san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some((*uri).to_string()),
                    _ => None,
                })
                .collect(),
        };
        let key_cert_sign = match cert.key_usage().map_err(|e| e.to_string())? {
            None => true,
            Some(ku) => ku.value.key_cert_sign(),
        };
        let validity = cert.validity();
        Ok(Self {
            not_before: system_time(validity.not_before.timestamp()),
            not_after: system_time(validity.not_after.timestamp()),
            uris,
            can_sign_certs: cert.is_ca() && key_cert_sign,
            self_issued: cert.issuer().as_raw() == cert.subject().as_raw(),
            spki: cert.public_key().raw.to_vec(),
        })
    }

    /// The one SPIFFE ID this certificate names.
    pub(crate) fn spiffe_id(&self) -> Result<SpiffeId, IdentityError> {
        match &self.uris[..] {
            [] => Err(IdentityError::NoUri),
            [uri] => Ok(uri.parse()?),
            many => Err(IdentityError::ManyUris(many.to_vec())),
        }
    }
}

/// Every certificate in `pem`, in order; an error if there is none or a
/// block is malformed. `what` names the input in the message.
pub(crate) fn certs_from_pem(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} contains no certificate: expected \"-----BEGIN CERTIFICATE-----\" blocks"
        ));
    }
    Ok(certs)
}

/// Encodes certificates as PEM, one block each.
pub(crate) fn certs_to_pem<'a>(certs: impl IntoIterator<Item = &'a CertificateDer<'a>>) -> String {
    let mut out = String::new();
    for cert in certs {
        out.push_str(&pem_block("CERTIFICATE", cert));
    }
    out
}

/// One PEM block, `\n` line endings.
pub(crate) fn pem_block(label: &str, der: &[u8]) -> String {
    const CONFIG: pem::EncodeConfig = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der), CONFIG)
}

/// Seconds since the epoch (negative before it) as a `SystemTime`.
fn system_time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs()),
    }
}

/// RFC 3339 in UTC, for messages.
pub(crate) fn fmt_time(at: SystemTime) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from(at)
        .format(&Rfc3339)
        .unwrap_or_else(|_| format!("{at:?}"))
}

#[cfg(test)]
mod tests;
