use std::{path::Path, time::Duration};

use super::*;
use crate::source::Kind;

fn pod(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop}}\nspec: {{containers: [{{name: app, image: app}}]}}\nstatus: {{podIP: {ip}}}\n"
    )
}

fn summary(changes: &[Change]) -> Vec<String> {
    let mut out: Vec<String> = changes
        .iter()
        .map(|c| match c {
            Change::Apply(k, _) => format!("apply {k}"),
            Change::Delete(k) => format!("delete {k}"),
        })
        .collect();
    out.sort();
    out
}

#[test]
fn scans_report_only_differences() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("a/b"))?;
    std::fs::write(dir.path().join("a/b/p.yaml"), pod("one", "198.18.0.1"))?;
    std::fs::write(
        dir.path().join("q.yml"),
        format!(
            "{}---\n{}",
            pod("two", "198.18.0.2"),
            pod("three", "198.18.0.3")
        ),
    )?;
    std::fs::write(dir.path().join(".hidden.yaml"), pod("hidden", "198.18.0.4"))?;
    std::fs::write(dir.path().join("notes.txt"), "ignored")?;
    let errors = ConfigErrors::default();
    let mut source = FileSource::new(dir.path(), MeshSettings::default(), errors.clone());
    assert_eq!(
        summary(&source.scan()?),
        vec![
            "apply Pod shop/one",
            "apply Pod shop/three",
            "apply Pod shop/two"
        ]
    );
    assert!(source.scan()?.is_empty(), "nothing changed");

    std::fs::write(
        dir.path().join("q.yml"),
        format!(
            "{}---\n{}",
            pod("two", "198.18.0.22"),
            pod("four", "198.18.0.5")
        ),
    )?;
    assert_eq!(
        summary(&source.scan()?),
        vec![
            "apply Pod shop/four",
            "apply Pod shop/two",
            "delete Pod shop/three"
        ]
    );

    std::fs::remove_dir_all(dir.path().join("a"))?;
    let changes = source.scan()?;
    assert_eq!(summary(&changes), vec!["delete Pod shop/one"]);
    assert!(matches!(&changes[0], Change::Delete(k) if k.kind == Kind::Pod));
    assert!(errors.list().is_empty());
    Ok(())
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let mut source = FileSource::new(
        "/nonexistent/braid-config",
        MeshSettings::default(),
        ConfigErrors::default(),
    );
    let err = source.scan().expect_err("missing dir");
    assert!(
        err.to_string().contains("/nonexistent/braid-config"),
        "{err}"
    );
}

/// Scans on another thread and fails the run if that takes longer than
/// `limit`: a regression that loops then fails in bounded time and memory
/// instead of eating the machine. The stuck scan cannot be stopped from
/// outside, so the whole test binary exits.
fn scan_within(mut source: FileSource, limit: Duration) -> (FileSource, Vec<Change>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let changes = source.scan();
        let _ = tx.send((source, changes));
    });
    match rx.recv_timeout(limit) {
        Ok((source, changes)) => (source, changes.expect("scan")),
        Err(_) => {
            // Not `eprintln!`: the harness would capture it, and exit drops that.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "a config directory scan did not finish within {limit:?}; exiting"
            );
            std::process::exit(101);
        }
    }
}

fn symlink(target: &str, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[test]
fn directory_symlink_loops_are_not_followed() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("shop"))?;
    std::fs::write(dir.path().join("shop/p.yaml"), pod("one", "198.18.0.1"))?;
    std::fs::write(dir.path().join("q.yaml"), pod("two", "198.18.0.2"))?;
    // Two loops make the paths grow as 2^depth; links sideways and up too.
    symlink(".", &dir.path().join("loop"))?;
    symlink(".", &dir.path().join("loop2"))?;
    symlink("..", &dir.path().join("shop/up"))?;
    symlink("../shop", &dir.path().join("shop/again"))?;
    let errors = ConfigErrors::default();
    let source = FileSource::new(dir.path(), MeshSettings::default(), errors.clone());
    let (mut source, changes) = scan_within(source, Duration::from_secs(10));
    assert_eq!(
        summary(&changes),
        vec!["apply Pod shop/one", "apply Pod shop/two"]
    );
    assert!(errors.list().is_empty(), "{:#?}", errors.list());
    let skipped: Vec<_> = source.skipped.iter().cloned().collect();
    assert_eq!(skipped.len(), 4, "each link is noted: {skipped:?}");
    assert!(source.scan()?.is_empty(), "nothing changed");
    Ok(())
}

/// The layout the kubelet gives a mounted ConfigMap: keys are links into
/// `..data`, itself a link to a timestamped folder, swapped on update.
#[test]
fn configmap_volume_mounts_load_each_key_once() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let version = |name: &str, ip: &str| -> std::io::Result<()> {
        std::fs::create_dir_all(root.join(name).join("nested"))?;
        std::fs::write(root.join(name).join("pods.yaml"), pod("one", ip))?;
        std::fs::write(
            root.join(name).join("nested/more.yaml"),
            pod("two", "198.18.0.2"),
        )
    };
    version("..2024_01_01_00_00_00.1", "198.18.0.1")?;
    symlink("..2024_01_01_00_00_00.1", &root.join("..data"))?;
    symlink("..data/pods.yaml", &root.join("pods.yaml"))?;
    symlink("..data/nested", &root.join("nested"))?;
    let errors = ConfigErrors::default();
    let mut source = FileSource::new(root, MeshSettings::default(), errors.clone());
    assert_eq!(
        summary(&source.scan()?),
        vec!["apply Pod shop/one", "apply Pod shop/two"]
    );
    assert!(errors.list().is_empty(), "{:#?}", errors.list());
    assert!(source.skipped.is_empty(), "{:?}", source.skipped);

    // An update: a new folder, then `..data` replaced atomically.
    version("..2024_01_02_00_00_00.2", "198.18.0.11")?;
    symlink("..2024_01_02_00_00_00.2", &root.join("..data_tmp"))?;
    std::fs::rename(root.join("..data_tmp"), root.join("..data"))?;
    std::fs::remove_dir_all(root.join("..2024_01_01_00_00_00.1"))?;
    assert_eq!(summary(&source.scan()?), vec!["apply Pod shop/one"]);
    assert!(errors.list().is_empty(), "{:#?}", errors.list());
    Ok(())
}

#[test]
fn a_fifo_named_yaml_does_not_block_the_scan() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("p.yaml"), pod("one", "198.18.0.1"))?;
    let status = std::process::Command::new("mkfifo")
        .arg(dir.path().join("pipe.yaml"))
        .status()?;
    assert!(status.success());
    let source = FileSource::new(dir.path(), MeshSettings::default(), ConfigErrors::default());
    let (source, changes) = scan_within(source, Duration::from_secs(10));
    assert_eq!(summary(&changes), vec!["apply Pod shop/one"]);
    assert_eq!(source.skipped.len(), 1);
    Ok(())
}

/// Waits (polling, at most 5 s) until the writer has put `needle` into
/// `path`, so a scan that follows lands in the middle of its writes.
fn wait_until_written(path: &Path, needle: &str) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(path)?.contains(needle) {
        if std::time::Instant::now() > deadline {
            return Err(std::io::Error::other(format!("{needle} never written")));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Rewrites `path` in place, one document at a time with `pause` between
/// writes, the way `cmd > file` does.
fn write_slowly(path: &Path, docs: Vec<String>, pause: Duration) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path)?;
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
            file.write_all(b"---\n")?;
        }
        file.write_all(doc.as_bytes())?;
        file.flush()?;
    }
    Ok(())
}

#[test]
fn file_read_mid_write_is_not_silently_truncated() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("pods.yaml");
    let docs = |ip: &str| -> Vec<String> {
        ["a", "b", "c", "d"]
            .iter()
            .map(|name| pod(name, ip))
            .collect()
    };
    std::fs::write(&path, docs("198.18.0.1").join("---\n"))?;
    let errors = ConfigErrors::default();
    let mut source = FileSource::new(dir.path(), MeshSettings::default(), errors.clone());
    assert_eq!(source.scan()?.len(), 4);

    // The scan lands after the first document: every cut it could see is
    // valid YAML that lacks the later pods.
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            write_slowly(&path, docs("198.18.0.2"), Duration::from_millis(60))
        })
    };
    wait_until_written(&path, "198.18.0.2")?;
    let changes = source.scan()?;
    writer.join().expect("writer")?;
    assert_eq!(
        summary(&changes),
        vec![
            "apply Pod shop/a",
            "apply Pod shop/b",
            "apply Pod shop/c",
            "apply Pod shop/d"
        ],
        "the whole new version, nothing deleted"
    );
    assert!(errors.list().is_empty(), "{:#?}", errors.list());
    Ok(())
}

#[test]
fn a_file_that_never_holds_still_keeps_serving_and_is_reported()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("pods.yaml");
    std::fs::write(
        &path,
        format!("{}---\n{}", pod("a", "198.18.0.1"), pod("b", "198.18.0.2")),
    )?;
    let errors = ConfigErrors::default();
    let mut source = FileSource::new(dir.path(), MeshSettings::default(), errors.clone());
    assert_eq!(source.scan()?.len(), 2);

    // Rewritten in place over and over for longer than a scan waits.
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            let docs: Vec<String> = std::iter::once(pod("a", "198.18.0.11"))
                .chain((0..30).map(|i| pod(&format!("x{i}"), &format!("198.18.1.{i}"))))
                .collect();
            write_slowly(&path, docs, Duration::from_millis(50))
        })
    };
    wait_until_written(&path, "198.18.0.11")?;
    let changes = source.scan()?;
    assert!(
        changes.is_empty(),
        "the last good version stays: {changes:?}"
    );
    let listed = errors.list();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert!(
        listed[0].message.contains("kept changing"),
        "{}",
        listed[0].message
    );
    assert!(
        listed[0].message.contains("lacks Pod shop/b"),
        "{}",
        listed[0].message
    );
    assert!(
        listed[0].message.contains("rename"),
        "{}",
        listed[0].message
    );

    // Once the writer is done, what it wrote applies.
    writer.join().expect("writer")?;
    let changes = source.scan()?;
    assert!(
        summary(&changes).contains(&"delete Pod shop/b".to_string()),
        "{changes:?}"
    );
    assert!(errors.list().is_empty(), "{:#?}", errors.list());
    Ok(())
}

#[test]
fn a_broken_http_route_keeps_its_last_good_version_and_is_reported()
-> Result<(), Box<dyn std::error::Error>> {
    let route = |weight: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: canary, namespace: shop}}\nspec:\n  parentRefs: [{{group: '', kind: Service, name: web}}]\n  rules: [{{backendRefs: [{{name: web-v2, port: 80, weight: {weight}}}]}}]\n"
        )
    };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("routes.yaml");
    std::fs::write(&path, route("10"))?;
    let errors = ConfigErrors::default();
    let mut source = FileSource::new(dir.path(), MeshSettings::default(), errors.clone());
    let changes = source.scan()?;
    assert_eq!(summary(&changes), vec!["apply HTTPRoute shop/canary"]);
    let Change::Apply(_, object) = &changes[0] else {
        panic!("an apply");
    };
    let weight = |o: &KubeObject| {
        o.as_http_route()
            .map(|r| r.route.rules[0].backends[0].weight)
    };
    assert_eq!(weight(object), Some(10));

    std::fs::write(&path, route("-5"))?;
    assert!(
        source.scan()?.is_empty(),
        "the last good route keeps serving"
    );
    let reported = errors.list();
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported[0].file, path);
    assert_eq!(reported[0].field, "spec.rules[0].backendRefs[0].weight");
    assert!(
        reported[0]
            .message
            .starts_with("UnsupportedValue: -5 is out of range"),
        "{reported:?}"
    );

    std::fs::write(&path, route("20"))?;
    let changes = source.scan()?;
    let [Change::Apply(_, object)] = &changes[..] else {
        panic!("one apply: {changes:?}");
    };
    assert_eq!(weight(object), Some(20));
    assert!(errors.list().is_empty(), "fixed: the error is gone");
    Ok(())
}
