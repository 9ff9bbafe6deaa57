//! Builds the book (`book/`) with mdBook, as `cargo xtask test` does in CI:
//! a broken link to a chapter or a page missing from `SUMMARY.md` fails it.
//!
//! mdBook comes from crates.io (`cargo install`, pinned) into a tools
//! directory outside the checkout, `$BRAID_TOOLS_DIR` or
//! `/var/cache/braid/tools`, built once and reused.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// The pinned mdBook.
const MDBOOK_VERSION: &str = "0.5.4";

/// Installs mdBook when needed, then builds the book into a temporary
/// directory (the checkout stays clean).
pub(crate) fn build(root: &Path) -> anyhow::Result<()> {
    let mdbook = ensure_mdbook()?;
    let out = tempfile::tempdir().context("cannot create a directory for the built book")?;
    let status = Command::new(&mdbook)
        .arg("build")
        .arg(root.join("book"))
        .arg("--dest-dir")
        .arg(out.path())
        .status()
        .with_context(|| format!("cannot run {}", mdbook.display()))?;
    if !status.success() {
        bail!("`mdbook build book` failed ({status}); its messages above name the page");
    }
    Ok(())
}

fn tools_dir() -> PathBuf {
    std::env::var_os("BRAID_TOOLS_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/var/cache/braid/tools"), PathBuf::from)
}

/// The pinned mdbook, installed from crates.io on first use.
fn ensure_mdbook() -> anyhow::Result<PathBuf> {
    let dir = tools_dir();
    let mdbook = dir.join("bin").join("mdbook");
    let installed = Command::new(&mdbook)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(MDBOOK_VERSION));
    if installed {
        return Ok(mdbook);
    }
    eprintln!(
        "installing mdbook {MDBOOK_VERSION} into {} (once)",
        dir.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "install",
            "mdbook",
            "--locked",
            "--version",
            MDBOOK_VERSION,
            "--root",
        ])
        .arg(&dir)
        // Its own target directory: the workspace's is trimmed to a budget.
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .status()
        .context("cannot run cargo install")?;
    if !status.success() {
        bail!("`cargo install mdbook --version {MDBOOK_VERSION}` failed ({status})");
    }
    Ok(mdbook)
}
