//! The manager against a real CA, on tokio's paused clock: sleeps below are
//! virtual and return once every task has run as far as it can, so the
//! timings asserted are exact, not hoped for.

use std::{sync::Arc, time::Duration};

use tokio::time::{Instant, sleep};

use super::*;
use crate::testing::id;

mod fake;

use fake::{FakeSource, LIFETIME, Mode};

const SECOND: Duration = Duration::from_secs(1);

fn config() -> ManagerConfig {
    ManagerConfig {
        initial_backoff: SECOND,
        max_backoff: 8 * SECOND,
        ..ManagerConfig::default()
    }
}

fn manager(source: &Arc<FakeSource>) -> CertificateManager {
    CertificateManager::new(source.clone(), config())
}

/// Asserts `delay` lies in the renewal window of a [`LIFETIME`] certificate:
/// 40 % to 50 % of it, with a second of slack for the wall clock that passes
/// between issuing and receiving.
fn assert_in_renewal_window(delay: Duration) {
    let (earliest, latest) = (LIFETIME.mul_f64(0.4) - SECOND, LIFETIME / 2);
    assert!(
        earliest <= delay && delay <= latest,
        "renewed after {delay:?}, expected {earliest:?}..={latest:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn first_fetch_issues_and_the_second_hits_the_cache() {
    let source = FakeSource::new();
    let manager = manager(&source);
    let api = id("shop", "api");
    assert!(manager.current(&api).is_none());

    let cert = manager.fetch(&api).await.unwrap();
    assert_eq!(cert.spiffe_id(), &api);
    assert!(cert.remaining() > LIFETIME - SECOND);
    let again = manager.fetch(&api).await.unwrap();
    assert!(Arc::ptr_eq(&cert, &again));
    assert!(Arc::ptr_eq(&cert, &manager.current(&api).unwrap()));
    assert_eq!(source.call_count(), 1);
    assert_eq!(
        manager.trust_bundle().as_ref(),
        Some(source.ca().trust_bundle())
    );

    let web = id("shop", "web");
    assert_eq!(manager.fetch(&web).await.unwrap().spiffe_id(), &web);
    assert_eq!(source.call_count(), 2);
    let status = manager.status();
    assert_eq!(status.len(), 2);
    assert_eq!(status[0].id, api);
    assert_eq!(status[0].not_after, Some(cert.not_after()));
    assert!(status[0].last_renewal.is_some());
    assert_eq!(status[0].consecutive_failures, 0);
    assert_eq!(status[0].last_error, None);
}

#[tokio::test(start_paused = true)]
async fn concurrent_first_fetches_share_one_request() {
    let source = FakeSource::gated();
    let manager = manager(&source);
    let api = id("shop", "api");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (manager, api) = (manager.clone(), api.clone());
            tokio::spawn(async move { manager.fetch(&api).await })
        })
        .collect();
    // Every task is now waiting on the one request.
    sleep(SECOND).await;
    assert_eq!(source.call_count(), 1);
    source.open(1);
    let first = manager.fetch(&api).await.unwrap();
    for task in tasks {
        assert!(Arc::ptr_eq(&task.await.unwrap().unwrap(), &first));
    }
    assert_eq!(source.call_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn renewal_happens_at_half_life_and_reaches_subscribers() {
    let source = FakeSource::new();
    let manager = manager(&source);
    let api = id("shop", "api");
    let first = manager.fetch(&api).await.unwrap();
    let mut updates = manager.watch(&api).await.unwrap();
    assert!(Arc::ptr_eq(&updates.borrow(), &first));

    // Not before the jitter window opens.
    sleep(LIFETIME.mul_f64(0.4) - 2 * SECOND).await;
    assert_eq!(source.call_count(), 1);
    assert!(!updates.has_changed().unwrap());

    for renewals in 1..=2 {
        updates.changed().await.unwrap();
        let renewed = updates.borrow_and_update().clone();
        let calls = source.calls();
        assert_eq!(calls.len(), renewals + 1);
        assert_in_renewal_window(calls[renewals] - calls[renewals - 1]);
        assert_ne!(renewed.leaf(), first.leaf());
        assert!(Arc::ptr_eq(&manager.fetch(&api).await.unwrap(), &renewed));
    }
}

#[tokio::test(start_paused = true)]
async fn failing_renewals_back_off_while_the_current_certificate_serves() {
    let source = FakeSource::new();
    let manager = manager(&source);
    let api = id("shop", "api");
    let first = manager.fetch(&api).await.unwrap();
    let mut updates = manager.watch(&api).await.unwrap();
    source.set_mode(Mode::Unavailable);

    sleep(LIFETIME - 20 * SECOND).await;
    let calls = source.calls();
    assert!(calls.len() >= 6, "{} attempts", calls.len());
    assert_in_renewal_window(calls[1] - calls[0]);
    // Between failed attempts k and k + 1: the upper half of
    // min(1 s * 2^(k-1), 8 s).
    for (k, pair) in calls[1..].windows(2).enumerate() {
        let nominal = config().nominal_backoff(k as u32 + 1, true);
        let delay = pair[1] - pair[0];
        assert!(
            nominal / 2 <= delay && delay <= nominal,
            "retry {k}: {delay:?}"
        );
    }
    assert!(Arc::ptr_eq(&manager.fetch(&api).await.unwrap(), &first));
    let status = &manager.status()[0];
    assert_eq!(status.consecutive_failures as usize, calls.len() - 1);
    assert_eq!(status.not_after, Some(first.not_after()));
    let error = status.last_error.as_deref().unwrap();
    assert!(error.contains("unavailable"), "{error}");
    assert!(!updates.has_changed().unwrap());

    // Recovery before expiry: subscribers get the new certificate.
    source.set_mode(Mode::Issue);
    updates.changed().await.unwrap();
    assert_ne!(updates.borrow().leaf(), first.leaf());
    assert!(Instant::now() - calls[0] < LIFETIME);
    let status = &manager.status()[0];
    assert_eq!(status.consecutive_failures, 0);
    assert_eq!(status.last_error, None);
}

#[tokio::test(start_paused = true)]
async fn an_expired_certificate_is_never_returned() {
    let source = FakeSource::new();
    let manager = manager(&source);
    let api = id("shop", "api");
    manager.fetch(&api).await.unwrap();
    source.set_mode(Mode::Unavailable);

    sleep(LIFETIME + SECOND).await;
    let err = manager.fetch(&api).await.unwrap_err();
    assert!(
        matches!(&err, FetchError::Source { source, .. } if source.is_retryable()),
        "{err}"
    );
    assert!(manager.current(&api).is_none());
    assert!(manager.watch(&api).await.is_err());

    // The next retry, at most the longest backoff away, recovers.
    source.set_mode(Mode::Issue);
    sleep(config().max_backoff + SECOND).await;
    let cert = manager.fetch(&api).await.unwrap();
    assert!(cert.remaining() > LIFETIME - SECOND);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_fails_fast_and_is_retried_slowly() {
    let source = FakeSource::new();
    source.set_mode(Mode::Refuse);
    let manager = manager(&source);
    let api = id("shop", "api");

    let err = manager.fetch(&api).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("no pod on this node"), "{err}");
    // Asking again during the backoff does not reach the source.
    assert_eq!(manager.fetch(&api).await.unwrap_err(), err);
    assert_eq!(source.call_count(), 1);
    assert_eq!(manager.status()[0].consecutive_failures, 1);

    // Refusals are retried after the upper half of the longest backoff.
    let max = config().max_backoff;
    sleep(max / 2 - SECOND).await;
    assert_eq!(source.call_count(), 1);
    sleep(3 * max).await;
    let calls = source.calls();
    assert!(calls.len() >= 4, "{} attempts", calls.len());
    for pair in calls.windows(2) {
        let delay = pair[1] - pair[0];
        assert!(max / 2 <= delay && delay <= max, "{delay:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn unusable_certificates_are_not_served() {
    let api = id("shop", "api");
    for (mode, expected) in [
        (Mode::WrongId, "someone-else"),
        (Mode::ForeignBundle, "does not verify"),
    ] {
        let source = FakeSource::new();
        source.set_mode(mode);
        let err = manager(&source).fetch(&api).await.unwrap_err();
        assert!(matches!(err, FetchError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[tokio::test(start_paused = true)]
async fn forget_stops_renewal_and_wakes_waiters() {
    let source = FakeSource::gated();
    let manager = manager(&source);
    let api = id("shop", "api");
    let waiter = {
        let (manager, api) = (manager.clone(), api.clone());
        tokio::spawn(async move { manager.fetch(&api).await })
    };
    sleep(SECOND).await;
    assert!(manager.forget(&api));
    let err = waiter.await.unwrap().unwrap_err();
    assert_eq!(err, FetchError::Stopped { id: api.clone() });
    assert!(!manager.forget(&api));
    assert!(manager.status().is_empty());

    source.open(10);
    manager.fetch(&api).await.unwrap();
    let mut updates = manager.watch(&api).await.unwrap();
    assert_eq!(source.call_count(), 2);
    manager.forget(&api);
    assert!(updates.changed().await.is_err());
    sleep(3 * LIFETIME).await;
    assert_eq!(source.call_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_manager_stops_every_renewal() {
    let source = FakeSource::new();
    let manager = manager(&source);
    manager.fetch(&id("shop", "api")).await.unwrap();
    manager.fetch(&id("shop", "web")).await.unwrap();
    let mut bundle = manager.watch_trust_bundle();
    drop(manager);
    assert!(bundle.changed().await.is_err());
    sleep(3 * LIFETIME).await;
    assert_eq!(source.call_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_newest_trust_bundle_wins() {
    let source = FakeSource::new();
    let manager = manager(&source);
    let api = id("shop", "api");
    manager.fetch(&api).await.unwrap();
    let old = source.ca();
    let mut bundle = manager.watch_trust_bundle();
    assert_eq!(
        bundle.borrow_and_update().as_ref(),
        Some(old.trust_bundle())
    );

    let new = source.rotate_root();
    bundle.changed().await.unwrap();
    assert_eq!(bundle.borrow().as_ref(), Some(new.trust_bundle()));
    assert_eq!(manager.trust_bundle().as_ref(), Some(new.trust_bundle()));
    let renewed = manager.fetch(&api).await.unwrap();
    assert!(
        crate::tls::verify_chain(
            renewed.chain(),
            new.trust_bundle(),
            rustls::pki_types::UnixTime::now()
        )
        .is_ok()
    );
}
