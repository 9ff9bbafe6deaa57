//! Where things live in the run directory, the loopback ports, and the
//! command lines of the three servers. Pure, so the tests can pin them.

use std::{
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The Service range: the benchmarking range's VIP half (DESIGN.md §7), so
/// the `kubernetes` Service gets 198.19.0.1.
pub(super) const SERVICE_CIDR: &str = "198.19.0.0/16";
/// The service-account token issuer.
pub(super) const SA_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Paths inside the run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) dir: PathBuf,
    pub(super) state: PathBuf,
    pub(super) kubeconfig: PathBuf,
    pub(super) logs: PathBuf,
    pub(super) etcd_data: PathBuf,
    pub(super) controller_manager_certs: PathBuf,
    pub(super) pki: PathBuf,
}

impl Layout {
    pub(super) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            state: dir.join("cluster.json"),
            kubeconfig: dir.join("kubeconfig"),
            logs: dir.join("logs"),
            etcd_data: dir.join("etcd"),
            controller_manager_certs: dir.join("kube-controller-manager"),
            pki: dir.join("pki"),
        }
    }

    /// A file under `pki/`.
    pub(super) fn pki_file(&self, name: &str) -> PathBuf {
        self.pki.join(name)
    }

    pub(super) fn ca_cert(&self) -> PathBuf {
        self.pki_file("ca.crt")
    }
    pub(super) fn ca_key(&self) -> PathBuf {
        self.pki_file("ca.key")
    }
    pub(super) fn serving_cert(&self) -> PathBuf {
        self.pki_file("apiserver.crt")
    }
    pub(super) fn serving_key(&self) -> PathBuf {
        self.pki_file("apiserver.key")
    }
    pub(super) fn admin_cert(&self) -> PathBuf {
        self.pki_file("admin.crt")
    }
    pub(super) fn admin_key(&self) -> PathBuf {
        self.pki_file("admin.key")
    }
    pub(super) fn service_account_key(&self) -> PathBuf {
        self.pki_file("service-account.key")
    }
    pub(super) fn service_account_pub(&self) -> PathBuf {
        self.pki_file("service-account.pub")
    }
}

/// The loopback ports the servers listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Ports {
    pub(super) etcd_client: u16,
    pub(super) etcd_peer: u16,
    pub(super) apiserver: u16,
    pub(super) controller_manager: u16,
}

impl Ports {
    /// Four distinct free ports on 127.0.0.1 (all held open until chosen, so
    /// they differ; a race with another program is possible but unlikely).
    pub(super) fn pick() -> anyhow::Result<Self> {
        let listeners = (0..4)
            .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .collect::<Result<Vec<_>, _>>()
            .context("cannot find free loopback ports")?;
        let port = |i: usize| -> anyhow::Result<u16> {
            Ok(listeners[i]
                .local_addr()
                .context("cannot read a port")?
                .port())
        };
        Ok(Self {
            etcd_client: port(0)?,
            etcd_peer: port(1)?,
            apiserver: port(2)?,
            controller_manager: port(3)?,
        })
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// etcd: one member, loopback only, data under the run directory.
pub(super) fn etcd(layout: &Layout, ports: &Ports) -> Vec<String> {
    let client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    vec![
        "--name=braid".into(),
        format!("--data-dir={}", path(&layout.etcd_data)),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=braid={peer}"),
        "--initial-cluster-state=new".into(),
        // A throwaway test store: durability buys nothing, fsync costs time.
        "--unsafe-no-fsync".into(),
        "--log-level=warn".into(),
    ]
}

/// kube-apiserver: secure port on loopback, client certificates and
/// service-account tokens for authentication, RBAC, default admission.
pub(super) fn apiserver(layout: &Layout, ports: &Ports) -> Vec<String> {
    vec![
        format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.apiserver),
        format!("--cert-dir={}", path(&layout.pki)),
        format!("--tls-cert-file={}", path(&layout.serving_cert())),
        format!("--tls-private-key-file={}", path(&layout.serving_key())),
        format!("--client-ca-file={}", path(&layout.ca_cert())),
        "--authorization-mode=RBAC".into(),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        format!("--service-account-issuer={SA_ISSUER}"),
        format!(
            "--service-account-key-file={}",
            path(&layout.service_account_pub())
        ),
        format!(
            "--service-account-signing-key-file={}",
            path(&layout.service_account_key())
        ),
        "--allow-privileged=true".into(),
        // The `kubernetes` Service cannot point at 127.0.0.1 (Endpoints
        // refuse loopback): don't try, rather than log a failure every 10 s.
        "--endpoint-reconciler-type=none".into(),
        "--v=1".into(),
    ]
}

/// kube-controller-manager: every default controller, each with its own
/// service-account credentials, talking to the API server as admin. No
/// `--authentication/authorization-kubeconfig`: its own HTTPS port serves
/// only `/healthz` and friends, and delegated authentication would need the
/// API server's front-proxy CA, which this cluster does not have.
pub(super) fn controller_manager(layout: &Layout, ports: &Ports) -> Vec<String> {
    let kubeconfig = path(&layout.kubeconfig);
    vec![
        format!("--kubeconfig={kubeconfig}"),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.controller_manager),
        format!("--cert-dir={}", path(&layout.controller_manager_certs)),
        "--controllers=*".into(),
        "--use-service-account-credentials=true".into(),
        format!(
            "--service-account-private-key-file={}",
            path(&layout.service_account_key())
        ),
        format!("--root-ca-file={}", path(&layout.ca_cert())),
        format!("--cluster-signing-cert-file={}", path(&layout.ca_cert())),
        format!("--cluster-signing-key-file={}", path(&layout.ca_key())),
        "--cluster-name=braid".into(),
        "--leader-elect=false".into(),
        "--v=1".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> Ports {
        Ports {
            etcd_client: 2001,
            etcd_peer: 2002,
            apiserver: 6443,
            controller_manager: 10257,
        }
    }

    fn layout() -> Layout {
        Layout::new(Path::new("/run/k"))
    }

    /// Every URL and bind address a server gets is on loopback.
    fn assert_loopback_only(args: &[String]) {
        for arg in args {
            for marker in ["http://", "https://", "address="] {
                if let Some((_, rest)) = arg.split_once(marker) {
                    if arg.starts_with("--service-account-issuer") {
                        continue;
                    }
                    assert!(rest.starts_with("127.0.0.1"), "{arg} is not loopback");
                }
            }
        }
    }

    #[test]
    fn etcd_flags() {
        let args = etcd(&layout(), &ports());
        assert!(args.contains(&"--data-dir=/run/k/etcd".to_string()));
        assert!(args.contains(&"--listen-client-urls=http://127.0.0.1:2001".to_string()));
        assert!(args.contains(&"--initial-cluster=braid=http://127.0.0.1:2002".to_string()));
        assert_loopback_only(&args);
    }

    #[test]
    fn apiserver_flags() {
        let args = apiserver(&layout(), &ports());
        for want in [
            "--etcd-servers=http://127.0.0.1:2001",
            "--secure-port=6443",
            "--bind-address=127.0.0.1",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=198.19.0.0/16",
            "--client-ca-file=/run/k/pki/ca.crt",
            "--tls-cert-file=/run/k/pki/apiserver.crt",
            "--tls-private-key-file=/run/k/pki/apiserver.key",
            "--service-account-key-file=/run/k/pki/service-account.pub",
            "--service-account-signing-key-file=/run/k/pki/service-account.key",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        ] {
            assert!(args.contains(&want.to_string()), "missing {want}: {args:?}");
        }
        assert_loopback_only(&args);
    }

    #[test]
    fn controller_manager_flags() {
        let args = controller_manager(&layout(), &ports());
        for want in [
            "--kubeconfig=/run/k/kubeconfig",
            "--secure-port=10257",
            "--bind-address=127.0.0.1",
            "--controllers=*",
            "--use-service-account-credentials=true",
            "--service-account-private-key-file=/run/k/pki/service-account.key",
            "--root-ca-file=/run/k/pki/ca.crt",
            "--leader-elect=false",
        ] {
            assert!(args.contains(&want.to_string()), "missing {want}: {args:?}");
        }
        assert_loopback_only(&args);
    }

    #[test]
    fn picked_ports_are_distinct() {
        let p = Ports::pick().expect("free ports");
        let all = [
            p.etcd_client,
            p.etcd_peer,
            p.apiserver,
            p.controller_manager,
        ];
        for (i, a) in all.iter().enumerate() {
            assert_ne!(*a, 0);
            assert!(!all[i + 1..].contains(a), "{all:?}");
        }
    }
}
