//! The one list of Braid's network ports and Prometheus metrics.
//!
//! The proxy and the control plane take their port numbers and each metric's
//! name, type and help text from here, and `cargo xtask codegen` renders the
//! book's reference pages from the same entries, so the code, the `/metrics`
//! output and the documentation cannot disagree. Descriptors only: nothing
//! here binds a port or counts anything.

mod exposition;
pub mod metrics;
pub mod ports;

pub use exposition::check_exposition;
pub use metrics::{Metric, MetricKind};
pub use ports::Port;

/// A Braid process that binds ports or serves metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// `braid-proxy ztunnel`: the per-node proxy of ambient pods.
    Ztunnel,
    /// `braid-proxy sidecar`: the proxy injected into one pod.
    Sidecar,
    /// `braid-control`: the control plane.
    ControlPlane,
}

// === impl Component ===

impl Component {
    /// Every component, in documentation order.
    pub const ALL: [Component; 3] = [Self::Ztunnel, Self::Sidecar, Self::ControlPlane];

    /// The binary that runs it (`braid-proxy` or `braid-control`).
    pub const fn binary(self) -> &'static str {
        match self {
            Self::Ztunnel | Self::Sidecar => "braid-proxy",
            Self::ControlPlane => "braid-control",
        }
    }

    /// A short name for tables: `ztunnel`, `sidecar`, `control plane`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ztunnel => "ztunnel",
            Self::Sidecar => "sidecar",
            Self::ControlPlane => "control plane",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn port_numbers_and_names_are_unique() {
        let numbers: BTreeSet<u16> = ports::ALL.iter().map(|p| p.number).collect();
        assert_eq!(
            numbers.len(),
            ports::ALL.len(),
            "a port number is listed twice"
        );
        let names: BTreeSet<&str> = ports::ALL.iter().map(|p| p.name).collect();
        assert_eq!(names.len(), ports::ALL.len(), "a port name is listed twice");
    }

    #[test]
    fn a_default_address_is_checked_against_its_port() {
        let admin = &ports::PROXY_ADMIN;
        assert!(admin.localhost_only);
        assert_eq!(
            admin.check_default(([127, 0, 0, 1], admin.number).into()),
            Ok(())
        );
        let open = admin.check_default(([0, 0, 0, 0], admin.number).into());
        assert!(open.is_err_and(|e| e.contains("localhost-only")));
        let moved = admin.check_default(([127, 0, 0, 1], 9999).into());
        assert!(moved.is_err_and(|e| e.contains("9999")));
    }

    /// Issue 14: the ports refused as a tunnel's target are exactly those a
    /// proxy binds, and the capture listeners are among them.
    #[test]
    fn proxy_ports_are_the_ports_a_proxy_binds() {
        let reserved: Vec<u16> = (0..=u16::MAX)
            .filter(|&p| ports::is_proxy_port(p))
            .collect();
        assert_eq!(reserved, [15000, 15001, 15006, 15008, 15020, 15021]);
        let capture: Vec<u16> = (0..=u16::MAX)
            .filter(|&p| ports::is_capture_port(p))
            .collect();
        assert_eq!(capture, [15001, 15006, 15008]);
        // The control plane's ports are not a proxy's.
        assert!(!ports::is_proxy_port(ports::XDS.number));
    }

    #[test]
    fn every_port_and_metric_names_a_component() {
        for port in ports::ALL {
            assert!(!port.components.is_empty(), "port {}", port.number);
        }
        for metric in metrics::ALL {
            assert!(!metric.components.is_empty(), "metric {}", metric.name);
        }
    }

    #[test]
    fn metric_names_are_unique_and_prometheus_shaped() {
        let names: BTreeSet<&str> = metrics::ALL.iter().map(|m| m.name).collect();
        assert_eq!(names.len(), metrics::ALL.len(), "a metric is listed twice");
        for metric in metrics::ALL {
            assert!(metric.name.starts_with("braid_"), "{}", metric.name);
            assert!(
                metric
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                metric.name
            );
            // Prometheus naming: counters end in `_total`, nothing else does.
            assert_eq!(
                metric.name.ends_with("_total"),
                metric.kind == MetricKind::Counter,
                "{}",
                metric.name
            );
            assert!(
                !metric.help.contains('\n'),
                "{}: one-line help",
                metric.name
            );
        }
    }

    #[test]
    fn header_is_prometheus_help_and_type() {
        assert_eq!(
            metrics::ZTUNNEL_CAPTURED_PODS.header(),
            "# HELP braid_ztunnel_captured_pods Pods this ztunnel captures.\n\
             # TYPE braid_ztunnel_captured_pods gauge\n"
        );
    }
}
