//! Every TCP port a Braid component binds, with its default address and
//! what it serves. The listeners' constants and flag defaults are checked
//! against these entries by tests in the owning crates.

use super::Component;

/// A port Braid binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port {
    /// The port number.
    pub number: u16,
    /// A short name, unique among ports (`outbound`, `proxy-metrics`, …).
    pub name: &'static str,
    /// What speaks on it, e.g. `TCP` or `HTTP/1.1`.
    pub protocol: &'static str,
    /// The components that bind it.
    pub components: &'static [Component],
    /// Where it is bound by default: which network namespace and address.
    pub bound: &'static str,
    /// The flag that moves it, if one does.
    pub flag: Option<&'static str>,
    /// What it is for.
    pub purpose: &'static str,
    /// Whether the default address is loopback only, so nothing outside the
    /// pod (or node) can reach it unless the flag says otherwise.
    pub localhost_only: bool,
}

// === impl Port ===

impl Port {
    /// Whether `addr`, a listener's default address, is this port as the
    /// catalog describes it: the same number, on loopback exactly when the
    /// port is localhost-only. The error says what differs.
    pub fn check_default(&self, addr: std::net::SocketAddr) -> Result<(), String> {
        if addr.port() != self.number {
            return Err(format!(
                "{} ({:?}) defaults to port {}, the catalog says {}",
                self.name,
                self.flag,
                addr.port(),
                self.number
            ));
        }
        if addr.ip().is_loopback() != self.localhost_only {
            return Err(format!(
                "{} binds {addr}, but the catalog says localhost-only is {}",
                self.name, self.localhost_only
            ));
        }
        Ok(())
    }
}

const PROXIES: &[Component] = &[Component::Ztunnel, Component::Sidecar];
const CONTROL: &[Component] = &[Component::ControlPlane];

/// Where the redirect rules send a captured pod's outgoing TCP.
pub const OUTBOUND: Port = Port {
    number: 15001,
    name: "outbound",
    protocol: "TCP",
    components: PROXIES,
    bound: "`0.0.0.0` inside each captured pod's network namespace",
    flag: None,
    purpose: "outbound capture: TCP the pod opens, redirected here and sent on over HBONE or directly",
    localhost_only: false,
};

/// Where the redirect rules send plaintext TCP arriving for a captured pod.
pub const INBOUND_PLAINTEXT: Port = Port {
    number: 15006,
    name: "inbound-plaintext",
    protocol: "TCP",
    components: PROXIES,
    bound: "`0.0.0.0` inside each captured pod's network namespace",
    flag: None,
    purpose: "inbound plaintext capture: refused under STRICT mTLS, else authorized and delivered to the pod",
    localhost_only: false,
};

/// Where proxies accept tunnels from other proxies.
pub const HBONE: Port = Port {
    number: 15008,
    name: "hbone",
    protocol: "HBONE (HTTP/2 CONNECT in mutual TLS 1.3)",
    components: PROXIES,
    bound: "`0.0.0.0` inside each captured pod's network namespace; never redirected",
    flag: None,
    purpose: "inbound tunnel: the peer's SPIFFE identity is verified and authorized per connection",
    localhost_only: false,
};

/// The proxy's admin endpoint.
pub const PROXY_ADMIN: Port = Port {
    number: 15000,
    name: "proxy-admin",
    protocol: "HTTP/1.1",
    components: PROXIES,
    bound: "`127.0.0.1` in the proxy's own network namespace (the node's for a ztunnel, the pod's for a sidecar)",
    flag: Some("--admin-listen"),
    purpose: "admin: `/config_dump`, `/metrics`, `/healthz/ready`",
    localhost_only: true,
};

/// The proxy's Prometheus endpoint.
pub const PROXY_METRICS: Port = Port {
    number: 15020,
    name: "proxy-metrics",
    protocol: "HTTP/1.1",
    components: PROXIES,
    bound: "`0.0.0.0` in the proxy's own network namespace",
    flag: Some("--metrics-listen"),
    purpose: "Prometheus metrics: `/metrics` only",
    localhost_only: false,
};

/// The proxy's readiness endpoint, probed by the kubelet.
pub const PROXY_READINESS: Port = Port {
    number: 15021,
    name: "proxy-readiness",
    protocol: "HTTP/1.1",
    components: PROXIES,
    bound: "`0.0.0.0` in the proxy's own network namespace",
    flag: Some("--readiness-listen"),
    purpose: "readiness: `/healthz/ready` only (200 once every xDS type has synced)",
    localhost_only: false,
};

/// The control plane's gRPC server.
pub const XDS: Port = Port {
    number: 15010,
    name: "xds",
    protocol: "gRPC (HTTP/2; TLS 1.3 with a CA, else plaintext)",
    components: CONTROL,
    bound: "`0.0.0.0` in the control plane's pod",
    flag: Some("--xds-listen"),
    purpose: "Delta ADS, the debug API (`ControlPlaneDebug`) and, with a CA, the certificate service",
    localhost_only: false,
};

/// The control plane's admin endpoint.
pub const CONTROL_ADMIN: Port = Port {
    number: 15014,
    name: "control-admin",
    protocol: "HTTP/1.1",
    components: CONTROL,
    bound: "`127.0.0.1` in the control plane's pod (`manifests/install` sets `0.0.0.0`, for the kubelet's probes)",
    flag: Some("--admin-listen"),
    purpose: "admin: `/healthz`, `/ready`, `/metrics`, `/debug/*` JSON views",
    localhost_only: true,
};

/// The sidecar injection webhook.
pub const WEBHOOK: Port = Port {
    number: 15017,
    name: "webhook",
    protocol: "HTTPS (TLS 1.2/1.3, HTTP/1.1)",
    components: CONTROL,
    bound: "`0.0.0.0` in the control plane's pod; only with a CA (`--ca-dir` or `--ca-cert`)",
    flag: Some("--webhook-listen"),
    purpose: "sidecar injection webhook: `POST /inject` from the API server",
    localhost_only: false,
};

/// The ports a proxy binds inside each captured pod's network namespace
/// (15001, 15006, 15008): the capture listeners the redirect rules point at.
pub const CAPTURE: &[Port] = &[OUTBOUND, INBOUND_PLAINTEXT, HBONE];

/// Whether a proxy (ztunnel or sidecar) binds `port` by default: 15000,
/// 15001, 15006, 15008, 15020 and 15021.
///
/// No tunnel targets such a port. A proxy that connected to one of its own
/// capture listeners would take the connection as new traffic and open
/// another one to the same target, without end (thousands of file
/// descriptors a second); its HTTP endpoints are no mesh destination either.
/// These ports are therefore reserved: applications must not listen on them.
pub fn is_proxy_port(port: u16) -> bool {
    ALL.iter().any(|p| {
        p.number == port
            && p.components
                .iter()
                .any(|c| matches!(c, Component::Ztunnel | Component::Sidecar))
    })
}

/// Whether `port` is one of the [`CAPTURE`] listeners (15001, 15006,
/// 15008). A connection that reaches one without being redirected there is
/// addressed to the proxy itself and has nowhere to go.
pub fn is_capture_port(port: u16) -> bool {
    CAPTURE.iter().any(|p| p.number == port)
}

/// Every port, proxies first, in documentation order.
pub const ALL: &[Port] = &[
    OUTBOUND,
    INBOUND_PLAINTEXT,
    HBONE,
    PROXY_ADMIN,
    PROXY_METRICS,
    PROXY_READINESS,
    XDS,
    CONTROL_ADMIN,
    WEBHOOK,
];
