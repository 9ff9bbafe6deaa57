//! The webhook's serving certificate. kube-apiserver verifies it by DNS
//! name against the `caBundle` of the webhook configuration (the mesh root),
//! so it carries DNS SANs (`braid-control.braid-system.svc[.cluster.local]`
//! plus `--webhook-dns-name`) and the listen IP, unlike the SPIFFE-only
//! workload certificates [`Ca::sign`] issues. It is signed here with the
//! CA's own key and renewed at half its lifetime.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use braid_identity::{
    Ca, CertificateRequest, SpiffeId,
    rustls::{
        self, ServerConfig,
        pki_types::{CertificateDer, DnsName, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType,
};
use tokio::sync::watch;

/// DNS names every webhook certificate carries: the control plane's Service.
pub const DEFAULT_DNS_NAMES: [&str; 2] = [
    "braid-control.braid-system.svc",
    "braid-control.braid-system.svc.cluster.local",
];

/// How far back validity starts, for apiservers whose clock is behind.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// How long to wait before retrying a failed renewal.
const RETRY: Duration = Duration::from_secs(60);

/// Why the webhook certificate cannot be issued.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The CA's private key cannot be read.
    #[error("cannot read the CA key {}: {source}", path.display())]
    ReadKey {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A `--webhook-dns-name` is not a DNS name.
    #[error("--webhook-dns-name {0:?} is not a valid DNS name")]
    DnsName(String),
    /// Key parsing, signing or the TLS configuration failed.
    #[error("cannot issue the webhook certificate: {0}")]
    Issue(String),
}

/// Issues webhook certificates with the control plane's CA.
pub struct WebhookIssuer {
    issuer: rcgen::Issuer<'static, KeyPair>,
    /// Certificates between the leaf and the root (the operator's
    /// intermediate and what is above it); empty for a root CA.
    intermediates: Vec<CertificateDer<'static>>,
    names: Vec<SanType>,
    lifetime: Duration,
    ca_expiry: SystemTime,
}

// === impl WebhookIssuer ===

impl WebhookIssuer {
    /// An issuer for `ca`, whose private key is the PEM file `key_file`, for
    /// the default names plus `dns_names` and `ip` (unless unspecified).
    pub fn new(
        ca: &Ca,
        key_file: &Path,
        dns_names: &[String],
        ip: IpAddr,
        lifetime: Duration,
    ) -> Result<Self, CertError> {
        let key_pem = std::fs::read_to_string(key_file).map_err(|source| CertError::ReadKey {
            path: key_file.to_path_buf(),
            source,
        })?;
        let issue = |e: &dyn std::fmt::Display| CertError::Issue(e.to_string());
        let key = KeyPair::from_pem(&key_pem).map_err(|e| issue(&e))?;
        let issuer =
            rcgen::Issuer::from_ca_cert_der(ca.certificate(), key).map_err(|e| issue(&e))?;
        // The chain above the CA's certificate, as the CA serves it to
        // workloads: sign a throwaway request and keep all but the leaf.
        let probe = SpiffeId::control_plane(ca.trust_domain());
        let csr = CertificateRequest::generate(&probe).map_err(|e| issue(&e))?;
        let signed = ca
            .sign(csr.csr_pem().as_bytes(), &probe, Duration::from_secs(60))
            .map_err(|e| issue(&e))?;
        let intermediates = signed.chain.into_iter().skip(1).collect();
        let mut names = Vec::new();
        let defaults = DEFAULT_DNS_NAMES.iter().map(|n| n.to_string());
        for name in defaults.chain(dns_names.iter().cloned()) {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if DnsName::try_from(name.as_str()).is_err() {
                return Err(CertError::DnsName(name));
            }
            let san = SanType::DnsName(name.clone().try_into().map_err(|e| issue(&e))?);
            if !names.contains(&san) {
                names.push(san);
            }
        }
        if !ip.is_unspecified() {
            names.push(SanType::IpAddress(ip));
        }
        Ok(Self {
            issuer,
            intermediates,
            names,
            lifetime,
            ca_expiry: ca.expires_at(),
        })
    }

    /// A fresh key and certificate, as a TLS server configuration, and the
    /// certificate's expiry.
    pub fn issue(&self) -> Result<(Arc<ServerConfig>, SystemTime), CertError> {
        let issue = |e: &dyn std::fmt::Display| CertError::Issue(e.to_string());
        let now = SystemTime::now();
        let not_after = (now + self.lifetime).min(self.ca_expiry);
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, DEFAULT_DNS_NAMES[0]);
        params.subject_alt_names = self.names.clone();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = (now - CLOCK_SKEW).into();
        params.not_after = not_after.into();
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| issue(&e))?;
        let leaf = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| issue(&e))?;
        let mut chain = vec![leaf.der().clone()];
        chain.extend(self.intermediates.iter().cloned());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| issue(&e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| issue(&e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((Arc::new(config), not_after))
    }

    /// Issues a new certificate at half of each one's lifetime (retrying
    /// every minute after a failure) until `shutdown` turns true.
    pub async fn renew(
        self,
        mut expiry: SystemTime,
        tls: watch::Sender<Arc<ServerConfig>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut wait = half_left(expiry);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            match self.issue() {
                Ok((config, not_after)) => {
                    tracing::info!(expires = ?not_after, "renewed the webhook certificate");
                    tls.send_replace(config);
                    expiry = not_after;
                    wait = half_left(expiry);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook certificate renewal failed; retrying in 60s");
                    wait = RETRY;
                }
            }
        }
    }
}

impl std::fmt::Debug for WebhookIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookIssuer")
            .field("names", &self.names)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// Half the time left until `expiry` (at least a second).
fn half_left(expiry: SystemTime) -> Duration {
    let left = expiry.duration_since(SystemTime::now()).unwrap_or_default();
    (left / 2).max(Duration::from_secs(1))
}
