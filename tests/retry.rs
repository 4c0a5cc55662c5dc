//! The retry layer through tower's `Service` API, on paused tokio time.

use buttress::BoxError;
use buttress::circuit_breaker::error::CircuitOpen;
use buttress::error::{RejectionKind, rejection};
use buttress::pushback;
use buttress::rate_limit::error::RateLimited;
use buttress::retry::error::{BudgetExhausted, RetriesExhausted};
use buttress::retry::{
    Backoff, Decision, DefaultPolicy, Jitter, RetryBudget, RetryEvent, RetryLayer, RetryReason,
    SendOnce,
};
use buttress::timeout::TimeoutLayer;
use buttress_core::Nanos;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

/// A scripted inner service: answers call `n` (from 0) with `script(n)`, records when
/// each call was made, and checks that every call follows a `poll_ready` on the same
/// clone.
#[derive(Clone)]
struct Scripted<F> {
    script: Arc<F>,
    calls: Arc<Mutex<Vec<Instant>>>,
    ready: bool,
}

impl<F> Scripted<F> {
    fn new(script: F) -> Self {
        Scripted {
            script: Arc::new(script),
            calls: Arc::default(),
            ready: false,
        }
    }
    fn calls(&self) -> Arc<Mutex<Vec<Instant>>> {
        self.calls.clone()
    }
}

impl<F, Req, T> Service<Req> for Scripted<F>
where
    F: Fn(u32) -> Result<T, BoxError>,
{
    type Response = T;
    type Error = BoxError;
    type Future = std::future::Ready<Result<T, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Req) -> Self::Future {
        assert!(self.ready, "called a clone that was not made ready");
        self.ready = false;
        let mut calls = self.calls.lock().unwrap();
        let n = calls.len() as u32;
        calls.push(Instant::now());
        std::future::ready((self.script)(n))
    }
}

fn gaps(calls: &Mutex<Vec<Instant>>) -> Vec<Duration> {
    let c = calls.lock().unwrap();
    c.windows(2).map(|w| w[1] - w[0]).collect()
}

fn always_fails(_: u32) -> Result<u32, BoxError> {
    Err("down".into())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn max_attempts_counts_the_first_call() {
    for max in [1, 2, 5] {
        let inner = Scripted::new(always_fails);
        let calls = inner.calls();
        let layer = RetryLayer::builder()
            .max_attempts(max)
            .no_budget()
            .build()
            .unwrap();
        let err = layer.layer(inner).oneshot(1u32).await.unwrap_err();
        assert_eq!(calls.lock().unwrap().len(), max as usize);
        if max == 1 {
            assert_eq!(err.to_string(), "down", "an error not retried is unchanged");
        } else {
            let e = err.downcast_ref::<RetriesExhausted>().expect("wrapped");
            assert_eq!(e.attempts(), max);
            assert_eq!(e.last_error().to_string(), "down");
            assert_eq!(err.to_string(), format!("failed after {max} attempts"));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn success_after_failures_is_returned() {
    let inner = Scripted::new(|n| if n < 2 { Err("down".into()) } else { Ok(n) });
    let calls = inner.calls();
    let layer = RetryLayer::builder()
        .max_attempts(5)
        .no_budget()
        .build()
        .unwrap();
    assert_eq!(layer.layer(inner).oneshot(0u32).await.unwrap(), 2);
    assert_eq!(calls.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn delays_are_exactly_the_seeded_backoff() {
    for jitter in [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ] {
        let backoff = Backoff::exponential(ms(100), 2.0)
            .unwrap()
            .with_cap(Duration::from_secs(2))
            .with_jitter(jitter);
        let inner = Scripted::new(always_fails);
        let calls = inner.calls();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        let layer = RetryLayer::builder()
            .max_attempts(8)
            .backoff(backoff)
            .no_budget()
            .seed(1234)
            .listener(move |e: &RetryEvent| h.lock().unwrap().push(e.delay))
            .build()
            .unwrap();
        let _ = layer.layer(inner).oneshot(0u32).await;

        let mut seed = 1234;
        let mut prev = Nanos::ZERO;
        let expected: Vec<Duration> = (1..8)
            .map(|n| {
                let mut rng = SmallRng::seed_from_u64(seed);
                let d = backoff.delay(n, prev, &mut rng);
                seed = rng.next_u64();
                prev = d;
                d.as_duration()
            })
            .collect();
        assert_eq!(*heard.lock().unwrap(), expected, "{jitter:?}");
        // tokio's timer fires on the next whole millisecond.
        let ceil_ms = |d: &Duration| Duration::from_millis(d.as_nanos().div_ceil(1_000_000) as u64);
        let expected_gaps: Vec<Duration> = expected.iter().map(ceil_ms).collect();
        assert_eq!(gaps(&calls), expected_gaps, "{jitter:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_cap_holds_for_every_jitter() {
    let cap = ms(300);
    for jitter in [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ] {
        let inner = Scripted::new(always_fails);
        let calls = inner.calls();
        let layer = RetryLayer::builder()
            .max_attempts(40)
            .backoff(
                Backoff::exponential(ms(50), 10.0)
                    .unwrap()
                    .with_cap(cap)
                    .with_jitter(jitter),
            )
            .no_budget()
            .build()
            .unwrap();
        let _ = layer.layer(inner).oneshot(0u32).await;
        let gaps = gaps(&calls);
        assert_eq!(gaps.len(), 39);
        assert!(gaps.iter().all(|g| *g <= cap), "{jitter:?}: {gaps:?}");
        if jitter == Jitter::None {
            assert!(gaps[2..].iter().all(|g| *g == cap));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_budget_stops_retries_in_an_outage_and_recovers() {
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(Mutex::new(std::collections::HashSet::new()));
    // Down: every call fails. Up again: the first try of every fifth request fails.
    let inner = {
        let (down, calls) = (down.clone(), calls.clone());
        tower::service_fn(move |id: u32| {
            calls.fetch_add(1, Ordering::Relaxed);
            let first = seen.lock().unwrap().insert(id);
            let fail = down.load(Ordering::Relaxed) || (id % 5 == 0 && first);
            async move {
                if fail {
                    Err::<u32, BoxError>("down".into())
                } else {
                    Ok(id)
                }
            }
        })
    };
    let budget = RetryBudget::builder()
        .retry_ratio(0.2)
        .min_retries_per_sec(1)
        .ttl(Duration::from_secs(10))
        .build()
        .unwrap();
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(ms(1)).with_jitter(Jitter::None))
        .budget(budget)
        .build()
        .unwrap();
    let mut svc = layer.layer(inner);

    // A 10 s outage, 100 requests a second: 1000 requests.
    let mut refused = 0;
    for id in 0..1000 {
        match svc.ready().await.unwrap().call(id).await {
            Err(e) if e.is::<BudgetExhausted>() => {
                assert_eq!(
                    rejection(&*e).unwrap().kind(),
                    RejectionKind::BudgetExhausted
                );
                assert_eq!(e.source().unwrap().to_string(), "down");
                refused += 1
            }
            Err(_) => {}
            Ok(_) => panic!("the backend is down"),
        }
        tokio::time::advance(ms(9)).await;
    }
    let made = calls.load(Ordering::Relaxed);
    // Retries: at most 20% of 1000 requests + the floor of 1/s over 10 s.
    assert!(made <= 1000 + 200 + 10, "{made} calls");
    assert!(made > 1000 + 150, "the budget allowed some retries: {made}");
    assert!(
        refused > 800,
        "most requests were refused a retry: {refused}"
    );

    // Recovered: the budget refills with the new requests and retries go through.
    down.store(false, Ordering::Relaxed);
    tokio::time::advance(Duration::from_secs(20)).await;
    calls.store(0, Ordering::Relaxed);
    for id in 1000..1100 {
        assert_eq!(svc.ready().await.unwrap().call(id).await.unwrap(), id);
        tokio::time::advance(ms(10)).await;
    }
    assert_eq!(
        calls.load(Ordering::Relaxed),
        120,
        "every fifth request retried once"
    );
}

#[tokio::test(start_paused = true)]
async fn the_deadline_stops_a_hopeless_attempt() {
    let inner = Scripted::new(always_fails);
    let calls = inner.calls();
    let layer = RetryLayer::builder()
        .max_attempts(10)
        .backoff(Backoff::constant(Duration::from_secs(1)).with_jitter(Jitter::None))
        .deadline(ms(2500))
        .no_budget()
        .build()
        .unwrap();
    let start = Instant::now();
    let err = layer.layer(inner).oneshot(0u32).await.unwrap_err();
    // Attempts at 0 s, 1 s, 2 s; one at 3 s would start after the deadline.
    assert_eq!(calls.lock().unwrap().len(), 3);
    assert_eq!(
        err.downcast_ref::<RetriesExhausted>().unwrap().attempts(),
        3
    );
    assert_eq!(start.elapsed(), Duration::from_secs(2));

    // With a minimum attempt time, the attempt at 2 s cannot finish either.
    let inner = Scripted::new(always_fails);
    let calls = inner.calls();
    let layer = RetryLayer::builder()
        .max_attempts(10)
        .backoff(Backoff::constant(Duration::from_secs(1)).with_jitter(Jitter::None))
        .deadline(ms(2500))
        .min_attempt_time(ms(600))
        .no_budget()
        .build()
        .unwrap();
    let _ = layer.layer(inner).oneshot(0u32).await;
    assert_eq!(calls.lock().unwrap().len(), 2);
}

/// A client that fails its first call, then is not ready again until `ready_at` (a
/// reconnecting channel): only its readiness is slow.
#[derive(Clone)]
struct Reconnecting {
    ready_at: Instant,
    calls: Arc<AtomicU32>,
    sleep: Option<Arc<Mutex<std::pin::Pin<Box<tokio::time::Sleep>>>>>,
}

impl Service<u32> for Reconnecting {
    type Response = u32;
    type Error = BoxError;
    type Future = std::future::Ready<Result<u32, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.calls.load(Ordering::SeqCst) == 0 || Instant::now() >= self.ready_at {
            return Poll::Ready(Ok(()));
        }
        let at = self.ready_at;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Arc::new(Mutex::new(Box::pin(tokio::time::sleep_until(at)))));
        match sleep.lock().unwrap().as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, _: u32) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if n == 0 { Err("reset".into()) } else { Ok(n) })
    }
}

#[tokio::test(start_paused = true)]
async fn the_deadline_holds_while_the_service_is_not_ready() {
    // The retry is scheduled in time (50 ms after the failure), but the client only
    // becomes ready again at 5 s, after the 1 s deadline: the retry is not sent, and
    // the call ends at the deadline instead of at 5 s.
    let calls = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let inner = Reconnecting {
        ready_at: start + Duration::from_secs(5),
        calls: calls.clone(),
        sleep: None,
    };
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(ms(50)).with_jitter(Jitter::None))
        .deadline(Duration::from_secs(1))
        .min_attempt_time(ms(100))
        .no_budget()
        .build()
        .unwrap();
    let err = layer.layer(inner.clone()).oneshot(0u32).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the retry was never sent");
    // The last instant a retry may start: the deadline less the minimum attempt time.
    assert_eq!(start.elapsed(), ms(900));
    let e = err
        .downcast_ref::<RetriesExhausted>()
        .expect("retries exhausted");
    assert_eq!(e.attempts(), 1);
    assert_eq!(
        rejection(&*err).map(|r| r.kind()),
        Some(RejectionKind::Elapsed),
        "{err}"
    );

    // Ready in time (at 500 ms): the retry goes, and succeeds.
    let calls = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let inner = Reconnecting {
        ready_at: start + ms(500),
        calls: calls.clone(),
        sleep: None,
    };
    let answer = layer.layer(inner).oneshot(0u32).await.unwrap();
    assert_eq!(answer, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), ms(500));
}

/// An HTTP-like response.
#[derive(Debug, Clone)]
struct Resp {
    status: u16,
    retry_after: Option<&'static [u8]>,
    grpc_pushback: Option<&'static [u8]>,
}

/// What an HTTP and gRPC policy built on `buttress::pushback` looks like.
fn http_policy(max: Duration) -> impl Fn(&u32, &Result<Resp, BoxError>) -> Decision + Clone {
    move |_req, result| match result {
        Ok(r) if r.status == 503 || r.status == 429 => {
            if let Some(v) = r.retry_after {
                return match pushback::retry_after_bounded(v, SystemTime::now(), max) {
                    Some(d) => Decision::RetryAfter(d),
                    None => Decision::Return,
                };
            }
            if let Some(v) = r.grpc_pushback {
                return match pushback::grpc_retry_pushback_bounded(v, max) {
                    Some(d) => Decision::RetryAfter(d),
                    None => Decision::Return,
                };
            }
            Decision::Retry
        }
        Ok(_) => Decision::Return,
        Err(e) => DefaultPolicy::decide_error(e),
    }
}

async fn run_pushback(first: Resp) -> (Vec<Duration>, Resp) {
    let inner = Scripted::new(move |n| {
        Ok(if n == 0 {
            first.clone()
        } else {
            Resp {
                status: 200,
                retry_after: None,
                grpc_pushback: None,
            }
        })
    });
    let calls = inner.calls();
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(ms(10)).with_jitter(Jitter::None))
        .policy(http_policy(Duration::from_secs(60)))
        .no_budget()
        .build()
        .unwrap();
    let resp = layer.layer(inner).oneshot(0u32).await.unwrap();
    let g = gaps(&calls);
    (g, resp)
}

#[tokio::test(start_paused = true)]
async fn retry_after_and_grpc_pushback_set_the_delay() {
    let r = |status, retry_after, grpc_pushback| Resp {
        status,
        retry_after,
        grpc_pushback,
    };
    let (g, resp) = run_pushback(r(503, Some(b"7"), None)).await;
    assert_eq!((g, resp.status), (vec![Duration::from_secs(7)], 200));
    let (g, _) = run_pushback(r(429, None, Some(b"1500"))).await;
    assert_eq!(g, vec![ms(1500)]);
    let (g, _) = run_pushback(r(503, None, None)).await;
    assert_eq!(g, vec![ms(10)], "no pushback: the backoff delay");

    // Negative, malformed or too long: no retry, the response is returned.
    for bad in [
        r(503, Some(b"-3"), None),
        r(503, Some(b"soon"), None),
        r(503, Some(b"3600"), None),
        r(503, None, Some(b"-1")),
        r(503, None, Some(b"1.5")),
    ] {
        let (g, resp) = run_pushback(bad.clone()).await;
        assert!(g.is_empty(), "{bad:?} was retried");
        assert_eq!(resp.status, 503);
    }
}

#[tokio::test(start_paused = true)]
async fn a_rejection_retry_after_is_honoured() {
    let inner = Scripted::new(|n| match n {
        0 => Err(Box::new(CircuitOpen::new(Some(ms(2345)))) as BoxError),
        1 => Err(Box::new(RateLimited::new(ms(40))) as BoxError),
        _ => Ok(n),
    });
    let calls = inner.calls();
    let layer = RetryLayer::builder()
        .max_attempts(5)
        .no_budget()
        .build()
        .unwrap();
    assert_eq!(layer.layer(inner).oneshot(0u32).await.unwrap(), 2);
    assert_eq!(gaps(&calls), vec![ms(2345), ms(40)]);

    // No retry_after: final, returned unchanged after one call.
    let inner = Scripted::new(|_| Err::<u32, BoxError>(Box::new(CircuitOpen::new(None))));
    let calls = inner.calls();
    let layer = RetryLayer::builder().no_budget().build().unwrap();
    let err = layer.layer(inner).oneshot(0u32).await.unwrap_err();
    assert!(err.is::<CircuitOpen>());
    assert_eq!(calls.lock().unwrap().len(), 1);

    // A retry_after above max_wait: not waited.
    let inner = Scripted::new(|_| {
        Err::<u32, BoxError>(Box::new(CircuitOpen::new(Some(Duration::from_secs(60)))))
    });
    let calls = inner.calls();
    let layer = RetryLayer::builder()
        .max_wait(Duration::from_secs(5))
        .no_budget()
        .build()
        .unwrap();
    let err = layer.layer(inner).oneshot(0u32).await.unwrap_err();
    assert_eq!(calls.lock().unwrap().len(), 1);
    assert_eq!(
        rejection(&*err).unwrap().retry_after(),
        Some(Duration::from_secs(60))
    );
}

#[tokio::test(start_paused = true)]
async fn rejections_are_found_through_retries_exhausted() {
    let inner = Scripted::new(|_| Err::<u32, BoxError>(Box::new(RateLimited::new(ms(5)))));
    let layer = RetryLayer::builder()
        .max_attempts(2)
        .no_budget()
        .build()
        .unwrap();
    let err = layer.layer(inner).oneshot(0u32).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<RetriesExhausted>().unwrap().attempts(),
        2
    );
    assert_eq!(rejection(&*err).unwrap().kind(), RejectionKind::RateLimited);
}

#[tokio::test(start_paused = true)]
async fn an_inner_timeout_is_retried() {
    let slow_then_fast = {
        let n = Arc::new(AtomicU32::new(0));
        tower::service_fn(move |req: u32| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            async move {
                if i < 2 {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                Ok::<u32, BoxError>(req + i)
            }
        })
    };
    let svc = tower::ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .max_attempts(3)
                .backoff(Backoff::constant(ms(1)).with_jitter(Jitter::None))
                .no_budget()
                .build()
                .unwrap(),
        )
        .layer(TimeoutLayer::new(ms(100)).unwrap())
        .service(slow_then_fast);
    let start = Instant::now();
    assert_eq!(svc.oneshot(10).await.unwrap(), 12);
    assert_eq!(start.elapsed(), ms(202));
}

/// A request that cannot be cloned.
#[derive(Debug)]
struct Stream(u32);

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_be_copied_is_sent_once() {
    let inner = Scripted::new(always_fails);
    let calls = inner.calls();
    let layer = RetryLayer::builder()
        .max_attempts(5)
        .clone_request(SendOnce)
        .no_budget()
        .build()
        .unwrap();
    let err = layer.layer(inner).oneshot(Stream(1)).await.unwrap_err();
    assert_eq!(err.to_string(), "down");
    assert_eq!(calls.lock().unwrap().len(), 1);

    // A copier that copies only small requests.
    let inner = Scripted::new(always_fails);
    let calls = inner.calls();
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .clone_request(|r: &Stream| (r.0 < 10).then_some(Stream(r.0)))
        .backoff(Backoff::constant(ms(1)))
        .no_budget()
        .build()
        .unwrap();
    let mut svc = layer.layer(inner);
    let _ = svc.ready().await.unwrap().call(Stream(50)).await;
    assert_eq!(calls.lock().unwrap().len(), 1);
    let _ = svc.ready().await.unwrap().call(Stream(5)).await;
    assert_eq!(calls.lock().unwrap().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_mid_wait_cancels_everything() {
    let inner = Scripted::new(always_fails);
    let calls = inner.calls();
    let budget = RetryBudget::builder()
        .retry_ratio(0.0)
        .min_retries_per_sec(1)
        .build()
        .unwrap();
    let layer = RetryLayer::builder()
        .max_attempts(5)
        .backoff(Backoff::constant(Duration::from_secs(1)).with_jitter(Jitter::None))
        .budget(budget)
        .build()
        .unwrap();
    let budget = layer.budget().unwrap().clone();
    let mut svc = layer.layer(inner);
    let now = || Nanos::from_secs(1);
    assert_eq!(budget.available(now()), 10);

    let mut fut = Box::pin(ServiceExt::<u32>::ready(&mut svc).await.unwrap().call(0u32));
    // First attempt fails; the future now waits 1 s before the retry.
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(calls.lock().unwrap().len(), 1);
    assert_eq!(budget.available(now()), 9, "the retry took a token");
    tokio::time::advance(ms(500)).await;
    drop(fut);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(calls.lock().unwrap().len(), 1, "no retry after the drop");
    assert_eq!(budget.available(now()), 10, "the unused token came back");
}

#[tokio::test(start_paused = true)]
async fn the_listener_hears_every_retry() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let inner = Scripted::new(|n| match n {
        0 => Err("down".into()),
        1 => Err(Box::new(CircuitOpen::new(Some(ms(70)))) as BoxError),
        _ => Ok(n),
    });
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(ms(20)).with_jitter(Jitter::None))
        .listener(move |e: &RetryEvent| seen.lock().unwrap().push(*e))
        .no_budget()
        .build()
        .unwrap();
    layer.layer(inner).oneshot(0u32).await.unwrap();
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0].attempt, events[0].delay, events[0].reason),
        (2, ms(20), RetryReason::Error)
    );
    assert_eq!(
        (events[1].attempt, events[1].delay, events[1].reason),
        (3, ms(70), RetryReason::Pushback)
    );
}

#[tokio::test(start_paused = true)]
async fn a_retried_response_is_returned_when_attempts_run_out() {
    let inner = Scripted::new(|_| {
        Ok(Resp {
            status: 503,
            retry_after: None,
            grpc_pushback: None,
        })
    });
    let calls = inner.calls();
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(ms(5)))
        .policy(http_policy(Duration::from_secs(1)))
        .no_budget()
        .build()
        .unwrap();
    let resp = layer.layer(inner).oneshot(0u32).await.unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(calls.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_budget() {
    let layer = RetryLayer::builder()
        .max_attempts(2)
        .backoff(Backoff::constant(ms(1)))
        .budget(
            RetryBudget::builder()
                .retry_ratio(0.0)
                .min_retries_per_sec(1)
                .ttl(Duration::from_secs(3))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let inner = Scripted::new(always_fails);
    let calls = inner.calls();
    let a = layer.layer(inner.clone());
    let b = a.clone();
    let c = layer.layer(inner);
    for svc in [a, b, c] {
        for _ in 0..2 {
            let _ = svc.clone().oneshot(0u32).await;
        }
    }
    // 6 requests, and a reserve of 3 retries between all of them.
    assert_eq!(calls.lock().unwrap().len(), 9);
}

/// A service that counts its clones (all clones share the counter).
struct CountsClones {
    clones: Arc<AtomicU32>,
    fail_first: Arc<AtomicU32>,
}

impl Clone for CountsClones {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        CountsClones {
            clones: self.clones.clone(),
            fail_first: self.fail_first.clone(),
        }
    }
}

impl Service<u32> for CountsClones {
    type Response = u32;
    type Error = BoxError;
    type Future = std::future::Ready<Result<u32, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u32) -> Self::Future {
        // The first `fail_first` calls fail.
        let failing = self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        std::future::ready(if failing { Err("down".into()) } else { Ok(req) })
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_that_is_not_retried_clones_no_service() {
    let clones = Arc::new(AtomicU32::new(0));
    let fail_first = Arc::new(AtomicU32::new(0));
    let layer = RetryLayer::builder()
        .backoff(Backoff::constant(ms(10)).with_jitter(Jitter::None))
        .build()
        .unwrap();
    let mut svc = layer.layer(CountsClones {
        clones: clones.clone(),
        fail_first: fail_first.clone(),
    });
    // The layer keeps one clone as the prototype of retries.
    assert_eq!(clones.load(Ordering::SeqCst), 1);
    for i in 0..100 {
        assert_eq!(svc.ready().await.unwrap().call(i).await.unwrap(), i);
    }
    assert_eq!(clones.load(Ordering::SeqCst), 1, "no clone per call");

    // A call that is retried twice clones the prototype once, and the retries answer.
    fail_first.store(2, Ordering::SeqCst);
    assert_eq!(svc.ready().await.unwrap().call(7).await.unwrap(), 7);
    assert_eq!(
        clones.load(Ordering::SeqCst),
        2,
        "one clone for the retries"
    );
    // Clones of the retry service share the prototype.
    let mut other = svc.clone();
    let before = clones.load(Ordering::SeqCst);
    fail_first.store(1, Ordering::SeqCst);
    assert_eq!(other.ready().await.unwrap().call(8).await.unwrap(), 8);
    assert_eq!(clones.load(Ordering::SeqCst), before + 1);
}

#[test]
fn futures_are_send_over_a_service_that_is_send_but_not_sync() {
    fn send<T: Send>(_: &T) {}
    let inner = tower::util::BoxCloneService::new(tower::service_fn(|n: u32| async move {
        Ok::<u32, BoxError>(n)
    }));
    let mut svc = RetryLayer::builder().build().unwrap().layer(inner);
    send(&svc);
    let fut = svc.call(1);
    send(&fut);
}

#[tokio::test(start_paused = true)]
async fn a_seed_gives_each_retried_call_its_own_delays_and_the_same_on_every_run() {
    // Two calls, one after the other, both retried with full jitter: each draws from
    // its own seed, and a layer built with the same seed draws the same delays again.
    async fn run(seed: u64) -> Vec<Duration> {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        let backoff = Backoff::exponential(ms(100), 2.0)
            .unwrap()
            .with_jitter(Jitter::Full);
        let layer = RetryLayer::builder()
            .max_attempts(3)
            .backoff(backoff)
            .no_budget()
            .seed(seed)
            .listener(move |e: &RetryEvent| h.lock().unwrap().push(e.delay))
            .build()
            .unwrap();
        let mut svc = layer.layer(Scripted::new(always_fails));
        for _ in 0..2 {
            let _ = ServiceExt::<u32>::ready(&mut svc)
                .await
                .unwrap()
                .call(0u32)
                .await;
        }
        heard.lock().unwrap().clone()
    }
    let first = run(99).await;
    assert_eq!(first.len(), 4, "two retries per call");
    // The first call's delays are those of the seed itself.
    let mut seed = 99;
    let mut prev = Nanos::ZERO;
    let backoff = Backoff::exponential(ms(100), 2.0)
        .unwrap()
        .with_jitter(Jitter::Full);
    for (n, heard) in (1..3).zip(&first) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let d = backoff.delay(n, prev, &mut rng);
        seed = rng.next_u64();
        prev = d;
        assert_eq!(d.as_duration(), *heard);
    }
    assert_ne!(
        first[..2],
        first[2..],
        "the second call draws from a seed of its own"
    );
    assert_eq!(run(99).await, first, "the same seed, the same delays");
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_waits_past_the_budget_ttl_needs_the_budget_when_it_is_sent() {
    // One retry per request in the last 10 s, no floor. Call A is told to come back in
    // 20 s; by then its withdrawal has aged out, and call B (at 15 s) has spent the
    // budget of the window A's retry would land in: A's retry is not sent.
    let inner = Scripted::new(|n| match n {
        0 => Err("busy".into()),
        1 => Err("down".into()),
        _ => Ok(n),
    });
    let calls = inner.calls();
    let budget = RetryBudget::builder()
        .retry_ratio(1.0)
        .min_retries_per_sec(0)
        .ttl(Duration::from_secs(10))
        .build()
        .unwrap();
    let layer = RetryLayer::builder()
        .max_attempts(2)
        .backoff(Backoff::constant(ms(1)).with_jitter(Jitter::None))
        .budget(budget)
        .policy(|_: &u32, result: &Result<u32, BoxError>| match result {
            Err(e) if e.to_string() == "busy" => Decision::RetryAfter(Duration::from_secs(20)),
            Err(_) => Decision::Retry,
            Ok(_) => Decision::Return,
        })
        .build()
        .unwrap();
    let svc = layer.layer(inner);
    let a = tokio::spawn(svc.clone().oneshot(0u32));
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(
        svc.clone().oneshot(1u32).await.unwrap(),
        2,
        "B retried once"
    );
    let err = a.await.unwrap().unwrap_err();
    let e = err
        .downcast_ref::<BudgetExhausted>()
        .expect("budget exhausted");
    assert_eq!(e.attempts(), 1);
    assert_eq!(calls.lock().unwrap().len(), 3, "A's retry was not sent");
}

/// A service whose calls all fail and whose readiness fails from the second time on
/// (a client whose connection died), counting both.
#[derive(Clone, Default)]
struct Dying {
    readied: Arc<AtomicU32>,
    called: Arc<AtomicU32>,
}

impl Service<u32> for Dying {
    type Response = u32;
    type Error = BoxError;
    type Future = std::future::Ready<Result<u32, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.readied.fetch_add(1, Ordering::SeqCst) == 0 {
            Poll::Ready(Ok(()))
        } else {
            Poll::Ready(Err("connection closed".into()))
        }
    }

    fn call(&mut self, _: u32) -> Self::Future {
        self.called.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err("reset".into()))
    }
}

/// A call that ended between attempts (here its service failed to get ready for the
/// retry) sends nothing more if its future is polled again.
#[tokio::test(start_paused = true)]
async fn a_call_that_ended_between_attempts_sends_nothing_when_polled_again() {
    let inner = Dying::default();
    let mut svc = RetryLayer::builder()
        .max_attempts(3)
        .no_budget()
        .build()
        .unwrap()
        .layer(inner.clone());
    let mut fut = Box::pin(svc.ready().await.unwrap().call(1));
    let err = (&mut fut).await.unwrap_err();
    let exhausted = err.downcast_ref::<RetriesExhausted>().expect("{err}");
    assert_eq!(exhausted.attempts(), 1, "the retry was never sent");
    assert_eq!(inner.called.load(Ordering::SeqCst), 1);
    let again = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    assert!(matches!(again, Poll::Ready(Err(_))));
    assert_eq!(inner.called.load(Ordering::SeqCst), 1, "nothing more sent");
    assert_eq!(
        inner.readied.load(Ordering::SeqCst),
        2,
        "nor made ready again"
    );
}

/// A listener that panics on a retry does not keep the budget's token that retry took.
#[tokio::test(start_paused = true)]
async fn a_panicking_listener_gives_the_retry_token_back() {
    use futures::FutureExt;
    let budget = RetryBudget::builder()
        .retry_ratio(0.0)
        .min_retries_per_sec(1)
        .ttl(Duration::from_secs(10))
        .build()
        .unwrap();
    let layer = RetryLayer::builder()
        .max_attempts(2)
        .budget(budget)
        .listener(|_: &buttress::retry::RetryEvent| panic!("the listener fails"))
        .build()
        .unwrap();
    let budget = layer.budget().expect("a budget").clone();
    let before = budget.available(Nanos::ZERO);
    assert_eq!(before, 10, "the floor: 1/s over 10 s");
    let mut svc = layer.layer(tower::service_fn(|_: u32| async {
        Err::<u32, BoxError>("down".into())
    }));
    let call = svc.ready().await.unwrap().call(1);
    let panicked = std::panic::AssertUnwindSafe(call).catch_unwind().await;
    assert!(panicked.is_err(), "the listener panicked");
    assert_eq!(budget.available(Nanos::ZERO), before, "the token is back");
}
