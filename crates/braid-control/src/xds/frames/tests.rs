use braid_api::{envoy::service::discovery::v3::DeltaDiscoveryRequest, google::rpc};
use futures::{FutureExt as _, StreamExt as _, channel::mpsc};
use http_body_util::StreamBody;
use hyper::body::{Bytes, Frame};
use prost::Message as _;

use super::*;

type Chunk = Result<Frame<Bytes>, Status>;

/// A body that yields `chunks`, then ends.
fn body(chunks: Vec<Chunk>) -> Body {
    Body::new(StreamBody::new(futures::stream::iter(chunks)))
}

/// A body fed through the returned sender; it stays open while that lives.
fn open_body() -> (mpsc::UnboundedSender<Chunk>, Body) {
    let (tx, rx) = mpsc::unbounded();
    (tx, Body::new(StreamBody::new(rx)))
}

fn data(bytes: &[u8]) -> Chunk {
    Ok(Frame::data(Bytes::copy_from_slice(bytes)))
}

/// A gRPC frame: flag, big-endian length, then `payload`.
fn frame(flag: u8, declared_len: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&declared_len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn encoded(request: &DeltaDiscoveryRequest) -> Vec<u8> {
    let payload = request.encode_to_vec();
    frame(0, payload.len() as u32, &payload)
}

fn request(type_url: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.into(),
        ..Default::default()
    }
}

/// A NACK whose reason is `bytes` long.
fn nack(bytes: usize) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        response_nonce: "1".into(),
        error_detail: Some(rpc::Status {
            code: 3,
            message: "x".repeat(bytes),
            ..Default::default()
        }),
        ..request("t")
    }
}

async fn collect(frames: Frames) -> Vec<Result<DeltaDiscoveryRequest, FrameError>> {
    frames.collect().await
}

#[tokio::test]
async fn messages_split_across_chunks_decode_in_order() {
    let mut wire = encoded(&request("a"));
    wire.extend(encoded(&nack(100)));
    let chunks = wire.chunks(3).map(data).collect();
    let got = collect(Frames::new(body(chunks), MAX_REQUEST_BYTES)).await;
    let got: Vec<_> = got.into_iter().map(|r| r.expect("decodes")).collect();
    assert_eq!(got, [request("a"), nack(100)]);
}

#[tokio::test]
async fn several_messages_in_one_chunk_decode_in_order() {
    let mut wire = Vec::new();
    for name in ["a", "b", "c"] {
        wire.extend(encoded(&request(name)));
    }
    let got = collect(Frames::new(body(vec![data(&wire)]), MAX_REQUEST_BYTES)).await;
    let got: Vec<_> = got.into_iter().map(|r| r.expect("decodes")).collect();
    assert_eq!(got, [request("a"), request("b"), request("c")]);
}

#[tokio::test]
async fn announced_length_over_the_limit_is_too_large() {
    let got = collect(Frames::new(
        body(vec![data(&frame(0, 100 << 20, &[]))]),
        MAX_REQUEST_BYTES,
    ))
    .await;
    assert!(
        matches!(got[..], [Err(FrameError::TooLarge { len, limit })] if len == 100 << 20 && limit == MAX_REQUEST_BYTES),
        "{got:?}"
    );
}

#[tokio::test]
async fn garbage_is_a_decode_error_and_ends_the_stream() {
    // Field 1 (node), length-delimited, claiming 100 bytes where 2 follow.
    let mut wire = frame(0, 4, &[0x0a, 0x64, 0xff, 0xff]);
    wire.extend(encoded(&request("after")));
    let got = collect(Frames::new(body(vec![data(&wire)]), MAX_REQUEST_BYTES)).await;
    assert!(matches!(got[..], [Err(FrameError::Decode(_))]), "{got:?}");
}

#[tokio::test]
async fn compressed_flag_is_refused() {
    let got = collect(Frames::new(
        body(vec![data(&frame(1, 2, &[0, 0]))]),
        MAX_REQUEST_BYTES,
    ))
    .await;
    assert!(
        matches!(got[..], [Err(FrameError::Compressed { flag: 1 })]),
        "{got:?}"
    );
}

#[tokio::test]
async fn eof_inside_a_message_is_an_error() {
    let mut wire = encoded(&request("a"));
    wire.extend(frame(0, 10, &[1, 2, 3]));
    let got = collect(Frames::new(body(vec![data(&wire)]), MAX_REQUEST_BYTES)).await;
    assert!(
        matches!(got[..], [Ok(_), Err(FrameError::Truncated { buffered: 8 })]),
        "{got:?}"
    );
    // A header cut short too.
    let got = collect(Frames::new(body(vec![data(&[0, 0])]), MAX_REQUEST_BYTES)).await;
    assert!(
        matches!(got[..], [Err(FrameError::Truncated { buffered: 2 })]),
        "{got:?}"
    );
}

#[tokio::test]
async fn cancel_ends_quietly_and_other_body_errors_are_transport() {
    let chunks = vec![
        data(&encoded(&request("a"))),
        Err(Status::cancelled("reset")),
    ];
    let got = collect(Frames::new(body(chunks), MAX_REQUEST_BYTES)).await;
    assert!(matches!(got[..], [Ok(_)]), "{got:?}");
    let chunks = vec![Err(Status::unknown("connection lost"))];
    let got = collect(Frames::new(body(chunks), MAX_REQUEST_BYTES)).await;
    assert!(
        matches!(got[..], [Err(FrameError::Transport(_))]),
        "{got:?}"
    );
}

#[tokio::test]
async fn announced_length_costs_nothing_until_the_bytes_arrive() {
    let (tx, body) = open_body();
    let mut frames = Frames::new(body, MAX_REQUEST_BYTES);
    tx.unbounded_send(data(&frame(0, MAX_REQUEST_BYTES as u32, &[0; 10])))
        .expect("send");
    assert!(frames.next().now_or_never().is_none(), "waits for the rest");
    assert!(
        frames.retained_bytes() < 1024,
        "{}",
        frames.retained_bytes()
    );
}

#[tokio::test]
async fn large_message_buffer_is_released() {
    let (tx, body) = open_body();
    let mut frames = Frames::new(body, MAX_REQUEST_BYTES);
    tx.unbounded_send(data(&encoded(&request("a"))))
        .expect("send");
    assert_eq!(
        frames.next().await.expect("a request").expect("decodes"),
        request("a")
    );

    let big = encoded(&nack(3 << 20));
    let (first, second) = big.split_at(big.len() / 2);
    // HTTP/2 delivers DATA frames of 16 KiB; polls in between are dropped,
    // as in the stream task's `select!`.
    for chunk in first.chunks(16 << 10) {
        tx.unbounded_send(data(chunk)).expect("send");
        assert!(frames.next().now_or_never().is_none(), "incomplete");
    }
    // Sized by what arrived, never past the message.
    assert!(
        frames.retained_bytes() <= big.len(),
        "{}",
        frames.retained_bytes()
    );
    for chunk in second.chunks(16 << 10) {
        tx.unbounded_send(data(chunk)).expect("send");
    }
    let got = frames.next().await.expect("the NACK").expect("decodes");
    assert_eq!(got, nack(3 << 20));
    // The stream is still open, and holds no large buffer.
    assert!(
        frames.retained_bytes() <= RETAINED_BUFFER_BYTES,
        "{} bytes retained",
        frames.retained_bytes()
    );
    assert!(frames.next().now_or_never().is_none(), "still open");
}
