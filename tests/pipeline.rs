//! The pipeline applies its parts in the documented order, whatever order they were
//! configured in, and the order shows in behaviour.

use buttress::Resilience;
use buttress::bulkhead::BulkheadLayer;
use buttress::circuit_breaker::CircuitBreakerLayer;
use buttress::error::{BoxError, RejectionKind, rejection};
use buttress::fallback::FallbackLayer;
use buttress::rate_limit::RateLimitLayer;
use buttress::retry::{Backoff, Jitter, RetryLayer};
use buttress::timeout::TimeoutLayer;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Service, ServiceExt, service_fn};

fn kind(err: &BoxError) -> Option<RejectionKind> {
    rejection(&**err).map(|r| r.kind())
}

/// The times (since `start`) at which the inner service was called.
#[derive(Clone)]
struct Calls {
    start: Instant,
    at: Arc<Mutex<Vec<Duration>>>,
}

impl Calls {
    fn new() -> Self {
        Calls {
            start: Instant::now(),
            at: Arc::default(),
        }
    }
    fn record(&self) -> usize {
        let mut at = self.at.lock().unwrap();
        at.push(self.start.elapsed());
        at.len()
    }
    fn times(&self) -> Vec<Duration> {
        self.at.lock().unwrap().clone()
    }
}

#[test]
fn configuration_order_does_not_change_the_stack() {
    let breaker = || CircuitBreakerLayer::builder().build().unwrap();
    let retry = || RetryLayer::builder().build().unwrap();
    let timeout = || TimeoutLayer::new(Duration::from_secs(1)).unwrap();

    let a = Resilience::new("a")
        .retry(retry())
        .circuit_breaker(breaker())
        .timeout(timeout());
    let b = Resilience::new("b")
        .timeout(timeout())
        .circuit_breaker(breaker())
        .retry(retry());
    // Both orders give one and the same type: the slots decide, not the calls.
    let both = [a, b];
    assert_eq!(both[0].parts(), ["timeout", "retry", "circuit_breaker"]);
    assert_eq!(both[1].parts(), both[0].parts());
    assert_eq!(both[1].name(), "b");
}

#[tokio::test(start_paused = true)]
async fn an_attempt_timeout_counts_as_a_breaker_failure() {
    let breaker = CircuitBreakerLayer::builder()
        .count_window(2)
        .minimum_calls(2)
        .failure_rate_threshold(50.0)
        .wait_in_open(Duration::from_secs(10))
        .build()
        .unwrap();
    let handle = breaker.handle();
    let calls = Calls::new();
    let c = calls.clone();
    let hangs = service_fn(move |_: u32| {
        c.record();
        std::future::pending::<Result<u32, BoxError>>()
    });
    // The attempt timeout is configured first, the breaker second: it still sits inside.
    let mut svc = Resilience::new("hangs")
        .attempt_timeout(TimeoutLayer::new(Duration::from_millis(100)).unwrap())
        .circuit_breaker(breaker)
        .service(hangs);

    for _ in 0..2 {
        let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
        assert_eq!(kind(&err), Some(RejectionKind::Elapsed));
    }
    assert_eq!(handle.state().as_str(), "open");
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::CircuitOpen));
    assert_eq!(
        calls.times().len(),
        2,
        "the open breaker did not call the service"
    );
}

#[tokio::test(start_paused = true)]
async fn a_breaker_rejection_is_retried_only_after_its_retry_after() {
    let breaker = CircuitBreakerLayer::builder()
        .count_window(1)
        .minimum_calls(1)
        .failure_rate_threshold(100.0)
        .wait_in_open(Duration::from_secs(5))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let handle = breaker.handle();
    let retry = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(1)).with_jitter(Jitter::None))
        .no_budget()
        .max_wait(Duration::from_secs(60))
        .build()
        .unwrap();
    let calls = Calls::new();
    let c = calls.clone();
    let fails_once = service_fn(move |x: u32| {
        let n = c.record();
        async move {
            if n == 1 {
                Err::<u32, BoxError>("first call fails".into())
            } else {
                Ok(x)
            }
        }
    });
    let mut svc = Resilience::new("flaky")
        .circuit_breaker(breaker)
        .retry(retry)
        .service(fails_once);

    let start = Instant::now();
    let out = svc.ready().await.unwrap().call(7).await.unwrap();
    assert_eq!(out, 7);
    let times = calls.times();
    // Attempt 1 failed at 0 and opened the breaker until 5 s; attempt 2 (1 ms later)
    // was rejected by the breaker without reaching the service, with a `retry_after`
    // of 4.999 s; attempt 3 waited exactly that out and went through at 5 s as the
    // half-open probe, whose success closed the breaker.
    assert_eq!(times, [Duration::ZERO, Duration::from_secs(5)]);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    let m = handle.metrics();
    assert_eq!(m.not_permitted, 1, "the breaker refused attempt 2 only");
    assert_eq!(m.state.as_str(), "closed");
}

#[tokio::test(start_paused = true)]
async fn waiting_for_the_bulkhead_counts_against_the_overall_timeout() {
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(10))
        .max_waiting(8)
        .build()
        .unwrap();
    let hangs = service_fn(|_: u32| std::future::pending::<Result<u32, BoxError>>());
    let svc = Resilience::new("slow")
        .bulkhead(bulkhead)
        .timeout(TimeoutLayer::new(Duration::from_secs(1)).unwrap())
        .service(hangs);

    // The first call takes the only slot and holds it (until its own timeout).
    let mut first = svc.clone();
    let holder = tokio::spawn(async move { first.ready().await.unwrap().call(1).await });
    tokio::task::yield_now().await;

    let start = Instant::now();
    let mut second = svc.clone();
    let err = second.ready().await.unwrap().call(2).await.unwrap_err();
    // Cut by the overall timeout after 1 s of waiting, not by the bulkhead's 10 s.
    assert_eq!(kind(&err), Some(RejectionKind::Elapsed));
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    let held = holder.await.unwrap().unwrap_err();
    assert_eq!(kind(&held), Some(RejectionKind::Elapsed));
}

#[tokio::test(start_paused = true)]
async fn the_fallback_answers_for_everything_inside_it() {
    let hangs = service_fn(|_: u32| std::future::pending::<Result<u32, BoxError>>());
    let mut svc = Resilience::new("with-fallback")
        .timeout(TimeoutLayer::new(Duration::from_millis(300)).unwrap())
        .fallback(FallbackLayer::value(99u32))
        .service(hangs);
    let start = Instant::now();
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 99);
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}
#[tokio::test(start_paused = true)]
async fn rate_limit_rejections_do_not_trip_the_breaker() {
    let breaker = CircuitBreakerLayer::builder()
        .count_window(4)
        .minimum_calls(2)
        .failure_rate_threshold(50.0)
        .build()
        .unwrap();
    let handle = breaker.handle();
    let ok = service_fn(|x: u32| async move { Ok::<_, BoxError>(x) });
    let mut svc = Resilience::new("limited")
        .rate_limit(RateLimitLayer::new(1, Duration::from_secs(1), 1).unwrap())
        .circuit_breaker(breaker)
        .service(ok);

    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    for _ in 0..5 {
        let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
        assert_eq!(kind(&err), Some(RejectionKind::RateLimited));
    }
    // The limiter's own refusals say nothing about the backend.
    assert_eq!(handle.state().as_str(), "closed");
    assert_eq!(handle.metrics().failures, 0);
}
