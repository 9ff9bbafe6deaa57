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
