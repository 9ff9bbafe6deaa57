//! `NetNs` against real namespaces: entering, restoring, sockets and
//! commands created inside.

use std::net::{Ipv4Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;

use braid_capture::testing::{TestNet, require_root};
use braid_capture::{ListenOptions, NetNs};

#[test]
fn run_enters_and_restores_the_thread_namespace() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let net = TestNet::new("run")?;
    let pod = net.add_pod("a", Ipv4Addr::new(198, 18, 1, 2))?;
    let ns = pod.netns()?;

    let before = NetNs::current()?.id();
    let inside = ns.run(|| NetNs::current().map(|n| n.id()))??;
    assert_eq!(inside, ns.id());
    assert_ne!(inside, before);
    assert_eq!(NetNs::current()?.id(), before);

    // A panic in the closure must not leave the thread in the pod.
    let panicked = catch_unwind(AssertUnwindSafe(|| ns.run(|| panic!("boom"))));
    assert!(panicked.is_err());
    assert_eq!(NetNs::current()?.id(), before);

    // Handles of the same namespace share an identity.
    assert_eq!(NetNs::open(&pod.netns_path)?.id(), ns.id());
    Ok(())
}

#[test]
fn sockets_stay_in_the_namespace_they_were_created_in() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let net = TestNet::new("sock")?;
    let pod = net.add_pod("a", Ipv4Addr::new(198, 18, 1, 3))?;
    let ns = pod.netns()?;

    // The pod's IP exists only inside the pod: binding it proves where the
    // socket lives, and that it stays there after run() moved us back.
    let addr = SocketAddr::from((pod.ip, 0));
    let listener = ns.bind_tcp(addr, &ListenOptions::default())?;
    assert_eq!(listener.local_addr()?.ip(), pod.ip);
    let host = NetNs::current()?;
    assert!(host.bind_tcp(addr, &ListenOptions::default()).is_err());

    let outbound = ns.tcp_socket(addr, Some(braid_capture::PROXY_MARK))?;
    assert_eq!(outbound.mark()?, braid_capture::PROXY_MARK);
    assert!(outbound.nonblocking()?);
    outbound.bind(&addr.into())?;

    let transparent = ListenOptions {
        transparent: true,
        ..ListenOptions::default()
    };
    let v6 = ns.bind_tcp("[::1]:0".parse()?, &transparent)?;
    assert!(v6.local_addr()?.is_ipv6());
    Ok(())
}

#[test]
fn commands_run_inside_without_moving_the_caller() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let net = TestNet::new("cmd")?;
    let pod = net.add_pod("a", Ipv4Addr::new(198, 18, 1, 4))?;
    let ns = pod.netns()?;
    let before = NetNs::current()?.id();

    let out = ns.command_output(Command::new("ip").args(["-o", "-4", "addr", "show", "eth0"]))?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("198.18.1.4/16"));
    assert_eq!(NetNs::current()?.id(), before);

    let out = pod.exec("ip", ["-o", "-4", "route", "show"])?;
    let routes = String::from_utf8_lossy(&out.stdout);
    assert!(routes.contains("198.18.0.0/15 dev eth0"), "{routes}");
    assert!(
        !routes.contains("default"),
        "test pods must have no route out: {routes}"
    );

    let missing = ns.command_output(&mut Command::new("braid-no-such-program"));
    assert!(missing.is_err());
    Ok(())
}

#[test]
fn the_namespace_holding_an_address_is_found() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let net = TestNet::new("find")?;
    let a = net.add_pod("a", Ipv4Addr::new(198, 18, 1, 4))?;
    let b = net.add_pod("b", Ipv4Addr::new(198, 18, 1, 5))?;
    let b_ns = b.netns()?;
    assert!(braid_capture::netns::holds(&b_ns, b.ip.into()));
    assert!(!braid_capture::netns::holds(&b_ns, a.ip.into()));

    let found = braid_capture::netns::find_holding(&[b.ip.into()])
        .ok_or_else(|| anyhow::anyhow!("b's namespace not found"))?;
    assert_eq!(found.netns.id(), b_ns.id());
    assert_eq!(NetNs::open(&found.path)?.id(), b_ns.id());
    // An address no namespace holds; the caller's own namespace is skipped
    // even though it holds loopback.
    let nowhere = Ipv4Addr::new(198, 18, 1, 250).into();
    assert!(braid_capture::netns::find_holding(&[nowhere]).is_none());
    let loopback = Ipv4Addr::LOCALHOST.into();
    if let Some(found) = braid_capture::netns::find_holding(&[loopback]) {
        assert_ne!(found.netns.id(), NetNs::current()?.id());
    }
    Ok(())
}
