use super::*;

const SOCKET: &str = "/var/run/braid/cni.sock";

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

fn json_of(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

const LIST: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "k8s-pod-network",
  "plugins": [
    {"type": "ptp", "ipam": {"type": "host-local", "subnet": "198.18.0.0/16"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}"#;

#[test]
fn appends_last_to_the_first_file_and_is_idempotent() {
    let dir = dir_with(&[("10-net.conflist", LIST), ("20-other.conflist", LIST)]);
    let first = dir.path().join("10-net.conflist");
    let socket = Path::new(SOCKET);
    assert_eq!(
        install(dir.path(), socket).expect("install"),
        Installed::Added(first.clone())
    );
    let config = json_of(&first);
    let plugins = config["plugins"].as_array().expect("plugins");
    let types: Vec<&str> = plugins.iter().filter_map(|p| p["type"].as_str()).collect();
    assert_eq!(types, ["ptp", "portmap", "braid-cni"]);
    assert_eq!(plugins[2]["agentSocket"], SOCKET);
    assert_eq!(
        plugins[0]["ipam"]["subnet"], "198.18.0.0/16",
        "others untouched"
    );
    assert_eq!(config["name"], "k8s-pod-network");

    let written = std::fs::metadata(&first)
        .expect("stat")
        .modified()
        .expect("mtime");
    assert_eq!(
        install(dir.path(), socket).expect("again"),
        Installed::Present(first.clone())
    );
    let after = std::fs::metadata(&first)
        .expect("stat")
        .modified()
        .expect("mtime");
    assert_eq!(written, after, "an unchanged file is not rewritten");
    assert_eq!(
        json_of(&dir.path().join("20-other.conflist")),
        serde_json::from_str::<Value>(LIST).expect("json")
    );

    assert!(remove(dir.path()).expect("remove"));
    assert_eq!(
        json_of(&first),
        serde_json::from_str::<Value>(LIST).expect("json")
    );
    assert!(!remove(dir.path()).expect("remove again"));
}

#[test]
fn a_misplaced_or_stale_entry_is_moved_last_with_the_new_socket() {
    let stale = r#"{"cniVersion": "1.0.0", "name": "net", "plugins": [
        {"type": "braid-cni", "agentSocket": "/old.sock"},
        {"type": "ptp"}
    ]}"#;
    let dir = dir_with(&[("05-net.conflist", stale)]);
    let path = dir.path().join("05-net.conflist");
    assert_eq!(
        install(dir.path(), Path::new(SOCKET)).expect("install"),
        Installed::Added(path.clone())
    );
    let config = json_of(&path);
    assert_eq!(
        config["plugins"],
        json!([{"type": "ptp"}, {"type": "braid-cni", "agentSocket": SOCKET}])
    );
}

#[test]
fn a_single_plugin_conf_becomes_a_conflist_in_its_place() {
    let conf =
        r#"{"cniVersion": "0.4.0", "name": "bridge-net", "type": "bridge", "bridge": "cni0"}"#;
    let dir = dir_with(&[("10-bridge.conf", conf), (".hidden.conflist", LIST)]);
    let list = dir.path().join("10-bridge.conflist");
    assert_eq!(
        install(dir.path(), Path::new(SOCKET)).expect("install"),
        Installed::Added(list.clone())
    );
    assert!(!dir.path().join("10-bridge.conf").exists());
    assert_eq!(
        json_of(&list),
        json!({
            "cniVersion": "0.4.0",
            "name": "bridge-net",
            "plugins": [
                {"type": "bridge", "bridge": "cni0"},
                {"type": "braid-cni", "agentSocket": SOCKET}
            ]
        })
    );
}

#[test]
fn a_single_plugin_json_also_becomes_a_conflist() {
    let conf = r#"{"cniVersion": "1.0.0", "name": "pods", "type": "ptp"}"#;
    let dir = dir_with(&[("10-pods.json", conf)]);
    let list = dir.path().join("10-pods.conflist");
    assert_eq!(
        install(dir.path(), Path::new(SOCKET)).expect("install"),
        Installed::Added(list.clone())
    );
    assert!(!dir.path().join("10-pods.json").exists());
    assert_eq!(
        json_of(&list)["plugins"],
        json!([{"type": "ptp"}, {"type": "braid-cni", "agentSocket": SOCKET}])
    );
}

#[test]
fn errors_name_the_file_and_what_is_wrong() {
    let empty = tempfile::tempdir().expect("tempdir");
    let error = install(empty.path(), Path::new(SOCKET)).expect_err("no config");
    assert!(matches!(error, ChainError::NoConfig(_)), "{error}");
    assert!(!remove(empty.path()).expect("nothing to remove"));

    for (text, expected) in [
        ("{not json", "not JSON"),
        (
            r#"{"cniVersion": "1.0.0", "name": "x", "plugins": {}}"#,
            "`plugins` is not a list",
        ),
        (
            r#"{"cniVersion": "1.0.0", "type": "bridge"}"#,
            "`name` is missing",
        ),
        (r#"{"name": "x"}"#, "neither `plugins`"),
    ] {
        let ext = if text.contains("plugins") {
            "conflist"
        } else {
            "conf"
        };
        let name = format!("10-net.{ext}");
        let dir = dir_with(&[(name.as_str(), text)]);
        let error = install(dir.path(), Path::new(SOCKET)).expect_err(text);
        let message = error.to_string();
        assert!(
            message.contains(&name) && message.contains(expected),
            "{text}: {message}"
        );
        // The bad file is left as it was.
        assert_eq!(
            std::fs::read_to_string(dir.path().join(&name)).expect("read"),
            text
        );
    }
}
