//! The proxy's HTTP endpoints: each listener answers only its own paths, so
//! the config dump never shows on the metrics or readiness port.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use braid_proxy::admin::{AdminView, Role, serve};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

struct View {
    ready: AtomicBool,
}

impl AdminView for View {
    fn config_dump(&self) -> serde_json::Value {
        serde_json::json!({"captured_pods": [{"uid": "u1", "workload": "shop/web"}]})
    }
    fn metrics(&self) -> String {
        "braid_ztunnel_captured_pods 1\n".into()
    }
    fn ready(&self) -> Result<(), String> {
        if self.ready.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("not synced with the control plane yet".into())
        }
    }
}

async fn get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut tcp = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_string(&mut response),
    )
    .await??;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

async fn start(role: Role, view: Arc<View>) -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, braid_listen::Gate::new("test"), role, view));
    Ok(addr)
}

#[tokio::test]
async fn each_port_serves_its_own_paths() -> anyhow::Result<()> {
    let view = Arc::new(View {
        ready: AtomicBool::new(false),
    });
    let admin = start(Role::Admin, view.clone()).await?;
    let metrics = start(Role::Metrics, view.clone()).await?;
    let readiness = start(Role::Readiness, view.clone()).await?;

    let (status, body) = get(admin, "/config_dump").await?;
    assert_eq!(status, 200);
    let dump: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(dump["captured_pods"][0]["workload"], "shop/web");

    assert_eq!(
        get(metrics, "/metrics").await?,
        (200, "braid_ztunnel_captured_pods 1\n".into())
    );
    assert_eq!(
        get(metrics, "/config_dump").await?.0,
        404,
        "no config on the metrics port"
    );
    assert_eq!(get(readiness, "/config_dump").await?.0, 404);

    let (status, body) = get(readiness, "/healthz/ready").await?;
    assert_eq!(status, 503);
    assert!(body.contains("not synced"), "{body}");
    view.ready.store(true, Ordering::Relaxed);
    assert_eq!(
        get(readiness, "/healthz/ready").await?,
        (200, "ready\n".into())
    );
    Ok(())
}
