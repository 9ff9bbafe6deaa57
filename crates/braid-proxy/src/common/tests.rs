use braid_model::catalog::{Port, ports};
use clap::Parser;

use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    mesh: MeshArgs,
    #[command(flatten)]
    endpoints: EndpointArgs,
}

/// `addr` is `port`'s number on loopback exactly when the catalog says so.
fn assert_matches(addr: SocketAddr, port: &Port) {
    if let Err(e) = port.check_default(addr) {
        panic!("{e}");
    }
}

#[test]
fn defaults_are_the_catalogs_ports() {
    // A `BRAID_*` variable in the environment would change what is parsed;
    // say so instead of failing obscurely.
    for var in [
        "BRAID_CONTROL_PLANE",
        "BRAID_ADMIN_LISTEN",
        "BRAID_METRICS_LISTEN",
        "BRAID_READINESS_LISTEN",
    ] {
        assert!(
            std::env::var_os(var).is_none(),
            "unset {var} to run this test"
        );
    }
    let cli = Cli::try_parse_from([
        "braid-proxy",
        "--ca-root",
        "/etc/braid/root.pem",
        "--token-file",
        "/var/run/braid/token",
    ])
    .expect("defaults parse");
    assert_matches(cli.endpoints.admin_listen, &ports::PROXY_ADMIN);
    assert_matches(cli.endpoints.metrics_listen, &ports::PROXY_METRICS);
    assert_matches(cli.endpoints.readiness_listen, &ports::PROXY_READINESS);
    assert!(
        cli.mesh
            .control_plane
            .ends_with(&format!(":{}", ports::XDS.number)),
        "{}",
        cli.mesh.control_plane
    );
}

#[test]
fn certificate_expiry_is_one_series_per_identity() {
    let text = render_certificate_expiry(&[
        (
            "spiffe://cluster.local/ns/shop/sa/web".into(),
            1_800_000_000,
        ),
        (
            "spiffe://cluster.local/ns/shop/sa/api".into(),
            1_800_000_100,
        ),
    ]);
    assert!(
        text.starts_with("# HELP braid_certificate_expiry_seconds "),
        "{text}"
    );
    assert!(
        text.contains(
            "braid_certificate_expiry_seconds{identity=\"spiffe://cluster.local/ns/shop/sa/api\"} 1800000100\n"
        ),
        "{text}"
    );
}
