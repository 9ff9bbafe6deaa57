//! A raw HBONE client for the end-to-end tests: a mesh identity minted from
//! the control plane's CA, sending `CONNECT`s the data plane itself never
//! sends (to a proxy's own ports) from inside a pod's namespace, as any
//! workload holding a certificate could.

// Two test targets include this with different needs: what one leaves
// unused the other uses.
#![allow(unreachable_pub, dead_code, unused_imports)]

use std::{net::SocketAddr, path::Path, str::FromStr as _, time::Duration};

use braid_capture::{NetNs, testing::TestPod};
use braid_identity::{Ca, CertificateRequest, SpiffeId, WorkloadCertificate};
use braid_proxy::hbone::{Dial, Dialing, Pool, Settings};

/// Bounds one `CONNECT`, dial included.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// A mesh identity and an HBONE client pool on a runtime of its own.
pub struct HboneProbe {
    cert: WorkloadCertificate,
    pool: Pool,
    runtime: tokio::runtime::Runtime,
}

/// The `CONNECT` was not answered `200`: the status (if one came) and the
/// client's error text, which carries the `braid-refusal-reason` header.
#[derive(Debug)]
pub struct ProbeRefused {
    pub status: Option<u16>,
    pub message: String,
}

/// Dials from inside a pod's network namespace (a socket made there keeps
/// the namespace); the second field tells pods apart in the pool.
struct PodDial(NetNs, u64);

impl HboneProbe {
    /// Signs a certificate for `spiffe://cluster.local/ns/<namespace>/sa/<sa>`
    /// with the CA in `ca_dir` (the control plane's `--ca-dir`).
    pub fn new(ca_dir: &Path, namespace: &str, sa: &str) -> HboneProbe {
        let domain = "cluster.local".parse().expect("trust domain");
        let ca = Ca::load_or_create(ca_dir, &domain).expect("the control plane's CA");
        let id = SpiffeId::new("cluster.local", namespace, sa).expect("identity");
        let request = CertificateRequest::generate(&id).expect("key pair");
        let issued = ca
            .sign(&request.csr, &id, Duration::from_secs(3600))
            .expect("sign");
        let cert = request.into_certificate(issued.chain).expect("certificate");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let pool = Pool::new(ca.trust_bundle().clone(), Settings::default());
        HboneProbe {
            cert,
            pool,
            runtime,
        }
    }

    /// `CONNECT target` through the HBONE `proxy`, which must present
    /// `expected`, dialled from `from`'s namespace. `Ok` on `200` (the
    /// tunnel is then closed).
    pub fn connect(
        &self,
        from: &TestPod,
        proxy: SocketAddr,
        expected: &str,
        target: SocketAddr,
    ) -> Result<(), ProbeRefused> {
        let expected = SpiffeId::from_str(expected).expect("expected identity");
        let origin = u64::from(u32::from(from.ip));
        let dial = PodDial(from.netns().expect("the pod's namespace"), origin);
        let connect = self
            .pool
            .connect_from(&dial, &self.cert, proxy, &expected, target);
        let outcome = self
            .runtime
            .block_on(async { tokio::time::timeout(CONNECT_LIMIT, connect).await });
        match outcome {
            Ok(Ok(_tunnel)) => Ok(()),
            Ok(Err(error)) => Err(ProbeRefused {
                status: error.status().map(|s| s.as_u16()),
                message: error.to_string(),
            }),
            Err(_) => Err(ProbeRefused {
                status: None,
                message: format!("CONNECT {target} via {proxy}: no answer in {CONNECT_LIMIT:?}"),
            }),
        }
    }
}

impl Dial for PodDial {
    fn origin(&self) -> u64 {
        self.1
    }

    fn connect(&self, to: SocketAddr) -> Dialing<'_> {
        Box::pin(async move {
            let tcp = self
                .0
                .run(|| std::net::TcpStream::connect_timeout(&to, CONNECT_LIMIT))
                .map_err(std::io::Error::other)??;
            tcp.set_nonblocking(true)?;
            tokio::net::TcpStream::from_std(tcp)
        })
    }
}

/// How many file descriptors process `pid` holds open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
}
