//! Every Prometheus metric family Braid exposes: name, type, help text,
//! labels and who emits it. The `/metrics` renderers write each family's
//! `# HELP` and `# TYPE` lines with [`Metric::header`], so the help text
//! exists only here.

use super::Component;

/// A metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    /// The family's name, e.g. `braid_requests_total`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// The one-line `# HELP` text.
    pub help: &'static str,
    /// Label names every series carries (a histogram's `le` not included).
    pub labels: &'static [&'static str],
    /// The components that emit it.
    pub components: &'static [Component],
}

/// A Prometheus metric type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// Only goes up (until the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted in cumulative buckets, plus their sum and count.
    Histogram,
}

/// The labels of a proxy's connection series: which way, who to whom, and
/// whether over mutual TLS.
pub const CONNECTION_LABELS: &[&str] = &[
    "direction",
    "source_workload",
    "source_namespace",
    "source_principal",
    "destination_workload",
    "destination_namespace",
    "destination_principal",
    "mtls",
];

/// The labels of a sidecar's request series: [`CONNECTION_LABELS`] plus the
/// HTTPRoute that took the request (`<namespace>/<name>`, empty when none
/// did) and the response code.
pub const REQUEST_LABELS: &[&str] = &[
    "direction",
    "source_workload",
    "source_namespace",
    "source_principal",
    "destination_workload",
    "destination_namespace",
    "destination_principal",
    "mtls",
    "route",
    "response_code",
];

const PROXIES: &[Component] = &[Component::Ztunnel, Component::Sidecar];
const SIDECAR: &[Component] = &[Component::Sidecar];
const ZTUNNEL: &[Component] = &[Component::Ztunnel];
const CONTROL: &[Component] = &[Component::ControlPlane];

const fn proxy_counter(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: MetricKind::Counter,
        help,
        labels: CONNECTION_LABELS,
        components: PROXIES,
    }
}

const fn control(name: &'static str, kind: MetricKind, help: &'static str) -> Metric {
    Metric {
        name,
        kind,
        help,
        labels: &[],
        components: CONTROL,
    }
}

/// Connections a proxy allowed and opened.
pub const TCP_CONNECTIONS_OPENED: Metric = proxy_counter(
    "braid_tcp_connections_opened_total",
    "TCP connections opened (allowed).",
);

/// Connections that ended.
pub const TCP_CONNECTIONS_CLOSED: Metric = proxy_counter(
    "braid_tcp_connections_closed_total",
    "TCP connections closed.",
);

/// Connections refused by an AuthorizationPolicy or a STRICT mTLS mode.
pub const TCP_CONNECTIONS_DENIED: Metric = proxy_counter(
    "braid_tcp_connections_denied_total",
    "TCP connections refused by policy, mTLS mode or for targeting a proxy port.",
);

/// Bytes from source to destination.
pub const TCP_SENT_BYTES: Metric = proxy_counter(
    "braid_tcp_sent_bytes_total",
    "Bytes sent from source to destination, counted when a connection closes.",
);

/// Bytes from destination back to source.
pub const TCP_RECEIVED_BYTES: Metric = proxy_counter(
    "braid_tcp_received_bytes_total",
    "Bytes sent back from destination to source, counted when a connection closes.",
);

/// HTTP requests a sidecar proxied, by response code.
pub const REQUESTS: Metric = Metric {
    name: "braid_requests_total",
    kind: MetricKind::Counter,
    help: "HTTP requests proxied, by response code.",
    labels: REQUEST_LABELS,
    components: SIDECAR,
};

/// How long a sidecar's proxied requests took.
pub const REQUEST_DURATION: Metric = Metric {
    name: "braid_request_duration_seconds",
    kind: MetricKind::Histogram,
    help: "Time from a request's arrival until its response ended.",
    labels: REQUEST_LABELS,
    components: SIDECAR,
};

/// When each certificate a proxy holds expires.
pub const CERTIFICATE_EXPIRY: Metric = Metric {
    name: "braid_certificate_expiry_seconds",
    kind: MetricKind::Gauge,
    help: "When each held certificate expires (Unix time).",
    labels: &["identity"],
    components: PROXIES,
};

/// How many pods a ztunnel captures.
pub const ZTUNNEL_CAPTURED_PODS: Metric = Metric {
    name: "braid_ztunnel_captured_pods",
    kind: MetricKind::Gauge,
    help: "Pods this ztunnel captures.",
    labels: &[],
    components: ZTUNNEL,
};

/// The newest configuration version the control plane published.
pub const CONTROL_SNAPSHOT_VERSION: Metric = control(
    "braid_control_snapshot_version",
    MetricKind::Gauge,
    "Version of the newest published configuration.",
);

/// Open xDS streams.
pub const CONTROL_CONNECTED_PROXIES: Metric = control(
    "braid_control_connected_proxies",
    MetricKind::Gauge,
    "xDS streams currently open.",
);

/// xDS responses sent.
pub const CONTROL_XDS_PUSHES: Metric = control(
    "braid_control_xds_pushes_total",
    MetricKind::Counter,
    "xDS responses sent.",
);

/// Resources sent, summed over xDS responses.
pub const CONTROL_XDS_RESOURCES_SENT: Metric = control(
    "braid_control_xds_resources_sent_total",
    MetricKind::Counter,
    "Resources sent in xDS responses.",
);

/// ACKs received from proxies.
pub const CONTROL_XDS_ACKS: Metric = control(
    "braid_control_xds_acks_total",
    MetricKind::Counter,
    "ACKs received.",
);

/// NACKs received from proxies: a proxy rejected configuration.
pub const CONTROL_XDS_NACKS: Metric = control(
    "braid_control_xds_nacks_total",
    MetricKind::Counter,
    "NACKs received.",
);

/// Rescans of the configuration directory (`--source file`).
pub const CONTROL_CONFIG_SCANS: Metric = control(
    "braid_control_config_scans_total",
    MetricKind::Counter,
    "Rescans of the configuration directory (one per settled burst of file events, plus the periodic rescan).",
);

/// Configuration documents currently rejected.
pub const CONTROL_CONFIG_ERRORS: Metric = control(
    "braid_control_config_errors",
    MetricKind::Gauge,
    "Configuration documents currently rejected.",
);

/// Whether this replica leads status writes (only with `--source kube`).
pub const CONTROL_LEADER: Metric = control(
    "braid_control_leader",
    MetricKind::Gauge,
    "1 while this replica holds the Lease and writes CRD status (served with --source kube only).",
);

/// Resources in the current configuration, per xDS type.
pub const CONTROL_RESOURCES: Metric = Metric {
    name: "braid_control_resources",
    kind: MetricKind::Gauge,
    help: "Resources in the current configuration.",
    labels: &["type"],
    components: CONTROL,
};

/// Every metric family, proxies first, in documentation order.
pub const ALL: &[Metric] = &[
    TCP_CONNECTIONS_OPENED,
    TCP_CONNECTIONS_CLOSED,
    TCP_CONNECTIONS_DENIED,
    TCP_SENT_BYTES,
    TCP_RECEIVED_BYTES,
    REQUESTS,
    REQUEST_DURATION,
    CERTIFICATE_EXPIRY,
    ZTUNNEL_CAPTURED_PODS,
    CONTROL_SNAPSHOT_VERSION,
    CONTROL_CONNECTED_PROXIES,
    CONTROL_XDS_PUSHES,
    CONTROL_XDS_RESOURCES_SENT,
    CONTROL_XDS_ACKS,
    CONTROL_XDS_NACKS,
    CONTROL_CONFIG_SCANS,
    CONTROL_CONFIG_ERRORS,
    CONTROL_LEADER,
    CONTROL_RESOURCES,
];

/// The family called `name`, if Braid has one.
pub fn find(name: &str) -> Option<&'static Metric> {
    ALL.iter().find(|m| m.name == name)
}

// === impl Metric ===

impl Metric {
    /// The family's `# HELP` and `# TYPE` lines, each ending in a newline.
    pub fn header(&self) -> String {
        format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n",
            name = self.name,
            help = self.help,
            kind = self.kind.as_str()
        )
    }

    /// Whether `component` emits it.
    pub fn emitted_by(&self, component: Component) -> bool {
        self.components.contains(&component)
    }
}

// === impl MetricKind ===

impl MetricKind {
    /// The name Prometheus uses in `# TYPE` lines.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

impl std::fmt::Display for MetricKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
