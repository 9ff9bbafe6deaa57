use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

use super::*;

#[test]
fn classify_decides_from_the_first_bytes() {
    use Protocol::*;
    use Verdict::*;
    let cases: &[(&[u8], Verdict)] = &[
        (b"", NeedMore),
        (b"G", NeedMore),
        (b"GET", NeedMore),
        (b"GET ", Decided(Http1)),
        (b"GET / HTTP/1.1\r\n", Decided(Http1)),
        (b"OPTIONS * HTTP/1.1\r\n", Decided(Http1)),
        (b"PATCH /x HTTP/1.1", Decided(Http1)),
        (b"PRI * HTTP/2.0\r\n", NeedMore),
        (HTTP2_PREFACE, Decided(Http2)),
        (
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04",
            Decided(Http2),
        ),
        // Close to HTTP, but not it.
        (b"GETX", Decided(Opaque)),
        (b"get / HTTP/1.1", Decided(Opaque)),
        (b"PRI * HTTP/1.1", Decided(Opaque)),
        // TLS ClientHello, MySQL-style binary, SSH.
        (b"\x16\x03\x01\x02\x00", Decided(Opaque)),
        (b"\x00\x00\x00\x01", Decided(Opaque)),
        (b"SSH-2.0-OpenSSH", Decided(Opaque)),
    ];
    for (prefix, want) in cases {
        assert_eq!(
            classify(prefix),
            *want,
            "{:?}",
            String::from_utf8_lossy(prefix)
        );
    }
}

#[test]
fn classify_never_panics() {
    // Deterministic pseudo-random inputs, plus every prefix of the
    // interesting strings.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for len in 0..64 {
        for _ in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = classify(&bytes);
        }
    }
    for text in [HTTP2_PREFACE, b"CONNECT example:443 HTTP/1.1".as_slice()] {
        for end in 0..=text.len() {
            let _ = classify(&text[..end]);
        }
    }
}

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    (client, server)
}

#[tokio::test]
async fn detection_consumes_nothing() {
    for (sent, want) in [
        (
            b"GET / HTTP/1.1\r\nhost: x\r\n\r\n".as_slice(),
            Protocol::Http1,
        ),
        (HTTP2_PREFACE, Protocol::Http2),
        (b"\x16\x03\x01\x00\x05hello".as_slice(), Protocol::Opaque),
    ] {
        let (mut client, mut server) = pair().await;
        client.write_all(sent).await.expect("write");
        let got = detect(&server, Duration::from_secs(5))
            .await
            .expect("detect");
        assert_eq!(got, want);
        let mut read = vec![0; sent.len()];
        server.read_exact(&mut read).await.expect("read");
        assert_eq!(read, sent, "every byte is still there");
    }
}

#[tokio::test]
async fn a_split_preface_is_still_http2() {
    let (mut client, server) = pair().await;
    client.write_all(&HTTP2_PREFACE[..5]).await.expect("write");
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        client.write_all(&HTTP2_PREFACE[5..]).await.expect("write");
        client
    });
    let got = detect(&server, Duration::from_secs(5))
        .await
        .expect("detect");
    assert_eq!(got, Protocol::Http2);
    drop(writer.await);
}

#[tokio::test]
async fn a_silent_client_is_opaque_after_the_timeout() {
    // Server-first protocols: the client waits for a greeting.
    let (_client, server) = pair().await;
    let start = Instant::now();
    let got = detect(&server, Duration::from_millis(50))
        .await
        .expect("detect");
    assert_eq!(got, Protocol::Opaque);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "bounded by the timeout"
    );
}

#[tokio::test]
async fn a_client_that_closes_early_is_opaque() {
    let (mut client, server) = pair().await;
    client.write_all(b"GE").await.expect("write");
    client.shutdown().await.expect("shutdown");
    drop(client);
    // Peeking cannot see the end behind unread bytes: the timeout decides.
    let got = detect(&server, Duration::from_millis(200))
        .await
        .expect("detect");
    assert_eq!(got, Protocol::Opaque);
}
