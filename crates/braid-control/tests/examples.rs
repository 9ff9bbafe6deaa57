//! The repository's `examples/` directory loads without errors (the README's
//! quick start serves it).

use std::path::Path;

use braid_control::{Config, ControlPlane};

#[tokio::test]
async fn examples_load_cleanly() -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let cp = ControlPlane::start(Config::for_tests(dir)).await?;
    assert!(cp.config_errors().is_empty(), "{:#?}", cp.config_errors());
    assert_eq!(cp.version(), 1, "the examples publish one initial snapshot");
    cp.shutdown().await;
    Ok(())
}
