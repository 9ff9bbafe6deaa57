//! In-process tests of the YAML-directory source: bad documents are reported
//! with file, document and field, and the last good objects keep serving.

mod support;

use std::{collections::HashMap, time::Duration};

use braid_api::{
    braid::admin::v1alpha1::{
        ConfigErrorsRequest, control_plane_debug_client::ControlPlaneDebugClient,
    },
    type_url,
};
use support::*;

#[tokio::test]
async fn broken_yaml_keeps_the_last_good_objects_and_reports_the_error() -> anyhow::Result<()> {
    let good = format!(
        "{}---\n{}",
        pod("shop", "a", "198.18.0.1", "a"),
        pod("shop", "b", "198.18.0.2", "b")
    );
    let h = Harness::start(
        &[
            ("pods.yaml", good.clone()),
            ("other.yaml", pod("shop", "c", "198.18.0.3", "c")),
        ],
        |_| {},
    )
    .await?;
    let mut proxy = h.proxy("p").await?;
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    assert_eq!(proxy.recv_ack(type_url::WORKLOAD).await?.resources.len(), 3);

    // Document 1 gets a bad port; pod "a" in document 0 changes too, but the
    // file is all-or-nothing, so nothing of it applies.
    let broken = good.replace("app: a", "app: changed").replace(
        "containerPort: 8080\nstatus:\n  phase: Running\n  podIP: 198.18.0.2",
        "containerPort: eighty\nstatus:\n  phase: Running\n  podIP: 198.18.0.2",
    );
    assert_ne!(broken, good);
    h.write("pods.yaml", &broken)?;
    eventually(|| async { !h.cp.config_errors().is_empty() }).await?;
    let errors = h.cp.config_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert!(e.file.ends_with("pods.yaml"));
    assert_eq!(e.document, Some(1));
    assert_eq!(e.field, "spec.containers[0].ports[0].containerPort");

    // Served over gRPC for braidctl, and on the admin endpoint.
    let mut debug = ControlPlaneDebugClient::connect(format!("http://{}", h.cp.xds_addr())).await?;
    let listed = debug
        .config_errors(ConfigErrorsRequest {})
        .await?
        .into_inner()
        .errors;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].document, 1);
    assert_eq!(listed[0].field, "spec.containers[0].ports[0].containerPort");

    // A good edit elsewhere is pushed alone: no removals of the broken file's objects.
    h.write("other.yaml", &pod("shop", "c", "198.18.0.33", "c"))?;
    let r = proxy.recv_ack(type_url::WORKLOAD).await?;
    assert_eq!(names(&r), vec!["shop/c"]);
    assert!(r.removed_resources.is_empty());

    // A new proxy still gets the last good objects of the broken file.
    let mut late = h.proxy("late").await?;
    late.subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    let all = late.recv_ack(type_url::WORKLOAD).await?;
    assert_eq!(names(&all), vec!["shop/a", "shop/b", "shop/c"]);

    // Fixing the file clears the error and applies the change.
    h.write("pods.yaml", &good.replace("app: a", "app: fixed"))?;
    let r = proxy.recv_ack(type_url::WORKLOAD).await?;
    assert_eq!(names(&r), vec!["shop/a"]);
    eventually(|| async { h.cp.config_errors().is_empty() }).await?;
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn bad_files_at_startup_are_reported_and_the_rest_serves() -> anyhow::Result<()> {
    let files = vec![
        ("ok.yaml", pod("shop", "ok", "198.18.0.1", "ok")),
        (
            "syntax.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: [unclosed\n".to_string(),
        ),
        (
            "unknown.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n".to_string(),
        ),
        (
            "noname.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {}\nspec: {}\n".to_string(),
        ),
        ("badip.yaml", pod("shop", "bad", "198.18.0.300", "bad")),
        ("ignored.txt", "not yaml at all: [".to_string()),
    ];
    let h = Harness::start(&files, |_| {}).await?;
    let errors = h.cp.config_errors();
    let by_file: HashMap<String, _> = errors
        .iter()
        .map(|e| {
            (
                e.file
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                e,
            )
        })
        .collect();
    assert_eq!(by_file.len(), 4, "{errors:#?}");
    assert!(
        by_file["syntax.yaml"].message.contains("invalid YAML"),
        "{:?}",
        by_file["syntax.yaml"]
    );
    assert_eq!(by_file["unknown.yaml"].field, "kind");
    assert!(
        by_file["unknown.yaml"]
            .message
            .contains("apps/v1 Deployment")
    );
    assert_eq!(by_file["noname.yaml"].field, "metadata.name");
    assert!(
        by_file["badip.yaml"].field.starts_with("status.podIP"),
        "{:?}",
        by_file["badip.yaml"]
    );

    let mut proxy = h.proxy("p").await?;
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    assert_eq!(
        names(&proxy.recv_ack(type_url::WORKLOAD).await?),
        vec!["shop/ok"]
    );
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_same_object_in_two_files_is_rejected_until_one_goes() -> anyhow::Result<()> {
    let h = Harness::start(
        &[("a.yaml", pod("shop", "web", "198.18.0.1", "web"))],
        |_| {},
    )
    .await?;
    h.write("b.yaml", &pod("shop", "web", "198.18.0.2", "web"))?;
    eventually(|| async {
        h.cp.config_errors()
            .iter()
            .any(|e| e.file.ends_with("b.yaml") && e.message.contains("already defined"))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}: {:?}", h.cp.config_errors()))?;
    let version = h.cp.version();
    std::fs::remove_file(h.path("a.yaml"))?;
    eventually(|| async { h.cp.config_errors().is_empty() })
        .await
        .map_err(|e| anyhow::anyhow!("{e}: {:?}", h.cp.config_errors()))?;
    h.wait_version(version + 1).await?;
    let mut proxy = h.proxy("p").await?;
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    let r = proxy.recv_ack(type_url::WORKLOAD).await?;
    assert_eq!(names(&r), vec!["shop/web"]);
    let w = <braid_api::braid::workload::v1alpha1::Workload as prost::Message>::decode(
        r.resources[0]
            .resource
            .as_ref()
            .expect("body")
            .value
            .as_slice(),
    )?;
    assert_eq!(
        w.addresses,
        vec![vec![198, 18, 0, 2]],
        "b.yaml's version now serves"
    );
    proxy.expect_nothing(Duration::from_millis(100)).await?;
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_watcher_goes_quiet_after_a_change_even_with_a_broken_file() -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let h = Harness::start(
        &[("ok.yaml", pod("shop", "ok", "198.18.0.1", "ok"))],
        |_| {},
    )
    .await?;
    h.write(
        "broken.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: 1}\n",
    )?;
    eventually(|| async { !h.cp.config_errors().is_empty() }).await?;
    // Reading files must not trigger more rescans (inotify reports reads as
    // access events); a few from the write itself are fine, a loop is not.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = h.cp.metrics().config_scans.load(Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        h.cp.metrics().config_scans.load(Relaxed),
        settled,
        "rescans continue without file changes"
    );
    assert!(settled <= 3, "one write caused {settled} rescans");
    h.cp.shutdown().await;
    Ok(())
}

/// A tiny deterministic generator, so failures are reproducible.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }
}

#[tokio::test]
async fn random_and_truncated_files_never_stop_the_control_plane() -> anyhow::Result<()> {
    let good = format!(
        "{}---\n{}",
        pod("shop", "a", "198.18.0.1", "a"),
        service("shop", "web", "a", "198.19.0.1")
    );
    let h = Harness::start(&[("good.yaml", good.clone())], |_| {}).await?;
    let mut rng = Lcg(7);
    for i in 0..60 {
        let text = match i % 3 {
            0 => good[..rng.next() % good.len()].to_string(),
            1 => (0..rng.next() % 300)
                .map(|_| (b' ' + (rng.next() % 95) as u8) as char)
                .collect(),
            _ => {
                let mut bytes = good.clone().into_bytes();
                for _ in 0..5 {
                    let at = rng.next() % bytes.len();
                    let alphabet = b":-[]{}'\"#&*!|>0a\n ";
                    bytes[at] = alphabet[rng.next() % alphabet.len()];
                }
                String::from_utf8_lossy(&bytes)
                    .replace("name: a", &format!("name: r{i}"))
                    .replace("name: web", &format!("name: web{i}"))
            }
        };
        h.write(&format!("fuzz/{i}.yaml"), &text)?;
    }
    // Still serving, and the good file's objects are all there.
    let version = h.cp.version();
    h.write("late.yaml", &pod("shop", "late", "198.18.0.9", "late"))?;
    h.wait_version(version + 1).await?;
    let mut proxy = h.proxy("p").await?;
    proxy
        .subscribe(type_url::WORKLOAD, &["shop/a", "shop/late"], HashMap::new())
        .await?;
    let r = proxy.recv_ack(type_url::WORKLOAD).await?;
    assert_eq!(names(&r), vec!["shop/a", "shop/late"]);
    assert!(!h.cp.config_errors().is_empty(), "garbage is reported");
    h.cp.shutdown().await;
    Ok(())
}

/// Ends the test binary if the test is still running after `limit`. A scan
/// that loops cannot be interrupted (and, run on the runtime, stops the test
/// too), so without this a regression would hang and grow without bound.
struct Watchdog(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Watchdog {
    fn start(test: &'static str, limit: Duration) -> Self {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = done.clone();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while !seen.load(std::sync::atomic::Ordering::Relaxed) {
                if start.elapsed() > limit {
                    // Not `eprintln!`: the harness would capture it, and exit drops that.
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stderr(),
                        "{test} still running after {limit:?}; exiting"
                    );
                    std::process::exit(101);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test]
async fn edits_apply_after_symlink_loops() -> anyhow::Result<()> {
    let _watchdog = Watchdog::start("edits_apply_after_symlink_loops", Duration::from_secs(20));
    let h = Harness::start(
        &[
            ("shop/pods.yaml", pod("shop", "a", "198.18.0.1", "a")),
            ("other.yaml", pod("shop", "c", "198.18.0.3", "c")),
        ],
        |_| {},
    )
    .await?;
    let mut proxy = h.proxy("p").await?;
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    assert_eq!(proxy.recv_ack(type_url::WORKLOAD).await?.resources.len(), 2);

    // `ln -s . loop; ln -s . loop2`, and one link up from a subfolder.
    std::os::unix::fs::symlink(".", h.path("loop"))?;
    std::os::unix::fs::symlink(".", h.path("loop2"))?;
    std::os::unix::fs::symlink("..", h.path("shop/up"))?;
    h.write("shop/pods.yaml", &pod("shop", "a", "198.18.0.11", "a"))?;
    let r = proxy.recv_ack(type_url::WORKLOAD).await?;
    assert_eq!(names(&r), vec!["shop/a"], "the edit applies");
    assert!(r.removed_resources.is_empty());
    assert!(
        h.cp.config_errors().is_empty(),
        "no object is defined twice through a loop: {:#?}",
        h.cp.config_errors()
    );

    // Still serving: a new proxy gets everything, the admin page answers.
    let mut late = h.proxy("late").await?;
    late.subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    assert_eq!(
        names(&late.recv_ack(type_url::WORKLOAD).await?),
        vec!["shop/a", "shop/c"]
    );
    let page = http_get(h.cp.admin_addr(), "/debug/config-errors").await?;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.ends_with("[]"), "{page}");

    // And once the links are gone, edits keep applying.
    for link in ["loop", "loop2", "shop/up"] {
        std::fs::remove_file(h.path(link))?;
    }
    h.write("other.yaml", &pod("shop", "c", "198.18.0.33", "c"))?;
    let r = proxy.recv_ack(type_url::WORKLOAD).await?;
    assert_eq!(names(&r), vec!["shop/c"]);
    h.cp.shutdown().await;
    Ok(())
}
