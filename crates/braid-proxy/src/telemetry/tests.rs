use braid_model::catalog::{Component, check_exposition};

use super::*;

fn labels(mtls: bool) -> Labels {
    Labels {
        direction: Direction::Inbound,
        source: Peer::principal("spiffe://cluster.local/ns/shop/sa/client"),
        destination: Peer {
            workload: "api".into(),
            namespace: "inventory".into(),
            principal: "spiffe://cluster.local/ns/inventory/sa/api".into(),
        },
        mtls,
    }
}

#[test]
fn connections_are_counted_per_label_set() {
    let metrics = Metrics::default();
    metrics
        .open(labels(true))
        .finish("198.18.0.1:4000", "198.18.0.2:9090", 10, 20);
    metrics
        .open(labels(true))
        .finish("198.18.0.1:4001", "198.18.0.2:9090", 1, 2);
    metrics.deny(
        labels(false),
        "198.18.0.3:5000",
        "198.18.0.2:9090",
        "STRICT",
    );
    let text = metrics.render("");
    let inbound_mtls = "direction=\"inbound\",source_workload=\"unknown\",source_namespace=\"shop\",\
source_principal=\"spiffe://cluster.local/ns/shop/sa/client\",destination_workload=\"api\",\
destination_namespace=\"inventory\",destination_principal=\"spiffe://cluster.local/ns/inventory/sa/api\",mtls=\"true\"";
    for line in [
        format!("braid_tcp_connections_opened_total{{{inbound_mtls}}} 2"),
        format!("braid_tcp_connections_closed_total{{{inbound_mtls}}} 2"),
        format!("braid_tcp_sent_bytes_total{{{inbound_mtls}}} 11"),
        format!("braid_tcp_received_bytes_total{{{inbound_mtls}}} 22"),
    ] {
        assert!(text.contains(&line), "missing {line} in\n{text}");
    }
    let plaintext = inbound_mtls.replace("mtls=\"true\"", "mtls=\"false\"");
    assert!(
        text.contains(&format!(
            "braid_tcp_connections_denied_total{{{plaintext}}} 1"
        )),
        "{text}"
    );
    assert!(text.contains("# TYPE braid_tcp_connections_opened_total counter"));
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
    assert_eq!(escape("line\nbreak"), "line\\nbreak");
}

#[test]
fn a_principal_names_its_namespace() {
    let peer = Peer::principal("spiffe://cluster.local/ns/shop/sa/web");
    assert_eq!(peer.namespace, "shop");
    assert_eq!(Peer::principal("garbage").namespace, "unknown");
}

#[test]
fn requests_are_counted_by_code_with_a_cumulative_histogram() {
    let metrics = Metrics::default();
    let l = labels(true);
    let record = |status: u16, millis: u64| RequestRecord {
        labels: &l,
        status,
        duration: std::time::Duration::from_millis(millis),
        method: "GET",
        authority: "api.inventory:80",
        path: "/",
        protocol: "HTTP/1.1",
        client: "198.18.0.1:4000",
        upstream: "198.18.0.2:8080",
        error: "",
        route: "",
    };
    metrics.request(&record(200, 3));
    metrics.request(&record(200, 30));
    metrics.request(&RequestRecord {
        route: "shop/split",
        ..record(503, 0)
    });
    let text = metrics.render("");
    let base = render_labels(&l);
    for line in [
        format!("braid_requests_total{{{base},route=\"\",response_code=\"200\"}} 2"),
        format!("braid_requests_total{{{base},route=\"shop/split\",response_code=\"503\"}} 1"),
        format!(
            "braid_request_duration_seconds_bucket{{{base},route=\"\",response_code=\"200\",le=\"0.0025\"}} 0"
        ),
        format!(
            "braid_request_duration_seconds_bucket{{{base},route=\"\",response_code=\"200\",le=\"0.005\"}} 1"
        ),
        format!(
            "braid_request_duration_seconds_bucket{{{base},route=\"\",response_code=\"200\",le=\"0.05\"}} 2"
        ),
        format!(
            "braid_request_duration_seconds_bucket{{{base},route=\"\",response_code=\"200\",le=\"+Inf\"}} 2"
        ),
        format!(
            "braid_request_duration_seconds_sum{{{base},route=\"\",response_code=\"200\"}} 0.033"
        ),
        format!(
            "braid_request_duration_seconds_count{{{base},route=\"\",response_code=\"200\"}} 2"
        ),
        "# TYPE braid_request_duration_seconds histogram".to_string(),
    ] {
        assert!(text.contains(&line), "missing {line} in\n{text}");
    }
}

#[test]
fn no_request_series_without_requests() {
    assert!(
        !Metrics::default()
            .render("")
            .contains("braid_requests_total")
    );
}

/// A proxy's metrics with connections allowed, closed and denied, and (for
/// a sidecar, the only composition that proxies HTTP) requests.
fn populated(http: bool) -> Metrics {
    let metrics = Metrics::default();
    metrics
        .open(labels(true))
        .finish("198.18.0.1:4000", "198.18.0.2:9090", 10, 20);
    metrics.deny(
        labels(false),
        "198.18.0.3:5000",
        "198.18.0.2:9090",
        "STRICT",
    );
    if http {
        let l = labels(true);
        metrics.request(&RequestRecord {
            labels: &l,
            status: 200,
            duration: std::time::Duration::from_millis(3),
            method: "GET",
            authority: "api.inventory:80",
            path: "/",
            protocol: "HTTP/1.1",
            client: "198.18.0.1:4000",
            upstream: "198.18.0.2:8080",
            error: "",
            route: "",
        });
    }
    metrics
}

fn certificates() -> String {
    crate::common::render_certificate_expiry(&[(
        "spiffe://cluster.local/ns/shop/sa/web".into(),
        1_800_000_000,
    )])
}

#[test]
fn a_ztunnel_serves_exactly_the_catalogs_ztunnel_metrics() {
    // What `ztunnel::View::metrics` serves, with its gauges populated.
    let extra = format!(
        "{}{}",
        crate::ztunnel::captured_pods_gauge(2),
        certificates()
    );
    let text = populated(false).render(&extra);
    let problems = check_exposition(&text, Component::Ztunnel);
    assert!(problems.is_empty(), "{problems:#?}\n{text}");
    assert!(text.contains("braid_ztunnel_captured_pods 2\n"), "{text}");
}

#[test]
fn a_sidecar_serves_exactly_the_catalogs_sidecar_metrics() {
    // What `sidecar::View::metrics` serves, with requests recorded.
    let text = populated(true).render(&certificates());
    let problems = check_exposition(&text, Component::Sidecar);
    assert!(problems.is_empty(), "{problems:#?}\n{text}");
}
