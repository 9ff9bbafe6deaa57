use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use super::*;

#[test]
fn backoff_doubles_to_a_second_and_resets_on_success() {
    let mut backoff = Backoff::default();
    let now = Instant::now();
    let delays: Vec<_> = (0..10).map(|_| backoff.failed(now).delay).collect();
    assert_eq!(delays[0], Duration::from_millis(5));
    assert_eq!(delays[1], Duration::from_millis(10));
    assert_eq!(delays[7], Duration::from_millis(640));
    assert_eq!(delays[8], MAX_DELAY);
    assert_eq!(delays[9], MAX_DELAY);
    assert_eq!(backoff.succeeded(), Some(10));
    assert_eq!(backoff.failed(now).delay, FIRST_DELAY);
}

#[test]
fn a_burst_of_failures_logs_once_then_reminds() {
    let mut backoff = Backoff::default();
    let start = Instant::now();
    assert_eq!(
        backoff.failed(start).log,
        Some(1),
        "the first failure is logged"
    );
    for i in 1..1000 {
        let at = start + Duration::from_millis(i);
        assert_eq!(backoff.failed(at).log, None, "retry {i} is not logged");
    }
    let later = start + REMIND_EVERY;
    assert_eq!(
        backoff.failed(later).log,
        Some(1000),
        "a reminder counts the retries"
    );
    assert_eq!(backoff.succeeded(), Some(1001));
    assert_eq!(backoff.succeeded(), None, "no burst, no line");
}

/// Out of file descriptors, `accept` fails at once, every time: the gate
/// must sleep between attempts instead of spinning.
#[tokio::test(start_paused = true)]
async fn accept_errors_back_off() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    let mut gate = Gate::new("test");
    let accepting = tokio::spawn(async move {
        gate.accept(move || {
            let n = counted.fetch_add(1, Ordering::Relaxed);
            async move {
                match n {
                    0..200 => Err(io::Error::from_raw_os_error(24)), // EMFILE
                    _ => Ok(()),
                }
            }
        })
        .await
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    let tried = attempts.load(Ordering::Relaxed);
    // 5 ms doubling to 1 s: 8 attempts in the first 1.3 s, then one a second.
    assert!(
        (10..=20).contains(&tried),
        "{tried} attempts in 10 s; expected ~17 with the backoff, not a spin"
    );
    accepting.abort();
}

#[tokio::test]
async fn connection_cap_refuses_excess() -> io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut gate = Gate::new("test").with_limit(2);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(tokio::net::TcpStream::connect(addr).await?);
    }
    let (first, p1) = gate.accept(|| listener.accept()).await;
    let (second, p2) = gate.accept(|| listener.accept()).await;
    assert_eq!(gate.open(), 2);
    // The third is over the cap: accepted and closed, so its client reads EOF.
    let third = tokio::time::timeout(
        Duration::from_millis(300),
        gate.accept(|| listener.accept()),
    )
    .await;
    assert!(third.is_err(), "no connection is admitted over the cap");
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut clients[2], &mut buf),
    )
    .await
    .map_err(|_| io::Error::other("the refused client was not closed"))?;
    assert_eq!(read?, 0, "the refused connection is closed at once");
    // A freed slot admits the next one.
    drop((first, p1));
    let _late = tokio::net::TcpStream::connect(addr).await?;
    let (_conn, _p3) = gate.accept(|| listener.accept()).await;
    assert_eq!(gate.open(), 2);
    drop((second, p2));
    Ok(())
}
