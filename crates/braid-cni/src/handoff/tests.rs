use std::os::fd::{AsFd, OwnedFd};

use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::{socket::SeqPacket, *};

fn inode(fd: impl AsFd) -> u64 {
    rustix::fs::fstat(fd).map(|s| s.st_ino).unwrap_or(0)
}

fn own_netns() -> OwnedFd {
    std::fs::File::open("/proc/self/ns/net")
        .map(OwnedFd::from)
        .expect("open /proc/self/ns/net")
}

/// A raw agent end and a ztunnel-side connection over a socket pair.
fn pair() -> (SeqPacket, HandoffConnection) {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair");
    let raw = SeqPacket::new(a).expect("register");
    let conn = HandoffConnection::new(SeqPacket::new(b).expect("register"));
    (raw, conn)
}

/// Sends a raw packet and returns the ack's error text.
async fn send_raw(
    raw: &SeqPacket,
    json: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> Option<String> {
    raw.send(json, fds).await.expect("send");
    let packet = raw.recv().await.expect("recv").expect("an ack");
    match wire::decode_reply(packet).expect("a valid ack") {
        wire::Reply::Ack { error } => error,
    }
}

#[tokio::test]
async fn pods_round_trip_with_the_namespace_fd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ztunnel.sock");
    let listener = HandoffListener::bind(&path).expect("bind");
    let mode = rustix::fs::stat(&path).expect("stat").st_mode & 0o777;
    assert_eq!(mode, 0o600);

    let server = tokio::spawn(async move {
        let mut conn = listener.accept().await.expect("accept");
        let mut seen = Vec::new();
        while let Some(event) = conn.next().await.expect("event") {
            let answer = match &event {
                PodEvent::Add { uid, .. } if uid == "bad" => Err("no room".to_string()),
                _ => Ok(()),
            };
            seen.push(event);
            conn.ack(answer).await.expect("ack");
        }
        seen
    });

    let netns = own_netns();
    let mut client = HandoffClient::connect(&path).await.expect("connect");
    client
        .add_pod("uid-1", "shop/web-0", netns.as_fd())
        .await
        .expect("add");
    let refused = client.add_pod("bad", "shop/web-1", netns.as_fd()).await;
    assert!(
        matches!(&refused, Err(HandoffError::Rejected { reason, .. }) if reason == "no room"),
        "{refused:?}"
    );
    client.remove_pod("uid-1").await.expect("remove");
    client.snapshot_sent().await.expect("snapshot");
    assert!(!client.is_closed());
    drop(client);

    let seen = server.await.expect("server task");
    assert_eq!(seen.len(), 4, "{seen:?}");
    let PodEvent::Add {
        uid,
        workload,
        netns: received,
    } = &seen[0]
    else {
        panic!("expected add, got {:?}", seen[0]);
    };
    assert_eq!((uid.as_str(), workload.as_str()), ("uid-1", "shop/web-0"));
    assert_eq!(inode(received), inode(&netns));
    assert!(matches!(&seen[2], PodEvent::Remove { uid } if uid == "uid-1"));
    assert!(matches!(seen[3], PodEvent::SnapshotSent));
}

#[tokio::test]
async fn bad_messages_are_answered_and_the_connection_survives() {
    let (raw, mut conn) = pair();
    let server = tokio::spawn(async move {
        let mut errors = Vec::new();
        loop {
            match conn.next().await {
                Ok(Some(event)) => {
                    errors.push(format!("event {event:?}"));
                    conn.ack(Ok(())).await.expect("ack");
                }
                Ok(None) => return errors,
                Err(e) => {
                    assert!(!e.is_fatal(), "{e}");
                    errors.push(e.to_string());
                }
            }
        }
    });
    let netns = own_netns();
    let fd = netns.as_fd();
    let early = send_raw(&raw, br#"{"type":"remove_pod","uid":"a"}"#, &[]).await;
    assert!(early.is_some_and(|e| e.contains("hello must be the first")));
    assert_eq!(
        send_raw(&raw, br#"{"type":"hello","version":1}"#, &[]).await,
        None
    );
    let cases: [(&[u8], Vec<_>, &str); 6] = [
        (br#"{"type":"explode"}"#, vec![], "unknown variant"),
        (
            br#"{"type":"remove_pod","uid":"a","x":1}"#,
            vec![],
            "unknown field",
        ),
        (
            br#"{"type":"add_pod","uid":"a","workload":"ns/p"}"#,
            vec![],
            "must carry 1 fd(s), got 0",
        ),
        (
            br#"{"type":"add_pod","uid":"a","workload":"ns/p"}"#,
            vec![fd, fd],
            "got 2",
        ),
        (
            br#"{"type":"add_pod","uid":"a","workload":"nope"}"#,
            vec![fd],
            "<namespace>/<pod name>",
        ),
        (b"not json", vec![], "malformed"),
    ];
    for (json, fds, want) in cases {
        let error = send_raw(&raw, json, &fds).await;
        assert!(
            error.as_deref().is_some_and(|e| e.contains(want)),
            "{error:?} lacks {want:?}"
        );
    }
    let huge = vec![b' '; MAX_PACKET + 10];
    let error = send_raw(&raw, &huge, &[]).await;
    assert!(error.is_some_and(|e| e.contains("larger than")));
    // Still usable after all that.
    assert_eq!(
        send_raw(&raw, br#"{"type":"snapshot_sent"}"#, &[]).await,
        None
    );
    drop(raw);
    let seen = server.await.expect("server task");
    assert_eq!(seen.len(), 9, "{seen:#?}");
    assert!(seen[8].contains("SnapshotSent"));
}

#[tokio::test]
async fn wrong_version_and_misuse() {
    let (raw, mut conn) = pair();
    let server = tokio::spawn(async move {
        let first = conn.next().await;
        let misuse = conn.ack(Ok(())).await;
        (first, misuse)
    });
    let error = send_raw(&raw, br#"{"type":"hello","version":7}"#, &[]).await;
    assert!(error.is_some_and(|e| e.contains("version 7")));
    let (first, misuse) = server.await.expect("server task");
    assert!(matches!(first, Err(HandoffError::UnsupportedVersion(7))));
    assert!(matches!(misuse, Err(HandoffError::Misuse(_))));
}

#[tokio::test]
async fn bind_replaces_a_stale_socket_but_not_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("z.sock");
    drop(HandoffListener::bind(&path).expect("first bind"));
    let again = HandoffListener::bind(&path).expect("stale socket replaced");
    drop(again);
    let file = dir.path().join("file");
    std::fs::write(&file, "keep me").expect("write");
    let error = HandoffListener::bind(&file).expect_err("not a socket");
    assert!(error.to_string().contains("not a socket"), "{error}");
    assert_eq!(
        std::fs::read_to_string(&file).ok().as_deref(),
        Some("keep me")
    );
}

#[tokio::test]
async fn connect_names_the_missing_socket() {
    let error = HandoffClient::connect("/nonexistent/braid/z.sock")
        .await
        .expect_err("no socket");
    assert!(
        error.to_string().contains("/nonexistent/braid/z.sock"),
        "{error}"
    );
    assert!(error.is_fatal());
}
