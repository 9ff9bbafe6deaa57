//! The mesh's CA for a new install: a root that stays offline (only its
//! certificate is kept) and an intermediate that every control-plane
//! replica signs with (`--ca-cert`, `--ca-key`, `--ca-chain`), so proxies
//! trust certificates from either replica.
//!
//! Stored as the Secret `braid-system/braid-ca` and, for the node proxies
//! and sidecars, the root alone in the ConfigMap
//! `braid-system/braid-ca-root`. An existing Secret is never replaced:
//! that would break every certificate in the mesh at once.

use std::{collections::BTreeMap, time::SystemTime};

use anyhow::Context as _;
use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret},
};
use kube::api::ObjectMeta;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};

/// The Secret holding the intermediate (the Deployment mounts it).
pub(super) const SECRET: &str = "braid-ca";
/// The ConfigMap holding the root (the DaemonSet mounts it; sidecars too).
pub(super) const ROOT_CONFIGMAP: &str = "braid-ca-root";
/// Key of the intermediate's certificate in [`SECRET`].
const CERT_KEY: &str = "ca-cert.pem";
/// Key of the intermediate's private key in [`SECRET`].
const KEY_KEY: &str = "ca-key.pem";
/// Key of the chain above the intermediate (the root) in [`SECRET`].
const CHAIN_KEY: &str = "ca-chain.pem";
/// Key of the root in [`ROOT_CONFIGMAP`].
const ROOT_KEY: &str = "root-cert.pem";

/// Root validity: ten years.
const ROOT_LIFETIME: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 24 * 3600);
/// Intermediate validity: five years, well inside the root's.
const INTERMEDIATE_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(5 * 365 * 24 * 3600);
/// Validity starts this far back, for clocks a little behind.
const CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// A generated CA, PEM encoded.
pub(super) struct GeneratedCa {
    /// The intermediate's certificate.
    pub(super) cert_pem: String,
    /// The intermediate's private key.
    pub(super) key_pem: String,
    /// The root's certificate (the chain above the intermediate).
    pub(super) root_pem: String,
}

/// A new root and intermediate for `trust_domain`; the root's key is
/// dropped here.
pub(super) fn generate(trust_domain: &str) -> anyhow::Result<GeneratedCa> {
    let now = SystemTime::now();
    let root_key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generating the root key")?;
    let root_params = ca_params(
        trust_domain,
        "Braid root CA",
        BasicConstraints::Unconstrained,
        now,
        ROOT_LIFETIME,
    );
    let root = root_params
        .self_signed(&root_key)
        .context("signing the root certificate")?;
    let issuer = Issuer::new(root_params, root_key);

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .context("generating the intermediate key")?;
    let params = ca_params(
        trust_domain,
        "Braid intermediate CA",
        BasicConstraints::Constrained(0),
        now,
        INTERMEDIATE_LIFETIME,
    );
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing the intermediate certificate")?;
    Ok(GeneratedCa {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        root_pem: root.pem(),
    })
}

fn ca_params(
    trust_domain: &str,
    common_name: &str,
    constraints: BasicConstraints,
    now: SystemTime,
    lifetime: std::time::Duration,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, trust_domain);
    // A random suffix tells installs apart in logs and chains.
    let suffix: u32 = rand::random();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{common_name} {suffix:08x}"));
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (now - CLOCK_SKEW).into();
    params.not_after = (now + lifetime).into();
    // 16 random bytes, top bit clear and the next set: a positive integer
    // of full length, as RFC 5280 asks.
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f) | 0x40;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params
}

// === impl GeneratedCa ===

impl GeneratedCa {
    /// The Secret the control plane mounts.
    pub(super) fn secret(&self, namespace: &str) -> Secret {
        let data = [
            (CERT_KEY, &self.cert_pem),
            (KEY_KEY, &self.key_pem),
            (CHAIN_KEY, &self.root_pem),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.clone().into_bytes())))
        .collect();
        Secret {
            metadata: meta(SECRET, namespace),
            data: Some(data),
            ..Default::default()
        }
    }
}

/// The ConfigMap with the root certificate(s) `root_pem`.
pub(super) fn root_configmap(namespace: &str, root_pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta(ROOT_CONFIGMAP, namespace),
        data: Some(BTreeMap::from([(
            ROOT_KEY.to_string(),
            root_pem.to_string(),
        )])),
        ..Default::default()
    }
}

/// The root of an existing [`SECRET`] (its chain's last certificate is the
/// root; the whole chain is fine to trust, so it is returned as is).
pub(super) fn root_of(secret: &Secret) -> anyhow::Result<String> {
    let chain = secret
        .data
        .as_ref()
        .and_then(|d| d.get(CHAIN_KEY))
        .with_context(|| format!("Secret {SECRET} has no {CHAIN_KEY}: delete it to have a new CA generated, or add the chain up to your root"))?;
    String::from_utf8(chain.0.clone())
        .with_context(|| format!("Secret {SECRET}: {CHAIN_KEY} is not PEM text"))
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/part-of".to_string(),
            "braid".to_string(),
        )])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_plane_accepts_the_generated_intermediate() {
        let ca = generate("cluster.local").expect("generate");
        let trust_domain = "cluster.local".parse().expect("trust domain");
        braid_identity::Ca::from_intermediate(
            &trust_domain,
            &ca.cert_pem,
            &ca.key_pem,
            &ca.root_pem,
        )
        .expect("braid-control's --ca-cert/--ca-key/--ca-chain accept it");
        let secret = ca.secret("braid-system");
        assert_eq!(root_of(&secret).expect("root"), ca.root_pem);
        assert!(!ca.root_pem.contains("PRIVATE KEY"));
    }
}
