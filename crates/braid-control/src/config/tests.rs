use braid_model::catalog::{Port, ports};
use clap::Parser;

use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    config: Config,
}

/// The configuration with every default (only the required directory given).
fn defaults() -> Config {
    Cli::try_parse_from(["braid-control", "--config-dir", "/etc/braid"])
        .expect("defaults parse")
        .config
}

/// `addr` is `port`'s number on loopback exactly when the catalog says so.
fn assert_matches(addr: SocketAddr, port: &Port) {
    if let Err(e) = port.check_default(addr) {
        panic!("{e}");
    }
}

#[test]
fn listen_defaults_are_the_catalogs_ports() {
    // A `BRAID_*_LISTEN` variable in the environment would change what is
    // parsed; say so instead of failing obscurely.
    for var in [
        "BRAID_XDS_LISTEN",
        "BRAID_ADMIN_LISTEN",
        "BRAID_WEBHOOK_LISTEN",
    ] {
        assert!(
            std::env::var_os(var).is_none(),
            "unset {var} to run this test"
        );
    }
    let config = defaults();
    assert_matches(config.xds_listen, &ports::XDS);
    assert_matches(config.admin_listen, &ports::CONTROL_ADMIN);
    assert_matches(config.webhook_listen, &ports::WEBHOOK);
}

#[test]
fn injected_sidecars_reach_the_catalogs_xds_port() {
    assert!(
        DEFAULT_PROXY_CONTROL_PLANE.ends_with(&format!(":{}", ports::XDS.number)),
        "{DEFAULT_PROXY_CONTROL_PLANE}"
    );
}
