//! The timeout layer through tower's `Service` API, on paused tokio time.

use buttress::BoxError;
use buttress::error::{RejectionKind, rejection};
use buttress::timeout::error::Elapsed;
use buttress::timeout::{TimeoutFor, TimeoutLayer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

/// Sets its flag when dropped, to observe cancellation.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Answers request `ms` after `ms` milliseconds; `dropped` tells whether the last call's
/// future was dropped before it finished.
#[derive(Clone, Default)]
struct Slow {
    dropped: Arc<AtomicBool>,
    finished: Arc<AtomicU32>,
}

impl Service<u64> for Slow {
    type Response = u64;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<u64, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, ms: u64) -> Self::Future {
        let flag = DropFlag(self.dropped.clone());
        let finished = self.finished.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            finished.fetch_add(1, Ordering::SeqCst);
            std::mem::forget(flag);
            Ok(ms)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_in_time_passes() {
    let svc = TimeoutLayer::new(Duration::from_millis(100))
        .unwrap()
        .layer(Slow::default());
    assert_eq!(svc.clone().oneshot(0).await.unwrap(), 0);
    assert_eq!(svc.oneshot(99).await.unwrap(), 99);
}

#[tokio::test(start_paused = true)]
async fn expiry_fails_with_elapsed_and_drops_the_inner_future() {
    let inner = Slow::default();
    let dropped = inner.dropped.clone();
    let finished = inner.finished.clone();
    let mut svc = TimeoutLayer::new(Duration::from_millis(100))
        .unwrap()
        .layer(inner);
    let start = Instant::now();
    let mut fut = Box::pin(svc.ready().await.unwrap().call(10_000));
    let err = (&mut fut).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert!(err.is::<Elapsed>());
    assert_eq!(rejection(&*err).unwrap().kind(), RejectionKind::Elapsed);
    assert_eq!(err.to_string(), "request timed out");
    // Dropped at expiry, while the response future itself is still alive.
    assert!(
        dropped.load(Ordering::SeqCst),
        "the inner future was cancelled"
    );
    // Polling again after expiry keeps answering Elapsed.
    let waker = futures::task::noop_waker();
    let again = fut.as_mut().poll(&mut Context::from_waker(&waker));
    assert!(matches!(again, Poll::Ready(Err(e)) if e.is::<Elapsed>()));
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "it never ran to completion"
    );
}

#[tokio::test(start_paused = true)]
async fn the_limit_counts_from_the_first_poll() {
    let svc = TimeoutLayer::new(Duration::from_millis(100))
        .unwrap()
        .layer(Slow::default());
    // Called now, first polled 80 ms later: a 60 ms call ends 140 ms after `call`, in
    // time only because the 100 ms count from the first poll, not from `call`.
    let mut first = svc.clone();
    let fut = first.ready().await.unwrap().call(60);
    tokio::time::advance(Duration::from_millis(80)).await;
    assert!(fut.await.is_ok());
    // And a 160 ms call is cut at 100 ms from its first poll.
    let start = Instant::now();
    assert!(svc.clone().oneshot(160).await.unwrap_err().is::<Elapsed>());
    assert_eq!(start.elapsed(), Duration::from_millis(100));
}

/// A limit that runs from the call, as a client's deadline does.
#[derive(Clone)]
struct FromCall(Duration);

impl TimeoutFor<u64> for FromCall {
    fn timeout_for(&self, _: &u64) -> Option<Duration> {
        Some(self.0)
    }

    fn counts_from_call(&self) -> bool {
        true
    }
}

#[tokio::test(start_paused = true)]
async fn a_limit_from_the_call_counts_the_time_before_the_first_poll() {
    let svc =
        TimeoutLayer::per_request(FromCall(Duration::from_millis(100))).layer(Slow::default());
    // Called now, first polled 80 ms later: a 60 ms call would end 140 ms after the
    // call, so it is cut at 100 ms from the call, 20 ms after its first poll.
    let mut first = svc.clone();
    let fut = first.ready().await.unwrap().call(60);
    tokio::time::advance(Duration::from_millis(80)).await;
    let polled = Instant::now();
    assert!(fut.await.unwrap_err().is::<Elapsed>());
    assert_eq!(polled.elapsed(), Duration::from_millis(20));
    // A call first polled after its whole limit has passed is cut at that first poll.
    let mut late = svc.clone();
    let fut = late.ready().await.unwrap().call(1);
    tokio::time::advance(Duration::from_millis(150)).await;
    let polled = Instant::now();
    assert!(fut.await.unwrap_err().is::<Elapsed>());
    assert_eq!(polled.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn per_request_durations() {
    // The request says how long it may take: its own value plus 50 ms, and none at all
    // for 0.
    let layer =
        TimeoutLayer::per_request(|ms: &u64| (*ms != 0).then(|| Duration::from_millis(*ms + 50)));
    let svc = layer.layer(tower::service_fn(|ms: u64| async move {
        let wait = if ms == 0 { 10_000 } else { ms * 2 };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        Ok::<u64, BoxError>(ms)
    }));
    assert!(svc.clone().oneshot(30).await.is_ok(), "60 ms < 80 ms");
    assert!(svc.clone().oneshot(100).await.unwrap_err().is::<Elapsed>());
    let start = Instant::now();
    assert_eq!(svc.oneshot(0).await.unwrap(), 0, "no limit");
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through() {
    let svc = TimeoutLayer::new(Duration::from_secs(1))
        .unwrap()
        .layer(tower::service_fn(|_: u64| async {
            Err::<u64, std::io::Error>(std::io::Error::other("refused"))
        }));
    let err = svc.oneshot(1).await.unwrap_err();
    assert_eq!(err.to_string(), "refused");
    assert!(rejection(&*err).is_none());
}

// On real time (nothing here sleeps): tokio's timer rounds a deadline up to its next
// millisecond tick, so a zero-length sleep would let through whatever finished before
// that tick.
#[tokio::test]
async fn a_zero_limit_lets_through_only_a_call_ready_at_once() {
    // A per-request limit of zero (an exhausted deadline): a call that answers at once
    // passes; one that needs even a single yield is cut at its first poll, without
    // waiting for the timer's next tick.
    let layer = TimeoutLayer::per_request(|_: &bool| Some(Duration::ZERO));
    let svc = layer.layer(tower::service_fn(|yields: bool| async move {
        if yields {
            tokio::task::yield_now().await;
        }
        Ok::<bool, BoxError>(yields)
    }));
    assert!(!svc.clone().oneshot(false).await.unwrap());
    let err = svc.oneshot(true).await.unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
}
