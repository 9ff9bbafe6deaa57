//! In-process tests of what an unauthenticated client may make the xDS port
//! store, log and answer: bounded NACK reasons, subscriptions and request
//! buffers, escaped and rate-limited warnings, and a status (never OK) for
//! requests that cannot be read.

mod support;

use std::{
    collections::HashMap,
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use braid_api::{
    braid::admin::v1alpha1::{
        ProxyStatusRequest, control_plane_debug_client::ControlPlaneDebugClient,
    },
    envoy::service::discovery::v3::DeltaDiscoveryRequest,
    google::rpc,
    type_url,
};
use braid_control::xds::{
    frames::{Frames, MAX_REQUEST_BYTES, RETAINED_BUFFER_BYTES},
    stream::{MAX_NACK_REASON_BYTES, MAX_NAMED_SUBSCRIPTIONS},
};
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full, StreamBody};
use prost::Message as _;
use support::*;
use tonic::{
    Code,
    codegen::{Bytes, Service as _, http},
};

/// Log lines written while a guard of [`capture_logs`] lives on this thread
/// (the tests run on a current-thread runtime, so every task logs here).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

/// Sends `body` (gRPC frames, written by hand) as one ADS request stream and
/// returns the status the server ends it with (`grpc-status` 0 is `Ok`).
async fn raw_ads(addr: std::net::SocketAddr, body: Vec<u8>) -> anyhow::Result<tonic::Status> {
    let mut channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{addr}/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(Full::new(Bytes::from(body))))?;
    std::future::poll_fn(|cx| channel.poll_ready(cx)).await?;
    let response = tokio::time::timeout(DEADLINE, channel.call(request)).await??;
    let headers = response.headers().clone();
    let collected = tokio::time::timeout(DEADLINE, response.into_body().collect()).await??;
    // A status can come in the headers (trailers-only) or the trailers.
    let trailers = collected.trailers().cloned().unwrap_or_default();
    tonic::Status::from_header_map(&trailers)
        .or_else(|| tonic::Status::from_header_map(&headers))
        .context("no grpc-status at all")
}

/// A gRPC frame: flag, big-endian length, then `payload`.
fn frame(declared_len: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&declared_len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn undecodable_request_ends_with_invalid_argument() -> anyhow::Result<()> {
    let h = Harness::start(&[], |_| {}).await?;
    // Field 1 (node), length-delimited, claiming 100 bytes where 2 follow.
    let garbage = [0x0a, 0x64, 0xff, 0xff];
    let status = raw_ads(h.cp.xds_addr(), frame(4, &garbage)).await?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status}");
    assert!(status.message().contains("cannot decode"), "{status}");
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn oversized_message_ends_with_resource_exhausted() -> anyhow::Result<()> {
    let h = Harness::start(&[], |_| {}).await?;
    // A 100 MB length prefix with nothing behind it.
    let status = raw_ads(h.cp.xds_addr(), frame(100 << 20, &[])).await?;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
    assert!(status.message().contains("too large"), "{status}");
    // A real 5 MB message, over the 4 MiB limit.
    let big = vec![0u8; 5 << 20];
    let status = raw_ads(h.cp.xds_addr(), frame(5 << 20, &big)).await?;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn oversized_nack_reason_is_truncated() -> anyhow::Result<()> {
    let (logs, _guard) = capture_logs();
    let h = Harness::start(
        &[("p.yaml", pod("shop", "web-0", "198.18.0.1", "web"))],
        |_| {},
    )
    .await?;
    let mut proxy = h.proxy("sidecar~big-nack").await?;
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    let r = proxy.recv().await?;
    proxy.nack(&r, &"x".repeat(3 << 20)).await?;

    let mut debug = ControlPlaneDebugClient::connect(format!("http://{}", h.cp.xds_addr())).await?;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let reason = loop {
        let status = debug
            .proxy_status(ProxyStatusRequest {})
            .await?
            .into_inner();
        let reason = status
            .proxies
            .iter()
            .flat_map(|p| &p.types)
            .find_map(|t| t.last_nack.as_ref().map(|n| n.reason.clone()));
        if reason.is_some() || tokio::time::Instant::now() > deadline {
            break reason.expect("nack recorded");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        reason.len() <= MAX_NACK_REASON_BYTES,
        "{} bytes",
        reason.len()
    );
    assert!(reason.starts_with("xxxx"), "{reason}");
    let body = http_get(h.cp.admin_addr(), "/debug/proxy-status").await?;
    assert!(
        body.len() < 16 * 1024,
        "{} bytes of proxy-status",
        body.len()
    );
    let logged = logs.text();
    assert!(logged.contains("proxy rejected configuration"), "{logged}");
    assert!(logged.len() < 16 * 1024, "{} bytes of log", logged.len());
    h.cp.shutdown().await;
    Ok(())
}

/// Issue 14's figure: 50 open streams that each sent a 3 MiB NACK. tonic's
/// decoder kept a buffer the size of a stream's largest message until the
/// stream closed (150 MB here); the server's decoder drops it once the
/// message is handled. Asserted on the decoder, not on RSS, which the other
/// tests in this process move.
#[tokio::test]
async fn open_streams_do_not_retain_large_request_buffers() -> anyhow::Result<()> {
    type Chunk = Result<hyper::body::Frame<Bytes>, tonic::Status>;
    let first = DeltaDiscoveryRequest {
        type_url: type_url::WORKLOAD.into(),
        ..Default::default()
    };
    let nack = DeltaDiscoveryRequest {
        response_nonce: "1".into(),
        error_detail: Some(rpc::Status {
            code: Code::InvalidArgument as i32,
            message: "x".repeat(3 << 20),
            ..Default::default()
        }),
        ..first.clone()
    };
    let mut wire = Vec::new();
    for request in [&first, &nack] {
        let payload = request.encode_to_vec();
        wire.extend(frame(u32::try_from(payload.len())?, &payload));
    }
    let mut open = Vec::new();
    for _ in 0..50 {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Chunk>();
        // HTTP/2 DATA frames are 16 KiB by default.
        for chunk in wire.chunks(16 << 10) {
            tx.unbounded_send(Ok(hyper::body::Frame::data(Bytes::copy_from_slice(chunk))))?;
        }
        let mut frames = Frames::new(
            tonic::body::Body::new(StreamBody::new(rx)),
            MAX_REQUEST_BYTES,
        );
        assert_eq!(frames.next().await.context("first request")??, first);
        let got = frames.next().await.context("the NACK")??;
        assert_eq!(got.error_detail.map(|s| s.message.len()), Some(3 << 20));
        // The sender stays: the stream is still open.
        open.push((tx, frames));
    }
    let retained: usize = open.iter().map(|(_, f)| f.retained_bytes()).sum();
    assert!(
        retained <= open.len() * RETAINED_BUFFER_BYTES,
        "{retained} bytes retained by {} open streams",
        open.len()
    );
    Ok(())
}

#[tokio::test]
async fn named_subscriptions_are_bounded() -> anyhow::Result<()> {
    let h = Harness::start(&[], |_| {}).await?;
    let mut proxy = h.proxy("p").await?;
    let names: Vec<String> = (0..=MAX_NAMED_SUBSCRIPTIONS)
        .map(|i| format!("ns/w-{i}"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    proxy
        .subscribe(type_url::WORKLOAD, &names, HashMap::new())
        .await?;
    let error = proxy.recv().await.expect_err("the stream is refused");
    let error = error.to_string();
    assert!(error.contains("exhausted"), "{error}");
    assert!(error.contains("named subscriptions"), "{error}");
    // And its state is gone with it.
    let debug = ControlPlaneDebugClient::connect(format!("http://{}", h.cp.xds_addr())).await?;
    eventually(|| {
        let mut debug = debug.clone();
        async move {
            debug
                .proxy_status(ProxyStatusRequest {})
                .await
                .is_ok_and(|s| s.into_inner().proxies.is_empty())
        }
    })
    .await?;
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn peer_strings_are_escaped_in_logs() -> anyhow::Result<()> {
    let (logs, _guard) = capture_logs();
    let h = Harness::start(
        &[("p.yaml", pod("shop", "web-0", "198.18.0.1", "web"))],
        |_| {},
    )
    .await?;
    let forged = "\n2030-01-01T00:00:00.000000Z ERROR forged: line\x1b[2J";
    let mut proxy = h.proxy(&format!("evil{forged}")).await?;
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    let r = proxy.recv().await?;
    proxy.nack(&r, &format!("bad{forged}")).await?;
    proxy
        .send(DeltaDiscoveryRequest {
            type_url: format!("type.example/x{forged}"),
            resource_names_subscribe: vec!["*".into()],
            ..Default::default()
        })
        .await?;
    eventually(|| {
        let logs = logs.clone();
        async move {
            let text = logs.text();
            text.contains("proxy rejected configuration") && text.contains("ignoring request")
        }
    })
    .await?;
    let text = logs.text();
    assert!(!text.contains('\x1b'), "raw ESC in the log: {text:?}");
    assert!(
        !text
            .lines()
            .any(|l| l.contains("ERROR forged") && !l.contains("WARN")),
        "a forged line: {text}"
    );
    assert!(text.contains("evil\\n2030-01-01"), "{text}");
    assert!(text.contains("\\u{1b}[2J"), "{text}");
    h.cp.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn unknown_type_url_warning_is_rate_limited() -> anyhow::Result<()> {
    let (logs, _guard) = capture_logs();
    let h = Harness::start(&[], |_| {}).await?;
    let mut proxy = h.proxy("p").await?;
    for i in 0..500 {
        proxy
            .send(DeltaDiscoveryRequest {
                type_url: format!("type.example/unknown-{i}"),
                ..Default::default()
            })
            .await?;
    }
    // A request of a known type after them: once it is answered, all 500
    // were handled.
    proxy
        .subscribe(type_url::WORKLOAD, &[], HashMap::new())
        .await?;
    proxy.recv().await?;
    let warnings = logs
        .text()
        .lines()
        .filter(|l| l.contains("ignoring request for a type"))
        .count();
    // The burst, and at most a few more if the test ran slowly; the count of
    // what was dropped is shown by the next line that passes (unit-tested).
    assert!(
        (1..=20).contains(&warnings),
        "{warnings} warnings for 500 requests"
    );
    h.cp.shutdown().await;
    Ok(())
}
