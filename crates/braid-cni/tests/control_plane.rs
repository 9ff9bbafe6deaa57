//! The xDS mode source against the real control plane (in process, on a
//! temp YAML directory): the modes the agent acts on are the ones
//! braid-control computes.

use std::time::Duration;

use braid_cni::agent::{ModeError, XdsModes, resolve};
use braid_control::{Config, ControlPlane};

const CONFIG: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: inventory
  labels:
    braid.dev/mode: ambient
---
apiVersion: v1
kind: Pod
metadata:
  name: stock-0
  namespace: inventory
spec:
  nodeName: node-a
  containers:
  - name: app
    image: example/stock
status:
  phase: Running
  podIP: 198.18.2.10
---
apiVersion: v1
kind: Pod
metadata:
  name: opted-out
  namespace: inventory
  labels:
    braid.dev/mode: none
spec:
  nodeName: node-a
  containers:
  - name: app
    image: example/stock
status:
  phase: Running
  podIP: 198.18.2.11
"#;

#[tokio::test]
async fn modes_come_from_the_control_plane() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("inventory.yaml"), CONFIG).expect("write config");
    let cp = ControlPlane::start(Config::for_tests(dir.path()))
        .await
        .expect("control plane");
    let uri = format!("http://{}", cp.xds_addr());
    let modes = XdsModes::start(&uri, "node-a", None, None).expect("xDS client");

    let wait = Duration::from_secs(10);
    let stock = resolve(&modes, "inventory/stock-0", wait)
        .await
        .expect("stock-0");
    assert!(stock.captured(), "{stock:?}");
    let opted_out = resolve(&modes, "inventory/opted-out", wait)
        .await
        .expect("opted-out");
    assert!(!opted_out.captured(), "{opted_out:?}");
    let ghost = resolve(&modes, "inventory/ghost", Duration::from_millis(100)).await;
    assert!(matches!(ghost, Err(ModeError::Unknown { .. })), "{ghost:?}");
    drop(modes);
    cp.shutdown().await;
}
