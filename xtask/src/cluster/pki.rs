//! The cluster's certificates and keys (ECDSA P-256, made with rcgen) and
//! the admin kubeconfig.
//!
//! * `ca.crt`/`ca.key`: the one CA: client CA of the API server, root CA
//!   handed to pods, and the controller manager's CSR signer.
//! * `apiserver.crt`/`.key`: serving certificate for 127.0.0.1, localhost
//!   and the `kubernetes` Service's names and VIP.
//! * `admin.crt`/`.key`: client certificate `CN=braid-admin,
//!   O=system:masters` used by the kubeconfig (and the controller manager).
//! * `service-account.key`/`.pub`: signs (API server, controller manager)
//!   and verifies (API server) service-account tokens.

use std::{
    fs::OpenOptions,
    io::Write as _,
    net::{IpAddr, Ipv4Addr},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::flags::Layout;

/// The paths `generate` wrote that the kubeconfig names.
#[derive(Debug, Clone)]
pub(super) struct Pki {
    pub(super) ca_cert: PathBuf,
    pub(super) admin_cert: PathBuf,
    pub(super) admin_key: PathBuf,
}

/// The `kubernetes` Service's VIP: the first address of the Service range.
const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

/// The admin user and its group (bound to cluster-admin by default RBAC).
pub(super) const ADMIN_USER: &str = "braid-admin";
pub(super) const ADMIN_GROUP: &str = "system:masters";

/// Writes every certificate and key under `layout.pki`.
pub(super) fn generate(layout: &Layout) -> anyhow::Result<Pki> {
    std::fs::create_dir_all(&layout.pki)
        .with_context(|| format!("cannot create {}", layout.pki.display()))?;

    let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "braid test cluster CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("cannot sign the CA certificate")?;
    write_public(&layout.ca_cert(), &ca_cert.pem())?;
    write_secret(&layout.ca_key(), &ca_key.serialize_pem())?;
    let ca = Issuer::new(ca_params, ca_key);

    let mut serving = leaf("kube-apiserver", ExtendedKeyUsagePurpose::ServerAuth);
    serving.subject_alt_names = serving_names()
        .into_iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(name.try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()
        .context("bad serving name")?;
    sign(&serving, &ca, &layout.serving_cert(), &layout.serving_key())?;

    let mut admin = leaf(ADMIN_USER, ExtendedKeyUsagePurpose::ClientAuth);
    admin
        .distinguished_name
        .push(DnType::OrganizationName, ADMIN_GROUP);
    sign(&admin, &ca, &layout.admin_cert(), &layout.admin_key())?;

    let sa_key = KeyPair::generate().context("cannot generate the service-account key")?;
    write_secret(&layout.service_account_key(), &sa_key.serialize_pem())?;
    // The API server reads public keys (or PKCS#1/SEC1 private keys, not
    // PKCS#8) for verification: hand it the SPKI public key.
    write_public(&layout.service_account_pub(), &sa_key.public_key_pem())?;

    Ok(Pki {
        ca_cert: layout.ca_cert(),
        admin_cert: layout.admin_cert(),
        admin_key: layout.admin_key(),
    })
}

/// The API server's serving names: loopback and the in-cluster names of
/// the `kubernetes` Service.
fn serving_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .map(String::from)
    .into();
    names.push(KUBERNETES_SERVICE_IP.to_string());
    names
}

fn leaf(common_name: &str, usage: ExtendedKeyUsagePurpose) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params
}

fn sign(
    params: &CertificateParams,
    ca: &Issuer<'_, KeyPair>,
    cert_path: &Path,
    key_path: &Path,
) -> anyhow::Result<()> {
    let key = KeyPair::generate().context("cannot generate a key")?;
    let cert = params
        .signed_by(&key, ca)
        .context("cannot sign a certificate")?;
    write_public(cert_path, &cert.pem())?;
    write_secret(key_path, &key.serialize_pem())
}

fn write_public(path: &Path, pem: &str) -> anyhow::Result<()> {
    std::fs::write(path, pem).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a private key readable by the owner only.
fn write_secret(path: &Path, pem: &str) -> anyhow::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(pem.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The admin kubeconfig: one cluster, one user (client certificate files),
/// one context, current.
pub(super) fn kubeconfig(server: &str, pki: &Pki) -> anyhow::Result<String> {
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "braid",
            "cluster": {
                "server": server,
                "certificate-authority": path(&pki.ca_cert),
            },
        }],
        "users": [{
            "name": ADMIN_USER,
            "user": {
                "client-certificate": path(&pki.admin_cert),
                "client-key": path(&pki.admin_key),
            },
        }],
        "contexts": [{
            "name": "braid",
            "context": { "cluster": "braid", "user": ADMIN_USER },
        }],
        "current-context": "braid",
        "preferences": {},
    });
    serde_yaml_ng::to_string(&config).context("cannot encode the kubeconfig")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_consistent_pki() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        let pki = generate(&layout).expect("pki");
        for file in [
            layout.ca_cert(),
            layout.ca_key(),
            layout.serving_cert(),
            layout.serving_key(),
            layout.admin_cert(),
            layout.admin_key(),
            layout.service_account_key(),
            layout.service_account_pub(),
        ] {
            let text = std::fs::read_to_string(&file).expect("read");
            assert!(text.starts_with("-----BEGIN "), "{}", file.display());
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(layout.admin_key())
                .expect("stat")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let kubeconfig: serde_json::Value =
            serde_yaml_ng::from_str(&kubeconfig("https://127.0.0.1:6443", &pki).expect("yaml"))
                .expect("parse");
        assert_eq!(kubeconfig["current-context"], "braid");
        assert_eq!(
            kubeconfig["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            kubeconfig["users"][0]["user"]["client-key"],
            layout.admin_key().to_string_lossy().as_ref()
        );
    }

    #[test]
    fn serving_names_cover_loopback_and_the_service() {
        let names = serving_names();
        for want in [
            "127.0.0.1",
            "localhost",
            "kubernetes.default.svc",
            "198.19.0.1",
        ] {
            assert!(names.iter().any(|n| n == want), "{want}");
        }
    }
}
