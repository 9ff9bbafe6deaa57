//! Every listener of the control plane bounds what a peer can hold: idle
//! and half-open connections are closed, excess connections refused, accept
//! errors (out of file descriptors) backed off; debug views stay on
//! loopback; logs carry no colour codes when stdout is not a terminal.

mod support;

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Read as _},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use braid_api::type_url;
use support::*;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

/// The HTTP/2 client preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads until the server closes `conn`; the time that took, or `None` if it
/// stayed open for `limit`.
async fn closed_within(conn: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(limit, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // the server's SETTINGS
            }
        }
    });
    read.await.ok().map(|()| start.elapsed())
}

#[tokio::test]
async fn idle_xds_connections_are_closed() -> anyhow::Result<()> {
    let h = Harness::start(&[("ns.yaml", namespace("shop", "ambient"))], |c| {
        c.xds_handshake_timeout = Duration::from_secs(1);
        c.xds_idle_timeout = Duration::from_secs(1);
    })
    .await?;
    let xds = h.cp.xds_addr();
    // One that sends nothing, one that sends only the preface.
    let mut silent = TcpStream::connect(xds).await?;
    let mut preface = TcpStream::connect(xds).await?;
    preface.write_all(PREFACE).await?;
    // A real proxy with a stream open is left alone past both timeouts.
    let mut proxy = h.proxy("ztunnel~node-a").await?;
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    proxy.recv_ack(type_url::WORKLOAD).await?;

    for (what, conn) in [("silent", &mut silent), ("preface-only", &mut preface)] {
        let took = closed_within(conn, DEADLINE)
            .await
            .with_context(|| format!("the {what} connection is still open after {DEADLINE:?}"))?;
        assert!(
            took < Duration::from_secs(5),
            "{what}: closed after {took:?}"
        );
    }
    proxy.expect_nothing(Duration::from_millis(1500)).await?;
    h.write("pod.yaml", &pod("shop", "web-0", "10.0.0.5", "web"))?;
    let update = proxy.recv().await?;
    assert!(!update.resources.is_empty() || !update.removed_resources.is_empty());
    Ok(())
}

#[tokio::test]
async fn xds_connection_cap_refuses_excess() -> anyhow::Result<()> {
    let h = Harness::start(&[], |c| c.xds_max_connections = 3).await?;
    let xds = h.cp.xds_addr();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = TcpStream::connect(xds).await?;
        conn.write_all(PREFACE).await?;
        held.push(conn);
    }
    // Admitted connections get the server's SETTINGS; wait for all three so
    // the fourth is certainly over the cap.
    for conn in &mut held {
        let mut buf = [0u8; 9];
        tokio::time::timeout(DEADLINE, conn.read_exact(&mut buf)).await??;
    }
    let mut excess = TcpStream::connect(xds).await?;
    let took = closed_within(&mut excess, DEADLINE)
        .await
        .context("the connection over the cap was not closed")?;
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    // A freed slot admits the next client.
    held.pop();
    eventually(|| async {
        match Proxy::connect(xds, "ztunnel~node-a").await {
            Ok(mut p) => {
                p.subscribe(type_url::WORKLOAD, &[], HashMap::new())
                    .await
                    .is_ok()
                    && p.recv().await.is_ok()
            }
            Err(_) => false,
        }
    })
    .await
}

#[tokio::test]
async fn admin_connections_without_a_request_are_closed() -> anyhow::Result<()> {
    let h = Harness::start(&[], |_| {}).await?;
    let mut silent = TcpStream::connect(h.cp.admin_addr()).await?;
    let took = closed_within(&mut silent, Duration::from_secs(20))
        .await
        .context("a silent admin connection stayed open")?;
    assert!(took < Duration::from_secs(15), "closed after {took:?}");
    Ok(())
}

/// The release or debug binary next to this test.
fn braid_control() -> &'static str {
    env!("CARGO_BIN_EXE_braid-control")
}

/// Runs braid-control on an empty directory with stdout to a pipe; the
/// child and its first lines up to `control plane serving`.
fn spawn_logged(
    shell_prefix: &str,
    extra: &str,
) -> anyhow::Result<(std::process::Child, Vec<u8>, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let script = format!(
        "{shell_prefix} exec {} --config-dir {} --xds-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 {extra}",
        braid_control(),
        dir.path().display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .env_remove("NO_COLOR")
        .env("BRAID_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut reader = BufReader::new(stdout);
    let mut seen = Vec::new();
    let started = Instant::now();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 || started.elapsed() > DEADLINE {
            let _ = child.kill();
            bail!(
                "braid-control did not start: {}",
                String::from_utf8_lossy(&seen)
            );
        }
        seen.extend_from_slice(&line);
        if String::from_utf8_lossy(&line).contains("control plane serving") {
            break;
        }
    }
    // Keep draining so the child never blocks on a full pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        let _ = tx.send(rest);
    });
    LOG_TAIL.with(|t| *t.borrow_mut() = Some(rx));
    Ok((child, seen, dir))
}

thread_local! {
    static LOG_TAIL: std::cell::RefCell<Option<std::sync::mpsc::Receiver<Vec<u8>>>> = const { std::cell::RefCell::new(None) };
}

/// Stops `child` (by its PID) and returns what it logged after start.
fn stop(mut child: std::process::Child) -> Vec<u8> {
    let _ = child.kill();
    let _ = child.wait();
    LOG_TAIL
        .with(|t| t.borrow_mut().take())
        .and_then(|rx| rx.recv_timeout(DEADLINE).ok())
        .unwrap_or_default()
}

#[test]
fn log_has_no_colour_when_not_a_tty() -> anyhow::Result<()> {
    let (child, mut log, _dir) = spawn_logged("", "")?;
    log.extend(stop(child));
    assert!(
        !log.contains(&0x1b),
        "ANSI escapes in a piped log:\n{}",
        String::from_utf8_lossy(&log)
    );
    Ok(())
}

/// The `xds_addr=` of the `control plane serving` line.
fn xds_addr(log: &[u8]) -> Option<std::net::SocketAddr> {
    let log = String::from_utf8_lossy(log);
    let at = log.find("xds_addr=")? + "xds_addr=".len();
    log[at..].split_whitespace().next()?.parse().ok()
}

/// CPU seconds (user + system) `pid` has used, from /proc.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// Out of file descriptors, accept fails at once, every time: the control
/// plane must back off (and say so once) instead of spinning a core.
#[test]
fn accept_errors_back_off() -> anyhow::Result<()> {
    let (child, started, _dir) = spawn_logged("ulimit -n 64 &&", "--xds-max-connections 0")?;
    let Some(addr) = xds_addr(&started) else {
        stop(child);
        bail!("no xds_addr in the start-up log");
    };
    let pid = child.id();
    let mut conns = Vec::new();
    for _ in 0..100 {
        match std::net::TcpStream::connect(addr) {
            Ok(c) => conns.push(c),
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_seconds(pid)?;
    let wall = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let used = (cpu_seconds(pid)? - before) / wall.elapsed().as_secs_f64();
    drop(conns);
    let log = String::from_utf8_lossy(&stop(child)).into_owned();
    assert!(
        used < 0.2,
        "braid-control used {:.0} % CPU out of fds",
        used * 100.0
    );
    let lines = log.lines().filter(|l| l.contains("accept failed")).count();
    assert!(
        (1..=3).contains(&lines),
        "expected one backoff line per burst, got {lines}:\n{log}"
    );
    Ok(())
}
