use super::*;

fn files() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("a.braid.dev.yaml".to_string(), format!("{HEADER}a: 1\n")),
        ("b.braid.dev.yaml".to_string(), format!("{HEADER}b: 2\n")),
    ])
}

fn error_of(result: Result<()>) -> String {
    format!("{:#}", result.expect_err("should fail"))
}

#[test]
fn rendered_crds_have_header_and_names() {
    let files = render_crds().expect("render");
    let text = files
        .get("authorizationpolicies.braid.dev.yaml")
        .expect("AuthorizationPolicy CRD");
    assert!(text.starts_with(HEADER));
    assert!(text.contains("kind: CustomResourceDefinition"));
    let kustomization = files.get(KUSTOMIZATION).expect("the Kustomization file");
    for name in files.keys().filter(|name| *name != KUSTOMIZATION) {
        assert!(
            kustomization.contains(&format!("- {name}\n")),
            "{name} not listed"
        );
    }
}

#[test]
fn write_then_check_passes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("crds");
    write(&dir, &files()).expect("write");
    check(&dir, &files()).expect("fresh files pass the check");
}

#[test]
fn check_names_changed_missing_and_stale_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    fs::write(dir.join("a.braid.dev.yaml"), "hand edited\n").expect("write a");
    fs::write(dir.join("old.braid.dev.yaml"), HEADER).expect("write old");
    fs::write(dir.join(".gitkeep"), "").expect("write dotfile");
    let err = error_of(check(dir, &files()));
    assert!(
        err.contains("changed: ") && err.contains("a.braid.dev.yaml"),
        "{err}"
    );
    assert!(
        err.contains("missing: ") && err.contains("b.braid.dev.yaml"),
        "{err}"
    );
    assert!(
        err.contains("stale") && err.contains("old.braid.dev.yaml"),
        "{err}"
    );
    assert!(!err.contains(".gitkeep"), "{err}");
    assert!(err.contains("run `cargo xtask codegen`"), "{err}");
}

#[test]
fn check_on_missing_directory_reports_every_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = error_of(check(&tmp.path().join("nope"), &files()));
    assert_eq!(err.matches("missing: ").count(), 2, "{err}");
}

#[test]
fn write_removes_stale_generated_files_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let old = dir.join("old.braid.dev.yaml");
    fs::write(&old, format!("{HEADER}old: 0\n")).expect("write old");
    write(dir, &files()).expect("write");
    assert!(!old.exists(), "stale generated file removed");

    let mine = dir.join("notes.md");
    fs::write(&mine, "hand written\n").expect("write notes");
    let err = error_of(write(dir, &files()));
    assert!(err.contains("notes.md"), "{err}");
    assert!(mine.exists(), "hand-written file kept");
}

/// The checked-in manifests match the Rust types (CI also runs
/// `cargo xtask codegen --check`; this catches drift in `cargo test`).
#[test]
fn checked_in_manifests_are_fresh() {
    let root = crate::project_root();
    let result = run(&Args { check: true }, &root);
    if let Err(e) = result {
        panic!("{e:#}");
    }
}
