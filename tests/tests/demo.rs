//! `braidctl demo` end to end, the way the README runs it: the real
//! binaries, `--duration 60 --no-tui`, and then what a new user would check
//! in the output (mTLS edges with SPIFFE IDs, the DENY visible as errors on
//! the denied edge, no error while `shop` switches from sidecar to ambient)
//! and on the machine afterwards (no `braid-demo-` namespace, no demo
//! process, no state file).
//!
//! Needs root (namespaces, iptables): skipped with a message otherwise,
//! unless `CI=true`. Builds braidctl, braid-control, braid-proxy and
//! braid-cni first (dev profile, this test's target directory), unless
//! `BRAID_E2E_BIN_DIR=DIR` names a directory holding all four.
//!
//! ```sh
//! cargo test -p braid-tests --test demo -- --nocapture
//! ```

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use braid_capture::testing::require_root;

/// The walk-through's length the issue checks.
const DURATION_SECS: &str = "60";
/// The whole run: setup, the walk-through, cleanup, with room to spare.
const RUN_LIMIT: Duration = Duration::from_secs(240);

#[test]
fn demo_walks_through_and_leaves_nothing_behind() {
    if !require_root() {
        return;
    }
    let bins = binaries();
    let started = Instant::now();
    let (ok, output) = run_demo(&bins);
    eprintln!(
        "demo e2e: braidctl demo ran {:?}\n{output}",
        started.elapsed()
    );
    assert!(ok, "braidctl demo failed; its output is above");

    // Every mTLS edge names both SPIFFE identities.
    for (from, to) in [
        ("shop/sa/web", "inventory/sa/stock"),
        ("inventory/sa/stock", "shop/sa/web"),
    ] {
        let line =
            format!("mTLS spiffe://cluster.local/ns/{from} → spiffe://cluster.local/ns/{to}");
        assert!(output.contains(&line), "an edge shown as `{line}`");
    }
    // Before its switch, legacy is plaintext; after, its edge is mTLS.
    let baseline = summary(&output, 1);
    assert_eq!(
        edge(&baseline, "legacy/ledger → shop/web").1,
        "plaintext",
        "legacy → shop in the baseline:\n{baseline}"
    );
    let legacy = summary(&output, 4);
    assert!(
        edge(&legacy, "legacy/ledger → shop/web").1.starts_with(
            "mTLS spiffe://cluster.local/ns/legacy/sa/ledger → spiffe://cluster.local/ns/shop/sa/web"
        ),
        "legacy → shop after legacy's switch:\n{legacy}"
    );
    // legacy's running pod is captured where it runs, and nothing fails.
    assert!(
        output.contains("captured by the ztunnel after") && output.contains("without a restart"),
        "legacy's pod captured in place"
    );
    for name in [
        "legacy/ledger → shop/web",
        "shop/web → inventory/stock",
        "inventory/stock → shop/web",
    ] {
        let (errors, requests) = counts(&edge(&legacy, name).0);
        assert!(
            errors == 0 && requests > 0,
            "{name} during legacy's switch: {errors} errors of {requests}:\n{legacy}"
        );
    }

    // The DENY shows as errors on shop → inventory only.
    let deny = summary(&output, 2);
    let (errors, requests) = counts(&edge(&deny, "shop/web → inventory/stock").0);
    assert!(
        errors > 0 && errors == requests,
        "every shop → inventory request refused under the DENY:\n{deny}"
    );
    for other in ["legacy/ledger → shop/web", "inventory/stock → shop/web"] {
        assert_eq!(
            counts(&edge(&deny, other).0).0,
            0,
            "{other} unaffected:\n{deny}"
        );
    }
    let allow = summary(&output, 3);
    assert_eq!(
        counts(&edge(&allow, "shop/web → inventory/stock").0).0,
        0,
        "shop → inventory recovers once the policy is removed:\n{allow}"
    );

    // No request fails while shop switches from sidecar to ambient.
    let switch = summary(&output, 5);
    for name in [
        "legacy/ledger → shop/web",
        "shop/web → inventory/stock",
        "inventory/stock → shop/web",
    ] {
        let (errors, requests) = counts(&edge(&switch, name).0);
        assert!(
            errors == 0 && requests >= 50,
            "{name} during shop's switch: {errors} errors of {requests}:\n{switch}"
        );
    }
    assert!(
        output.contains("[ok] all meshed: 3 of 3 edges"),
        "the verdict"
    );

    // Through the waypoint: the route's 80/20 split and its header match,
    // with no failed request.
    let canary = summary(&output, 7);
    let line = |prefix: &str| {
        canary
            .lines()
            .map(str::trim_start)
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{canary}"))
            .to_owned()
    };
    let header = line("inventory/stock → catalog, x-canary: yes");
    let (errors, requests) = counts(&header);
    assert!(
        errors == 0 && requests > 0 && header.contains("v1   0.0%"),
        "every header-matched request lands on v2:\n{canary}"
    );
    let split = line("inventory/stock → catalog ");
    let (errors, requests) = counts(&split);
    assert!(
        errors == 0
            && requests >= 50
            && !split.contains("v2   0.0%")
            && !split.contains("v1   0.0%"),
        "both versions answer the 80/20 split:\n{canary}"
    );

    assert_nothing_left();
}

/// Runs `braidctl demo --duration 60 --no-tui`, killed after [`RUN_LIMIT`]:
/// (success, stdout and stderr).
fn run_demo(bins: &Path) -> (bool, String) {
    let mut child = Command::new(bins.join("braidctl"))
        .args(["demo", "--duration", DURATION_SECS, "--no-tui", "--bin-dir"])
        .arg(bins)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start braidctl demo");
    let read = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = read(child.stdout.take().map(|s| Box::new(s) as _));
    let err = read(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for braidctl demo") {
            break status;
        }
        if Instant::now() > deadline {
            // SIGINT is Ctrl-C: the demo still cleans up.
            if let Some(pid) = i32::try_from(child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            }
            let _ = child.wait();
            panic!("braidctl demo took longer than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    (status.success(), output)
}

/// The summary block of step `n` (its lines up to the next blank line).
fn summary(output: &str, n: usize) -> String {
    let marker = format!("-- summary of step {n}/7");
    let start = output
        .find(&marker)
        .unwrap_or_else(|| panic!("no `{marker}` in the output"));
    output[start..]
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// An edge's numbers line and identity line in a summary block.
fn edge(block: &str, name: &str) -> (String, String) {
    let lines: Vec<&str> = block.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no edge {name} in:\n{block}"));
    let identity = lines.get(i + 1).map_or("", |l| l.trim());
    (lines[i].to_owned(), identity.to_owned())
}

/// (errors, requests) from "... N errors of M".
fn counts(line: &str) -> (u64, u64) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "errors")
        .unwrap_or_else(|| panic!("no error count in `{line}`"));
    let num = |i: usize| {
        words
            .get(i)
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no number in `{line}`"))
    };
    (num(at - 1), num(at + 2))
}

/// No `braid-demo-` namespace or link, no process of the demo, no state.
fn assert_nothing_left() {
    let netns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(
        !netns.contains("braid-demo"),
        "namespaces left behind:\n{netns}"
    );
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link show");
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains("braid-demo"), "links left behind:\n{links}");
    // Every demo process runs with a path under /run/braid-demo/.
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("/run/braid-demo/") {
            left.push(cmdline);
        }
    }
    assert!(
        left.is_empty(),
        "demo processes left behind:\n{}",
        left.join("\n")
    );
    assert!(
        !Path::new("/run/braid-demo/state.json").exists(),
        "the state file is removed after a clean end"
    );
}

/// The directory holding braidctl and the three binaries it runs: built
/// here (`cargo build`, this test's target directory), or
/// `BRAID_E2E_BIN_DIR`.
fn binaries() -> PathBuf {
    if let Some(dir) = std::env::var_os("BRAID_E2E_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf);
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| root.join("target"), Path::to_path_buf);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-p",
            "braidctl",
            "-p",
            "braid-control",
            "-p",
            "braid-proxy",
            "-p",
            "braid-cni",
            "--bins",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(&root)
        .stdin(Stdio::null())
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "cargo build of the demo's binaries failed"
    );
    target.join("debug")
}
