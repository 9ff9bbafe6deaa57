//! Redirect rules against real namespaces, real iptables and real TCP.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use braid_capture::rules::{self, RedirectConfig};
use braid_capture::testing::{TestNet, TestPod, require_root};
use braid_capture::{Error, ListenOptions, NetNs, PROXY_MARK, original_dst};

const TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn outbound_is_redirected_unless_marked_excluded_or_removed() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let net = TestNet::new("out")?;
    let (a, b) = (pod(&net, "a", 2)?, pod(&net, "b", 3)?);
    let (a_ns, b_ns) = (a.netns()?, b.netns()?);

    let mut config = RedirectConfig::ambient();
    config.exclude_outbound_ports = vec![81];
    assert!(
        rules::check(&a_ns, &config).is_err(),
        "nothing installed yet"
    );
    rules::install(&a_ns, &config)?;
    rules::install(&a_ns, &config)?;
    rules::check(&a_ns, &config)?;

    let proxy = listen(&a_ns, "0.0.0.0:15001")?;
    let b_80 = listen(&b_ns, "0.0.0.0:80")?;
    let b_81 = listen(&b_ns, "0.0.0.0:81")?;
    let (to_80, to_81) = (SocketAddr::from((b.ip, 80)), SocketAddr::from((b.ip, 81)));

    // Captured: lands on the proxy, which learns where it was going.
    let mut client = connect(&a_ns, to_80, None)?;
    let (mut accepted, peer) = accept(&proxy)?;
    assert_eq!(original_dst(&accepted)?, to_80);
    assert_eq!(peer.ip(), a.ip);
    client.write_all(b"hi")?;
    let mut buf = [0; 2];
    accepted.read_exact(&mut buf)?;
    assert_eq!(&buf, b"hi");

    // The proxy's own marked socket goes straight to the real destination.
    let _marked = connect(&a_ns, to_80, Some(PROXY_MARK))?;
    assert_eq!(accept(&b_80)?.1.ip(), a.ip);
    assert_nothing_pending(&proxy);

    // Excluded port: direct.
    let _excluded = connect(&a_ns, to_81, None)?;
    accept(&b_81)?;
    assert_nothing_pending(&proxy);

    rules::remove(&a_ns)?;
    let err = rules::check(&a_ns, &config).expect_err("removed rules must fail check");
    assert!(matches!(err, Error::RulesMismatch { .. }), "{err}");
    let _direct = connect(&a_ns, to_80, None)?;
    accept(&b_80)?;
    assert_nothing_pending(&proxy);
    rules::remove(&a_ns)?;
    Ok(())
}

#[test]
fn inbound_is_redirected_except_hbone() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let net = TestNet::new("in")?;
    let (a, b) = (pod(&net, "a", 4)?, pod(&net, "b", 5)?);
    let (a_ns, b_ns) = (a.netns()?, b.netns()?);
    rules::install(&a_ns, &RedirectConfig::sidecar())?;

    let inbound = listen(&a_ns, "0.0.0.0:15006")?;
    let hbone = listen(&a_ns, "0.0.0.0:15008")?;

    let app = SocketAddr::from((a.ip, 8080));
    let _client = connect(&b_ns, app, None)?;
    let (accepted, peer) = accept(&inbound)?;
    assert_eq!(original_dst(&accepted)?, app);
    assert_eq!(peer.ip(), b.ip);

    let _tunnel = connect(&b_ns, SocketAddr::from((a.ip, 15008)), None)?;
    let (_, peer) = accept(&hbone)?;
    assert_eq!(peer.ip(), b.ip);
    assert_nothing_pending(&inbound);
    Ok(())
}

/// A running pod captured in place: connections it had before the rules
/// keep going where they went, both ways, and only new ones are
/// redirected. Its namespace had no nat rules before, so the kernel did
/// not track those connections and meets them mid-stream afterwards:
/// redirecting anything but a SYN would send their next segments to the
/// proxy's listeners and break them.
#[test]
fn connections_open_before_install_are_left_alone() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let net = TestNet::new("pre")?;
    let (a, b) = (pod(&net, "a", 7)?, pod(&net, "b", 8)?);
    let (a_ns, b_ns) = (a.netns()?, b.netns()?);
    let (a_app, b_app) = (listen(&a_ns, "0.0.0.0:8080")?, listen(&b_ns, "0.0.0.0:80")?);
    let to_b = SocketAddr::from((b.ip, 80));
    let mut out_client = connect(&a_ns, to_b, None)?;
    let (mut out_server, _) = accept(&b_app)?;
    let mut in_client = connect(&b_ns, SocketAddr::from((a.ip, 8080)), None)?;
    let (mut in_server, _) = accept(&a_app)?;

    // The proxy listens first, then the rules come (the order of an
    // in-place capture).
    let outbound = listen(&a_ns, "0.0.0.0:15001")?;
    let inbound = listen(&a_ns, "0.0.0.0:15006")?;
    rules::install(&a_ns, &RedirectConfig::ambient())?;

    for round in 0..3u8 {
        exchange(&mut out_client, &mut out_server, round)?;
        exchange(&mut in_client, &mut in_server, round)?;
    }
    assert_nothing_pending(&outbound);
    assert_nothing_pending(&inbound);

    // New connections are captured.
    let _new = connect(&a_ns, to_b, None)?;
    let (accepted, _) = accept(&outbound)?;
    assert_eq!(original_dst(&accepted)?, to_b);
    rules::remove(&a_ns)?;
    Ok(())
}

/// Sends a byte each way and checks it arrives.
fn exchange(client: &mut TcpStream, server: &mut TcpStream, round: u8) -> anyhow::Result<()> {
    send_one(client, server, round)?;
    send_one(server, client, round)
}

fn send_one(from: &mut TcpStream, to: &mut TcpStream, round: u8) -> anyhow::Result<()> {
    from.write_all(&[round])?;
    to.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0; 1];
    to.read_exact(&mut buf).map_err(|e| {
        anyhow::anyhow!("round {round}: a byte on a connection opened before the rules: {e}")
    })?;
    anyhow::ensure!(buf == [round], "round {round}: got {buf:?}");
    Ok(())
}

#[test]
fn install_repairs_our_chains_and_leaves_foreign_rules_alone() -> anyhow::Result<()> {
    if !require_root() {
        return Ok(());
    }
    let net = TestNet::new("fix")?;
    let a = pod(&net, "a", 6)?;
    let a_ns = a.netns()?;
    let config = RedirectConfig::sidecar();
    iptables(
        &a,
        &["-t", "nat", "-A", "OUTPUT", "-p", "udp", "-j", "RETURN"],
    )?;
    rules::install(&a_ns, &config)?;

    iptables(&a, &["-t", "nat", "-I", "BRAID_OUTPUT", "-j", "RETURN"])?;
    iptables(
        &a,
        &[
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "-j",
            "BRAID_OUTPUT",
        ],
    )?;
    let err = rules::check(&a_ns, &config).expect_err("tampered");
    let text = err.to_string();
    assert!(
        text.contains("unexpected [") && text.contains("-A BRAID_OUTPUT -j RETURN"),
        "{text}"
    );

    rules::install(&a_ns, &config)?;
    rules::check(&a_ns, &config)?;
    rules::remove(&a_ns)?;
    let saved = a.exec("iptables-save", ["-t", "nat"])?;
    let saved = String::from_utf8_lossy(&saved.stdout);
    assert!(!saved.contains("BRAID_"), "{saved}");
    assert!(saved.contains("-A OUTPUT -p udp -j RETURN"), "{saved}");
    Ok(())
}

fn pod(net: &TestNet, name: &str, host: u8) -> anyhow::Result<TestPod> {
    Ok(net.add_pod(name, Ipv4Addr::new(198, 18, 0, host))?)
}

fn listen(ns: &NetNs, addr: &str) -> anyhow::Result<TcpListener> {
    Ok(ns.bind_tcp(addr.parse()?, &ListenOptions::default())?)
}

fn connect(ns: &NetNs, to: SocketAddr, mark: Option<u32>) -> anyhow::Result<TcpStream> {
    let socket = ns.tcp_socket(to, mark)?;
    socket.set_nonblocking(false)?;
    socket.connect_timeout(&to.into(), TIMEOUT)?;
    Ok(socket.into())
}

/// Accepts on a non-blocking listener, polling until a deadline.
fn accept(listener: &TcpListener) -> anyhow::Result<(TcpStream, SocketAddr)> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                stream.set_nonblocking(false)?;
                return Ok((stream, peer));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => anyhow::bail!("accept on {:?}: {e}", listener.local_addr()),
        }
    }
}

/// A redirected connect completes only once queued on the proxy's listener,
/// so "nothing queued right now" after a direct connect is conclusive.
fn assert_nothing_pending(listener: &TcpListener) {
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("unexpected connection on the proxy listener: {other:?}"),
    }
}

fn iptables(pod: &TestPod, args: &[&str]) -> anyhow::Result<()> {
    let out = pod.exec("iptables", args)?;
    anyhow::ensure!(
        out.status.success(),
        "iptables {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
