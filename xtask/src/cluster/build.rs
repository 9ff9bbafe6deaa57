//! Building the pinned control plane from the Go module proxy, once.
//!
//! `xtask/cluster/go.mod` pins `k8s.io/kubernetes` and
//! `go.etcd.io/etcd/server/v3`; each program is built with
//! `go build -trimpath -ldflags='-s -w -X …version…' -o
//! <cache>/<version>/bin/<name> <package>`, with the Go caches outside the
//! repository (as `.ci/run` sets them). A stamp file beside `bin/` records what was built; when it matches
//! and every binary is there, nothing is rebuilt.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};

use super::{ETCD_VERSION, KUBERNETES_VERSION};

/// One program of the control plane.
#[derive(Debug, Clone, Copy)]
pub(super) struct Binary {
    pub(super) name: &'static str,
    pub(super) package: &'static str,
}

/// Everything `up` runs, and the `kubectl` that `env` puts on PATH.
pub(super) const BINARIES: [Binary; 4] = [
    Binary {
        name: "etcd",
        package: "go.etcd.io/etcd/server/v3",
    },
    Binary {
        name: "kube-apiserver",
        package: "k8s.io/kubernetes/cmd/kube-apiserver",
    },
    Binary {
        name: "kube-controller-manager",
        package: "k8s.io/kubernetes/cmd/kube-controller-manager",
    },
    Binary {
        name: "kubectl",
        package: "k8s.io/kubernetes/cmd/kubectl",
    },
];

/// Flags of every `go build`: no paths or symbols in the binaries, and the
/// version stamped the way Kubernetes' own build does (`hack/lib/version.sh`),
/// so `kubectl version` and the API server's `/version` say v1.34.x rather
/// than `v0.0.0-master`. `-X` for a package a program lacks is ignored.
pub(super) fn build_flags() -> [String; 2] {
    let version = KUBERNETES_VERSION;
    let mut parts = version.trim_start_matches('v').split('.');
    let major = parts.next().unwrap_or_default();
    let minor = parts.next().unwrap_or_default();
    let mut ldflags = String::from("-ldflags=-s -w");
    for pkg in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        for (var, value) in [
            ("gitVersion", version),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        ] {
            ldflags.push_str(&format!(" -X {pkg}.{var}={value}"));
        }
    }
    ["-trimpath".into(), ldflags]
}

/// The oldest Go that builds k8s.io/kubernetes v1.34 (its go.mod says 1.24).
const MIN_GO: (u32, u32) = (1, 24);

/// What the stamp file holds: the pinned versions, the programs and flags.
/// A change to any of them rebuilds.
pub(super) fn stamp() -> String {
    let mut s = format!("kubernetes {KUBERNETES_VERSION}\netcd {ETCD_VERSION}\n");
    for b in BINARIES {
        s.push_str(&format!("bin {} {}\n", b.name, b.package));
    }
    s.push_str(&format!("flags {}\n", build_flags().join(" ")));
    s
}

/// `<cache>/<version>/bin`.
pub(super) fn bin_dir(cache: &Path) -> PathBuf {
    cache.join(KUBERNETES_VERSION).join("bin")
}

fn stamp_path(cache: &Path) -> PathBuf {
    cache.join(KUBERNETES_VERSION).join("stamp")
}

/// True when every binary exists and the stamp matches [`stamp`].
pub(super) fn up_to_date(cache: &Path) -> bool {
    let bin = bin_dir(cache);
    std::fs::read_to_string(stamp_path(cache)).is_ok_and(|s| s == stamp())
        && BINARIES.iter().all(|b| bin.join(b.name).is_file())
}

/// Builds the binaries unless [`up_to_date`]; returns the bin directory.
pub(super) fn ensure_built(module: &Path, cache: &Path) -> anyhow::Result<PathBuf> {
    let bin = bin_dir(cache);
    if up_to_date(cache) {
        eprintln!(
            "==> using kubernetes {KUBERNETES_VERSION} and etcd {ETCD_VERSION} from {}",
            bin.display()
        );
        return Ok(bin);
    }
    let go = GoEnv::from_env();
    ensure_go()?;
    eprintln!(
        "==> building kubernetes {KUBERNETES_VERSION} and etcd {ETCD_VERSION} into {} \
         (once; GOMODCACHE={}, GOCACHE={})",
        bin.display(),
        go.modcache.display(),
        go.cache.display()
    );
    let downloads = go.modcache.join("cache").join("download");
    let before = dir_size(&downloads);
    let start = Instant::now();

    // Build into a fresh directory beside bin/ and swap it in at the end,
    // so an interrupted build never leaves a half-filled bin/.
    let version_dir = cache.join(KUBERNETES_VERSION);
    let tmp = version_dir.join(format!("bin.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("cannot clear {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let result = build_all(&go, module, &tmp);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let _ = std::fs::remove_file(stamp_path(cache));
    if bin.exists() {
        std::fs::remove_dir_all(&bin).with_context(|| format!("cannot clear {}", bin.display()))?;
    }
    std::fs::rename(&tmp, &bin).with_context(|| format!("cannot move into {}", bin.display()))?;
    std::fs::write(stamp_path(cache), stamp()).context("cannot write the build stamp")?;

    let downloaded = dir_size(&downloads).saturating_sub(before);
    eprintln!(
        "==> built in {:.0}s; {:.0} MB of modules downloaded into GOMODCACHE",
        start.elapsed().as_secs_f64(),
        mb(downloaded)
    );
    Ok(bin)
}

fn build_all(go: &GoEnv, module: &Path, out: &Path) -> anyhow::Result<()> {
    for b in BINARIES {
        let start = Instant::now();
        eprintln!("    go build {}", b.package);
        let mut cmd = Command::new("go");
        cmd.arg("build")
            .args(build_flags())
            .arg("-o")
            .arg(out.join(b.name))
            .arg(b.package)
            .current_dir(module);
        go.apply(&mut cmd);
        let status = cmd.status().context("cannot run go")?;
        if !status.success() {
            bail!("`go build {}` failed ({status})", b.package);
        }
        eprintln!("    {:<24} {:>5.0}s", b.name, start.elapsed().as_secs_f64());
    }
    Ok(())
}

/// The Go caches: from the environment, else `.ci/run`'s defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GoEnv {
    pub(super) modcache: PathBuf,
    pub(super) cache: PathBuf,
    pub(super) flags: String,
}

impl GoEnv {
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self::new(var("GOMODCACHE"), var("GOCACHE"), var("GOFLAGS"))
    }

    pub(super) fn new(
        modcache: Option<String>,
        cache: Option<String>,
        flags: Option<String>,
    ) -> Self {
        let mut flags = flags.unwrap_or_default();
        if !flags.split_whitespace().any(|f| f == "-modcacherw") {
            if !flags.is_empty() {
                flags.push(' ');
            }
            flags.push_str("-modcacherw");
        }
        Self {
            modcache: modcache.map_or_else(|| "/var/cache/braid/go/mod".into(), PathBuf::from),
            cache: cache.map_or_else(|| "/var/cache/braid/go/build".into(), PathBuf::from),
            flags,
        }
    }

    fn apply(&self, cmd: &mut Command) {
        cmd.env("GOMODCACHE", &self.modcache)
            .env("GOCACHE", &self.cache)
            .env("GOFLAGS", &self.flags);
    }
}

/// Fails with an install hint when `go` is missing or too old.
fn ensure_go() -> anyhow::Result<()> {
    let hint = "install Go 1.24+ (k8s.io/kubernetes v1.34 needs it; \
                e.g. `apt-get install -y golang-go` where that is new enough) and run again";
    let output = match Command::new("go").args(["env", "GOVERSION"]).output() {
        Ok(output) if output.status.success() => output,
        Ok(output) => bail!("`go env GOVERSION` failed ({}): {hint}", output.status),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("Go is missing: {hint}")
        }
        Err(e) => return Err(e).context("cannot run go"),
    };
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match parse_go_version(&version) {
        Some(v) if v >= MIN_GO => Ok(()),
        Some(_) => bail!("{version} is too old: {hint}"),
        None => bail!("cannot read the Go version from {version:?}: {hint}"),
    }
}

/// `go1.26.8` → `(1, 26)`; also `go1.24rc1` → `(1, 24)`.
pub(super) fn parse_go_version(v: &str) -> Option<(u32, u32)> {
    let rest = v.strip_prefix("go")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// Bytes in the files under `dir` (0 when it does not exist).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[allow(clippy::cast_precision_loss)]
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO_MOD: &str = include_str!("../../cluster/go.mod");

    #[test]
    fn go_mod_pins_the_same_versions() {
        assert!(
            GO_MOD.contains(&format!("k8s.io/kubernetes {KUBERNETES_VERSION}\n")),
            "go.mod must require k8s.io/kubernetes {KUBERNETES_VERSION}"
        );
        assert!(
            GO_MOD.contains(&format!("go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n")),
            "go.mod must require etcd {ETCD_VERSION}"
        );
        // Every staging module is replaced with its v0.<minor>.<patch> twin.
        let staging = format!("v0.{}", &KUBERNETES_VERSION[3..]);
        let replaces: Vec<&str> = GO_MOD
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("k8s.io/") && l.contains("=>"))
            .collect();
        assert!(replaces.len() >= 30, "{replaces:?}");
        for line in replaces {
            assert!(line.ends_with(&format!(" {staging}")), "{line}");
        }
    }

    #[test]
    fn stamp_names_versions_and_flags() {
        let s = stamp();
        assert!(s.starts_with(&format!(
            "kubernetes {KUBERNETES_VERSION}\netcd {ETCD_VERSION}\n"
        )));
        assert!(s.contains("bin kubectl k8s.io/kubernetes/cmd/kubectl\n"));
        assert!(s.contains("flags -trimpath -ldflags=-s -w -X "));
        assert!(s.contains(" -X k8s.io/component-base/version.gitVersion=v1.34.4 "));
        assert!(s.contains(" -X k8s.io/component-base/version.gitMinor=34 "));
    }

    #[test]
    fn up_to_date_needs_stamp_and_binaries() {
        let cache = tempfile::tempdir().expect("tempdir");
        let bin = bin_dir(cache.path());
        std::fs::create_dir_all(&bin).expect("mkdir");
        for b in BINARIES {
            std::fs::write(bin.join(b.name), "").expect("write");
        }
        assert!(!up_to_date(cache.path()), "no stamp yet");
        std::fs::write(stamp_path(cache.path()), "kubernetes v1.0.0\n").expect("write");
        assert!(!up_to_date(cache.path()), "stale stamp");
        std::fs::write(stamp_path(cache.path()), stamp()).expect("write");
        assert!(up_to_date(cache.path()));
        std::fs::remove_file(bin.join("kubectl")).expect("rm");
        assert!(!up_to_date(cache.path()), "missing binary");
    }

    #[test]
    fn go_env_defaults_and_modcacherw() {
        let env = GoEnv::new(None, None, None);
        assert_eq!(env.modcache, Path::new("/var/cache/braid/go/mod"));
        assert_eq!(env.cache, Path::new("/var/cache/braid/go/build"));
        assert_eq!(env.flags, "-modcacherw");
        let env = GoEnv::new(
            Some("/m".into()),
            Some("/c".into()),
            Some("-mod=mod".into()),
        );
        assert_eq!(env.modcache, Path::new("/m"));
        assert_eq!(env.flags, "-mod=mod -modcacherw");
        let env = GoEnv::new(None, None, Some("-modcacherw".into()));
        assert_eq!(env.flags, "-modcacherw");
    }

    #[test]
    fn go_versions() {
        assert_eq!(parse_go_version("go1.26.8"), Some((1, 26)));
        assert_eq!(parse_go_version("go1.24rc1"), Some((1, 24)));
        assert_eq!(parse_go_version("go1.22"), Some((1, 22)));
        assert_eq!(parse_go_version("devel"), None);
        assert!(parse_go_version("go1.22.1").expect("parse") < MIN_GO);
    }
}
