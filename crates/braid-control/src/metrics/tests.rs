use std::sync::{Arc, atomic::AtomicBool};

use braid_model::catalog::{Component, check_exposition};

use super::*;

/// Metrics with every series populated, leadership included.
fn populated() -> Metrics {
    let metrics = Metrics::default();
    metrics.pushes.store(3, Relaxed);
    metrics.resources_sent.store(7, Relaxed);
    metrics.acks.store(3, Relaxed);
    metrics.nacks.store(1, Relaxed);
    metrics.connected.store(2, Relaxed);
    metrics.config_scans.store(4, Relaxed);
    metrics
        .leader
        .set(Arc::new(AtomicBool::new(true)))
        .expect("leader is unset");
    metrics
}

#[test]
fn every_family_served_is_the_catalogs_and_all_are_served() {
    let text = populated().render(1);
    let problems = check_exposition(&text, Component::ControlPlane);
    assert!(problems.is_empty(), "{problems:#?}\n{text}");
}

#[test]
fn values_follow_the_catalog_headers() {
    let text = populated().render(1);
    for line in [
        "# TYPE braid_control_xds_nacks_total counter\nbraid_control_xds_nacks_total 1\n",
        "# TYPE braid_control_config_errors gauge\nbraid_control_config_errors 1\n",
        "# TYPE braid_control_leader gauge\nbraid_control_leader 1\n",
        "braid_control_resources{type=\"workload\"} 0\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn leadership_is_served_only_when_tracked() {
    // Without `--source kube` no Lease is held: the gauge is absent, and
    // that is the only difference from the catalog.
    let text = Metrics::default().render(0);
    let problems = check_exposition(&text, Component::ControlPlane);
    assert_eq!(
        problems,
        ["braid_control_leader: in the catalog but not served"],
        "{text}"
    );
}
