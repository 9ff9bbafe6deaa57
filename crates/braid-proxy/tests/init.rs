//! `braid-proxy init` run inside a pod's network namespace, as an init
//! container would: it installs the sidecar redirect rules, `--check`
//! verifies them, `--remove` takes them out. Real namespaces, real iptables;
//! root only (skipped otherwise unless CI=true).

use std::process::Command;

use braid_capture::{
    NetNs,
    rules::{self, Cidr, RedirectConfig},
    testing::{TestNet, require_root},
};

fn init(netns: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            env!("CARGO_BIN_EXE_braid-proxy"),
            "init",
        ])
        .args(args)
        .output()?)
}

#[test]
fn init_installs_checks_and_removes_the_sidecar_rules() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let net = TestNet::new("init")?;
    let pod = net.add_pod("web", "198.18.3.10".parse()?)?;
    let ns = NetNs::open(&pod.netns_path)?;
    let args = [
        "--exclude-inbound-ports",
        "15021,9901",
        "--exclude-outbound-cidrs",
        "169.254.169.254/32",
    ];
    let out = init(&pod.netns_name, &args)?;
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut expected = RedirectConfig::sidecar();
    expected.exclude_inbound_ports = vec![15021, 9901];
    expected.exclude_outbound_cidrs = vec!["169.254.169.254/32".parse::<Cidr>()?];
    rules::check(&ns, &expected)?;

    // Idempotent, and --check agrees.
    assert!(init(&pod.netns_name, &args)?.status.success());
    let mut check = args.to_vec();
    check.push("--check");
    assert!(init(&pod.netns_name, &check)?.status.success());

    assert!(init(&pod.netns_name, &["--remove"])?.status.success());
    assert!(rules::check(&ns, &expected).is_err(), "rules are gone");
    let out = init(&pod.netns_name, &check)?;
    assert!(!out.status.success(), "--check fails once removed");

    // A bad CIDR is refused, naming it.
    let out = init(
        &pod.netns_name,
        &["--exclude-outbound-cidrs", "10.0.0.0/99"],
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("10.0.0.0/99"),
        "{stderr}"
    );
    Ok(())
}
