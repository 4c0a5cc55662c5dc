//! The circuit breaker through tower's `Service` API, on paused tokio time.

use buttress::circuit_breaker::{CircuitBreakerLayer, State};
use buttress::classify::Outcome;
use buttress::error::{BoxError, RejectionKind, rejection};
use futures::FutureExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{advance, sleep};
use tower::{Layer, Service, ServiceExt};

/// What the backend does with one request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Req {
    Ok,
    Fail,
    /// Answer after this long, failing or not.
    After(Duration, bool),
    /// Never answer.
    Hang,
    /// Panic while being polled.
    Panic,
    /// A client error, classified as ignored by `ignore_404`.
    NotFound,
}

/// A test backend counting its calls and readiness polls; `hung_readiness` makes
/// `poll_ready` pend forever.
#[derive(Clone, Default)]
struct Backend {
    calls: Arc<AtomicUsize>,
    readiness_polls: Arc<AtomicUsize>,
    hung_readiness: bool,
}

type BoxFut = Pin<Box<dyn Future<Output = Result<u16, BoxError>> + Send>>;

impl Service<Req> for Backend {
    type Response = u16;
    type Error = BoxError;
    type Future = BoxFut;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.readiness_polls.fetch_add(1, Ordering::SeqCst);
        if self.hung_readiness {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, req: Req) -> BoxFut {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            match req {
                Req::Ok => Ok(200),
                Req::Fail => Err("backend failed".into()),
                Req::After(d, fail) => {
                    sleep(d).await;
                    if fail {
                        Err("backend failed".into())
                    } else {
                        Ok(200)
                    }
                }
                Req::Hang => std::future::pending().await,
                Req::Panic => panic!("backend panicked"),
                Req::NotFound => Ok(404),
            }
        })
    }
}

fn ignore_404(r: &Result<u16, BoxError>) -> Outcome {
    match r {
        Ok(404) => Outcome::Ignored,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

async fn send<S>(svc: &mut S, req: Req) -> Result<u16, BoxError>
where
    S: Service<Req, Response = u16, Error = BoxError>,
{
    svc.ready().await?.call(req).await
}

fn retry_after_of(r: &Result<u16, BoxError>) -> Option<Option<Duration>> {
    let err = r.as_ref().err()?;
    let rej = rejection(&**err)?;
    assert_eq!(rej.kind(), RejectionKind::CircuitOpen);
    assert_eq!(err.to_string(), "circuit open");
    Some(rej.retry_after())
}

fn is_rejection(r: &Result<u16, BoxError>) -> bool {
    retry_after_of(r).is_some()
}

#[tokio::test(start_paused = true)]
async fn trips_at_exactly_the_threshold_and_not_before_minimum_calls() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(10)
        .minimum_calls(5)
        .failure_rate_threshold(40.0)
        .build()
        .unwrap();
    let h = layer.handle();
    let mut svc = layer.layer(Backend::default());
    // Four failures: 100 % but under minimum_calls.
    for _ in 0..4 {
        assert!(send(&mut svc, Req::Fail).await.is_err());
        assert_eq!(h.state(), State::Closed);
    }
    assert_eq!((h.metrics().calls, h.metrics().failures), (4, 4));
    // The fifth call fills minimum_calls: 5 of 5 trips it.
    assert!(send(&mut svc, Req::Fail).await.is_err());
    assert_eq!(h.state(), State::Open);

    // At exactly the threshold: 2 failures of 4 (50 %) is over it but under
    // minimum_calls, so closed; the fifth call, a success, makes 2 of 5 = 40 %, exactly
    // the threshold (inclusive), and trips the breaker the moment the window holds
    // minimum_calls.
    h.reset();
    let mut svc2 = layer.layer(Backend::default());
    for req in [Req::Fail, Req::Fail, Req::Ok, Req::Ok] {
        send(&mut svc2, req).await.ok();
        assert_eq!(h.state(), State::Closed);
    }
    assert_eq!((h.metrics().calls, h.metrics().failures), (4, 2));
    send(&mut svc2, Req::Ok).await.unwrap();
    assert_eq!(h.state(), State::Open);

    // Just under the threshold from minimum_calls on stays closed: 1 of 5 (20 %, the
    // closest five calls come to 40 % from below), 2 of 6, 2 of 7, 3 of 8 (37.5 %),
    // 3 of 9; then 4 of 10, exactly 40 % again, trips it.
    h.reset();
    let mut svc3 = layer.layer(Backend::default());
    let under = [
        Req::Ok,
        Req::Ok,
        Req::Ok,
        Req::Ok,
        Req::Fail,
        Req::Fail,
        Req::Ok,
        Req::Fail,
        Req::Ok,
    ];
    for req in under {
        send(&mut svc3, req).await.ok();
        assert_eq!(h.state(), State::Closed);
    }
    assert_eq!((h.metrics().calls, h.metrics().failures), (9, 3));
    send(&mut svc3, Req::Fail).await.ok();
    assert_eq!(h.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn threshold_is_inclusive() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(4)
        .minimum_calls(4)
        .failure_rate_threshold(50.0)
        .build()
        .unwrap();
    let h = layer.handle();
    let mut svc = layer.layer(Backend::default());
    for req in [Req::Fail, Req::Ok, Req::Ok] {
        send(&mut svc, req).await.ok();
    }
    assert_eq!(h.state(), State::Closed);
    send(&mut svc, Req::Fail).await.ok(); // 2 of 4 = 50 %
    assert_eq!(h.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn the_oldest_outcome_leaves_the_count_window() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(4)
        .minimum_calls(4)
        .failure_rate_threshold(75.0)
        .build()
        .unwrap();
    let h = layer.handle();
    let mut svc = layer.layer(Backend::default());
    for req in [Req::Fail, Req::Fail, Req::Ok, Req::Ok] {
        send(&mut svc, req).await.ok();
    }
    assert_eq!(h.metrics().failures, 2);
    // Each new outcome pushes out the oldest: F F O O | O -> F O O O.
    send(&mut svc, Req::Ok).await.unwrap();
    let m = h.metrics();
    assert_eq!((m.calls, m.failures), (4, 1));
    send(&mut svc, Req::Fail).await.ok(); // O O O F
    assert_eq!(h.metrics().failures, 1);
    send(&mut svc, Req::Fail).await.ok(); // O O F F
    send(&mut svc, Req::Ok).await.ok(); // O F F O
    assert_eq!(h.state(), State::Closed);
    send(&mut svc, Req::Fail).await.ok(); // F F O F = 75 %
    assert_eq!(h.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn buckets_expire_from_the_time_window() {
    // 10 s in 5 buckets of 2 s.
    let layer = CircuitBreakerLayer::builder()
        .time_window(Duration::from_secs(10), 5)
        .minimum_calls(4)
        .failure_rate_threshold(50.0)
        .build()
        .unwrap();
    let h = layer.handle();
    let mut svc = layer.layer(Backend::default());
    send(&mut svc, Req::Fail).await.ok(); // t = 0, bucket [0, 2)
    advance(Duration::from_secs(3)).await;
    send(&mut svc, Req::Fail).await.ok(); // t = 3, bucket [2, 4)
    send(&mut svc, Req::Ok).await.ok();
    assert_eq!(h.metrics().calls, 3);
    // At t = 10 the bucket [0, 2) has left: its failure is gone.
    advance(Duration::from_secs(7)).await;
    let m = h.metrics();
    assert_eq!((m.calls, m.failures), (2, 1));
    send(&mut svc, Req::Ok).await.ok();
    send(&mut svc, Req::Ok).await.ok(); // 1 of 4: closed
    assert_eq!(h.state(), State::Closed);
    // Had the first failure stayed, this would be 3 of 6 = 50 %; it is 2 of 5.
    send(&mut svc, Req::Fail).await.ok();
    assert_eq!(h.state(), State::Closed);
    send(&mut svc, Req::Fail).await.ok(); // 3 of 6
    assert_eq!(h.state(), State::Open);
    // Everything expires after a quiet window.
    h.reset();
    send(&mut svc, Req::Fail).await.ok();
    advance(Duration::from_secs(20)).await;
    assert_eq!(h.metrics().calls, 0);
}

/// Trips a breaker with `count_window(2).minimum_calls(2)`.
async fn trip<S: Service<Req, Response = u16, Error = BoxError>>(svc: &mut S) {
    send(svc, Req::Fail).await.ok();
    send(svc, Req::Fail).await.ok();
}

#[tokio::test(start_paused = true)]
async fn open_rejects_without_calling_and_waits_grow_then_reset_on_close() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(2)
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(1))
        .open_backoff(2.0, Duration::from_secs(5))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let h = layer.handle();
    let backend = Backend::default();
    let mut svc = layer.layer(backend.clone());
    trip(&mut svc).await;
    assert_eq!(h.state(), State::Open);
    let calls = backend.calls.load(Ordering::SeqCst);
    let r = send(&mut svc, Req::Ok).await;
    assert_eq!(retry_after_of(&r), Some(Some(Duration::from_secs(1))));
    assert_eq!(
        backend.calls.load(Ordering::SeqCst),
        calls,
        "not called while open"
    );
    advance(Duration::from_millis(400)).await;
    let r = send(&mut svc, Req::Ok).await;
    assert_eq!(retry_after_of(&r), Some(Some(Duration::from_millis(600))));

    // Each failed probe re-opens for twice as long, capped at 5 s.
    let mut expected = vec![];
    let mut waited = vec![];
    advance(Duration::from_millis(600)).await;
    for wait in [2, 4, 5, 5] {
        assert!(send(&mut svc, Req::Fail).await.is_err()); // the probe fails
        assert_eq!(h.state(), State::Open);
        let r = send(&mut svc, Req::Ok).await;
        waited.push(retry_after_of(&r).unwrap().unwrap());
        expected.push(Duration::from_secs(wait));
        // One tick before the wait ends, still open.
        advance(Duration::from_secs(wait) - Duration::from_millis(1)).await;
        assert!(is_rejection(&send(&mut svc, Req::Ok).await));
        advance(Duration::from_millis(1)).await;
    }
    assert_eq!(waited, expected);
    // A successful probe closes; the next trip waits the first wait again.
    send(&mut svc, Req::Ok).await.unwrap();
    assert_eq!(h.state(), State::Closed);
    trip(&mut svc).await;
    let r = send(&mut svc, Req::Ok).await;
    assert_eq!(retry_after_of(&r), Some(Some(Duration::from_secs(1))));
    assert!(h.metrics().not_permitted >= 10);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_n_racing_tasks() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(2)
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(1))
        .permitted_calls_in_half_open(3)
        .build()
        .unwrap();
    let h = layer.handle();
    let backend = Backend::default();
    let mut svc = layer.layer(backend.clone());
    trip(&mut svc).await;
    advance(Duration::from_secs(1)).await;
    let before = backend.calls.load(Ordering::SeqCst);
    let mut tasks = vec![];
    for _ in 0..20 {
        let mut s = svc.clone();
        tasks.push(tokio::spawn(async move {
            send(&mut s, Req::After(Duration::from_secs(1), false)).await
        }));
    }
    tokio::task::yield_now().await;
    let mut ok = 0;
    let mut rejected = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(rejection(&*e).unwrap().kind(), RejectionKind::CircuitOpen);
                rejected += 1;
            }
        }
    }
    assert_eq!((ok, rejected), (3, 17));
    assert_eq!(backend.calls.load(Ordering::SeqCst) - before, 3);
    assert_eq!(h.state(), State::Closed);
}

#[test]
fn half_open_admits_exactly_n_on_a_multi_thread_runtime() {
    // Worker threads racing on the state word. A zero open wait lets the breaker go
    // half-open on the first call after the trip, so nothing waits on the wall clock.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let layer = CircuitBreakerLayer::builder()
            .count_window(2)
            .minimum_calls(2)
            .wait_in_open(Duration::ZERO)
            .permitted_calls_in_half_open(4)
            .build()
            .unwrap();
        let h = layer.handle();
        let backend = Backend::default();
        let svc = layer.layer(backend.clone());
        trip(&mut svc.clone()).await;
        assert_eq!(h.state(), State::Open);
        let before = backend.calls.load(Ordering::SeqCst);
        let mut joins = vec![];
        for _ in 0..16 {
            let mut s = svc.clone();
            joins.push(tokio::spawn(async move {
                let mut fut = s.ready().await.unwrap().call(Req::Hang);
                // Pending: admitted (and the probe is kept). Ready: rejected.
                let admitted = (&mut fut).now_or_never().is_none();
                (admitted, fut)
            }));
        }
        let mut held = vec![];
        for j in joins {
            let (admitted, fut) = j.await.unwrap();
            if admitted {
                held.push(fut);
            }
        }
        assert_eq!(held.len(), 4);
        assert_eq!(backend.calls.load(Ordering::SeqCst) - before, 4);
        assert_eq!(h.state(), State::HalfOpen);
    });
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_frees_its_slot_and_counts_nothing() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(2)
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(1))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let h = layer.handle();
    let mut svc = layer.layer(Backend::default());
    trip(&mut svc).await;
    advance(Duration::from_secs(1)).await;
    let probe = svc.ready().await.unwrap().call(Req::Hang);
    assert_eq!(h.state(), State::HalfOpen);
    // The only slot is taken.
    assert!(is_rejection(&send(&mut svc, Req::Ok).await));
    drop(probe);
    // Freed: the next call is the probe, and it closes the breaker.
    send(&mut svc, Req::Ok).await.unwrap();
    assert_eq!(h.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_probe_frees_its_slot_and_counts_nothing() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(2)
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(1))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let h = layer.handle();
    let mut svc = layer.layer(Backend::default());
    trip(&mut svc).await;
    advance(Duration::from_secs(1)).await;
    let fut = svc.ready().await.unwrap().call(Req::Panic);
    let joined = tokio::spawn(fut).await;
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(h.state(), State::HalfOpen);
    send(&mut svc, Req::Ok).await.unwrap();
    assert_eq!(h.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn ignored_outcomes_are_not_counted_and_free_probe_slots() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(2)
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(1))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap()
        .with_classifier(ignore_404);
    let h = layer.handle();
    let mut svc = layer.layer(Backend::default());
    send(&mut svc, Req::NotFound).await.unwrap();
    assert_eq!(h.metrics().calls, 0);
    trip(&mut svc).await;
    advance(Duration::from_secs(1)).await;
    send(&mut svc, Req::NotFound).await.unwrap();
    assert_eq!(
        h.state(),
        State::HalfOpen,
        "an ignored probe decides nothing"
    );
    send(&mut svc, Req::Ok).await.unwrap();
    assert_eq!(h.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_late_outcome_from_before_a_transition_is_not_counted() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(2)
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(1))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let h = layer.handle();
    let mut svc = layer.layer(Backend::default());
    // A slow call starts while closed...
    let slow = svc
        .ready()
        .await
        .unwrap()
        .call(Req::After(Duration::from_secs(5), true));
    let slow = tokio::spawn(slow);
    trip(&mut svc).await;
    advance(Duration::from_secs(1)).await;
    // ...a probe is admitted in half-open and hangs...
    let probe = svc.ready().await.unwrap().call(Req::Hang);
    // ...and the closed-era failure lands now: it must not decide the half-open test.
    advance(Duration::from_secs(4)).await;
    assert!(slow.await.unwrap().is_err());
    assert_eq!(h.state(), State::HalfOpen);
    drop(probe);
    // After closing, another straggler from an earlier generation changes nothing.
    let late = svc
        .ready()
        .await
        .unwrap()
        .call(Req::After(Duration::from_secs(1), true));
    let late = tokio::spawn(late);
    tokio::task::yield_now().await; // the probe above (admitted) is in flight
    h.reset();
    advance(Duration::from_secs(1)).await;
    assert!(late.await.unwrap().is_err());
    assert_eq!(h.metrics().calls, 0);
}

#[tokio::test(start_paused = true)]
async fn probes_that_never_report_reopen_after_max_wait_in_half_open() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(2)
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(1))
        .open_backoff(3.0, Duration::from_secs(60))
        .permitted_calls_in_half_open(2)
        .max_wait_in_half_open(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let h = layer.handle();
    let mut svc = layer.layer(Backend::default());
    trip(&mut svc).await;
    advance(Duration::from_secs(1)).await;
    let p1 = svc.ready().await.unwrap().call(Req::Hang);
    let p2 = svc.ready().await.unwrap().call(Req::Hang);
    advance(Duration::from_millis(9_999)).await;
    let r = send(&mut svc, Req::Ok).await;
    assert_eq!(
        retry_after_of(&r),
        Some(None),
        "slots full, not yet expired"
    );
    assert_eq!(h.state(), State::HalfOpen);
    advance(Duration::from_millis(1)).await;
    let r = send(&mut svc, Req::Ok).await;
    // Re-opened, as a failed test: the wait has grown (1 s * 3).
    assert_eq!(retry_after_of(&r), Some(Some(Duration::from_secs(3))));
    assert_eq!(h.state(), State::Open);
    drop((p1, p2));
    assert_eq!(h.state(), State::Open, "stale probes change nothing");
}

#[tokio::test(start_paused = true)]
async fn poll_ready_does_not_touch_a_hung_backend_while_open() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(2)
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(1))
        .build()
        .unwrap();
    let h = layer.handle();
    h.force_open();
    let backend = Backend {
        hung_readiness: true,
        ..Backend::default()
    };
    let mut svc = layer.layer(backend.clone());
    // Ready at once although the backend never is; the call fails in its future.
    let r = tokio::time::timeout(Duration::from_secs(1), send(&mut svc, Req::Ok))
        .await
        .expect("did not block");
    assert_eq!(retry_after_of(&r), Some(None));
    assert_eq!(backend.readiness_polls.load(Ordering::SeqCst), 0);
    assert_eq!(backend.calls.load(Ordering::SeqCst), 0);
    // Closed again, readiness comes from the backend.
    h.reset();
    let pending = tokio::time::timeout(Duration::from_secs(1), svc.ready()).await;
    assert!(pending.is_err());
    assert!(backend.readiness_polls.load(Ordering::SeqCst) >= 1);
}

#[tokio::test(start_paused = true)]
async fn reset_between_poll_ready_and_call_does_not_call_an_unready_backend() {
    let layer = CircuitBreakerLayer::builder().build().unwrap();
    let h = layer.handle();
    h.force_open();
    let backend = Backend::default();
    let mut svc = layer.layer(backend.clone());
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    h.reset();
    let r = svc.call(Req::Ok).await;
    assert_eq!(retry_after_of(&r), Some(Some(Duration::ZERO)));
    assert_eq!(backend.calls.load(Ordering::SeqCst), 0);
    assert_eq!(h.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn forced_open_and_disabled() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(2)
        .minimum_calls(2)
        .build()
        .unwrap();
    let h = layer.handle();
    let backend = Backend::default();
    let mut svc = layer.layer(backend.clone());
    h.force_open();
    assert_eq!(h.state(), State::ForcedOpen);
    advance(Duration::from_secs(3600)).await;
    assert_eq!(retry_after_of(&send(&mut svc, Req::Ok).await), Some(None));
    assert_eq!(h.state(), State::ForcedOpen, "no wait ends a forced open");
    h.disable();
    for _ in 0..10 {
        assert!(send(&mut svc, Req::Fail).await.is_err());
    }
    assert_eq!(h.state(), State::Disabled);
    assert_eq!(h.metrics().calls, 0, "nothing recorded while disabled");
    assert_eq!(backend.calls.load(Ordering::SeqCst), 10);
    h.reset();
    assert_eq!(h.state(), State::Closed);
    trip(&mut svc).await;
    assert_eq!(h.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_the_breaker() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(4)
        .minimum_calls(4)
        .failure_rate_threshold(100.0)
        .slow_call_duration(Duration::from_millis(500))
        .slow_call_rate_threshold(50.0)
        .build()
        .unwrap();
    let h = layer.handle();
    let mut svc = layer.layer(Backend::default());
    send(&mut svc, Req::After(Duration::from_millis(499), false))
        .await
        .unwrap();
    send(&mut svc, Req::After(Duration::from_millis(500), false))
        .await
        .unwrap();
    send(&mut svc, Req::Ok).await.unwrap();
    assert_eq!(h.metrics().slow_calls, 1);
    assert_eq!(h.state(), State::Closed);
    send(&mut svc, Req::After(Duration::from_secs(2), false))
        .await
        .unwrap();
    assert_eq!(h.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn listener_sees_every_transition_with_its_time() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let layer = CircuitBreakerLayer::builder()
        .name("db")
        .count_window(2)
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(2))
        .permitted_calls_in_half_open(1)
        .on_transition(move |t| {
            log.lock()
                .unwrap()
                .push((t.name.map(str::to_owned), t.from, t.to, t.at.as_duration()));
        })
        .build()
        .unwrap();
    let h = layer.handle();
    assert_eq!(h.name(), Some("db"));
    let mut svc = layer.layer(Backend::default());
    advance(Duration::from_secs(1)).await;
    trip(&mut svc).await;
    advance(Duration::from_secs(2)).await;
    send(&mut svc, Req::Ok).await.unwrap();
    h.force_open();
    h.disable();
    h.reset();
    let db = Some("db".to_owned());
    let s = Duration::from_secs;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (db.clone(), State::Closed, State::Open, s(1)),
            (db.clone(), State::Open, State::HalfOpen, s(3)),
            (db.clone(), State::HalfOpen, State::Closed, s(3)),
            (db.clone(), State::Closed, State::ForcedOpen, s(3)),
            (db.clone(), State::ForcedOpen, State::Disabled, s(3)),
            (db.clone(), State::Disabled, State::Closed, s(3)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn services_and_clones_share_one_breaker_but_layers_do_not() {
    let cfg = || {
        CircuitBreakerLayer::builder()
            .count_window(2)
            .minimum_calls(2)
            .build()
            .unwrap()
    };
    let a = cfg();
    let b = cfg();
    let mut a1 = a.layer(Backend::default());
    let mut a2 = a.clone().layer(Backend::default());
    let mut b1 = b.layer(Backend::default());
    send(&mut a1, Req::Fail).await.ok();
    send(&mut a2.clone(), Req::Fail).await.ok();
    assert_eq!(a.handle().state(), State::Open);
    assert!(is_rejection(&send(&mut a2, Req::Ok).await));
    assert_eq!(b.handle().state(), State::Closed);
    send(&mut b1, Req::Ok).await.unwrap();
}

#[test]
fn bad_config_is_refused_with_the_field_named() {
    let e = CircuitBreakerLayer::builder()
        .failure_rate_threshold(f64::NAN)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "failure_rate_threshold");
    assert_eq!(
        e.to_string(),
        "invalid `failure_rate_threshold`: must be a number in (0, 100], got NaN"
    );
    // 0 % would trip on successes alone and never close: refused, for both rates.
    let e = CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.0)
        .build()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid `failure_rate_threshold`: must be in (0, 100], got 0"
    );
    let e = CircuitBreakerLayer::builder()
        .slow_call_duration(Duration::from_secs(1))
        .slow_call_rate_threshold(0.0)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "slow_call_rate_threshold");
    let e = CircuitBreakerLayer::builder()
        .count_window(0)
        .build()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid `count_window`: must hold 1..=1048576 calls, got 0"
    );
    let e = CircuitBreakerLayer::builder()
        .slow_call_rate_threshold(101.0)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "slow_call_rate_threshold");
    let e = CircuitBreakerLayer::builder()
        .permitted_calls_in_half_open(0)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "permitted_calls_in_half_open");
}

/// Refusals by buttress layers inside the breaker are not the backend's failures; a
/// timeout is.
#[tokio::test(start_paused = true)]
async fn inner_buttress_refusals_are_ignored_but_timeouts_count() {
    use buttress::bulkhead::error::BulkheadFull;
    use buttress::timeout::error::Elapsed;

    let layer = CircuitBreakerLayer::builder()
        .count_window(4)
        .minimum_calls(2)
        .failure_rate_threshold(50.0)
        .build()
        .unwrap();
    let handle = layer.handle();
    let full =
        tower::service_fn(|_: u32| async { Err::<u32, BoxError>(BulkheadFull::new().into()) });
    let mut svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(full);
    for _ in 0..5 {
        let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
        assert!(err.is::<BulkheadFull>());
    }
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.metrics().calls, 0, "refusals are not outcomes");

    let slow = tower::service_fn(|_: u32| async { Err::<u32, BoxError>(Elapsed::new().into()) });
    let mut svc = tower::ServiceBuilder::new().layer(layer).service(slow);
    for _ in 0..2 {
        let _ = svc.ready().await.unwrap().call(1).await;
    }
    assert_eq!(
        handle.state(),
        State::Open,
        "timeouts are the backend's failures"
    );
}

/// Calls from many threads, each through its own clone (and so, past the first few
/// threads, through different reference-count handles), count in one window: the
/// breaker trips at exactly the threshold summed over all of them.
#[test]
fn outcomes_from_many_threads_count_in_one_window() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(20)
        .minimum_calls(20)
        .failure_rate_threshold(50.0)
        .build()
        .expect("valid config");
    let svc = layer.layer(Backend::default());
    let send_from_a_new_thread = |req: Req, n: usize| {
        let mut svc = svc.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            rt.block_on(async {
                for _ in 0..n {
                    let _ = send(&mut svc, req).await;
                }
            });
        })
        .join()
        .expect("thread");
    };
    // 10 successes and 9 failures from 19 threads: 19 calls, under the minimum.
    for _ in 0..10 {
        send_from_a_new_thread(Req::Ok, 1);
    }
    for _ in 0..9 {
        send_from_a_new_thread(Req::Fail, 1);
    }
    assert_eq!(layer.handle().state(), State::Closed);
    assert_eq!(layer.handle().metrics().calls, 19);
    // The 20th outcome, a failure from yet another thread: 10 of 20, 50%.
    send_from_a_new_thread(Req::Fail, 1);
    assert_eq!(layer.handle().state(), State::Open);
}

/// A probe made ready well before it is called is timed from its call: the time read
/// when `poll_ready` found the open wait over decides the move to half-open, but the
/// call's duration (slow or not) and the half-open period run from the call.
#[tokio::test(start_paused = true)]
async fn a_probe_is_timed_from_its_call_not_from_its_readiness() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(2)
        .minimum_calls(2)
        .slow_call_duration(Duration::from_secs(1))
        .slow_call_rate_threshold(50.0)
        .wait_in_open(Duration::from_secs(5))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let h = layer.handle();
    let mut svc = layer.layer(Backend::default());
    for _ in 0..2 {
        let _ = send(&mut svc, Req::Fail).await;
    }
    assert_eq!(h.state(), State::Open);
    tokio::time::advance(Duration::from_secs(5)).await;
    // Ready now; called two seconds later; answered at once.
    let ready = svc.ready().await.expect("ready");
    tokio::time::advance(Duration::from_secs(2)).await;
    ready.call(Req::Ok).await.expect("the probe passes");
    assert_eq!(h.state(), State::Closed, "a fast probe is not slow");
}

/// Probes to a hung backend that an outer timeout cancels free their slots without
/// reporting; once `max_wait_in_half_open` has passed, the next call opens the
/// breaker again rather than being one more probe that hangs.
#[tokio::test(start_paused = true)]
async fn cancelled_probes_do_not_keep_a_breaker_half_open_past_its_limit() {
    let layer = CircuitBreakerLayer::builder()
        .count_window(2)
        .minimum_calls(2)
        .wait_in_open(Duration::from_secs(5))
        .permitted_calls_in_half_open(1)
        .max_wait_in_half_open(Some(Duration::from_secs(3)))
        .build()
        .unwrap();
    let h = layer.handle();
    let mut svc = layer.layer(Backend::default());
    for _ in 0..2 {
        let _ = send(&mut svc, Req::Fail).await;
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    // Each probe hangs and is given up after a second by the caller's timeout.
    for n in 0..3 {
        let probe = tokio::time::timeout(Duration::from_secs(1), send(&mut svc, Req::Hang));
        assert!(probe.await.is_err(), "probe {n} hangs");
        assert_eq!(h.state(), State::HalfOpen, "probe {n}");
    }
    // Three seconds in half-open without a decision: open again, without a call.
    let err = tokio::time::timeout(Duration::from_secs(1), send(&mut svc, Req::Hang))
        .await
        .expect("refused at once, not another hanging probe")
        .unwrap_err();
    assert_eq!(
        rejection(&*err).map(|r| r.kind()),
        Some(RejectionKind::CircuitOpen),
        "{err}"
    );
    assert_eq!(h.state(), State::Open);
}

/// A retry inside the breaker whose budget refuses its retries still reports the
/// backend's failures: `BudgetExhausted` comes after an attempt that failed, and its
/// source (that failure) is what the breaker classifies. A budget refusal after an
/// attempt an inner limiter refused stays ignored.
#[tokio::test(start_paused = true)]
async fn a_budget_refusal_after_a_backend_failure_counts_as_a_failure() {
    use buttress::rate_limit::error::RateLimited;
    use buttress::retry::error::BudgetExhausted;
    use buttress::retry::{RetryBudget, RetryLayer};

    let breaker = CircuitBreakerLayer::builder()
        .count_window(4)
        .minimum_calls(4)
        .failure_rate_threshold(50.0)
        .build()
        .unwrap();
    let handle = breaker.handle();
    // A budget with nothing to spend: every retry is refused.
    let empty = || {
        RetryBudget::builder()
            .retry_ratio(0.0)
            .min_retries_per_sec(0)
            .build()
            .unwrap()
    };
    let limited = tower::service_fn(|_: u32| async {
        Err::<u32, BoxError>(RateLimited::new(Duration::from_secs(1)).into())
    });
    let mut svc = tower::ServiceBuilder::new()
        .layer(breaker.clone())
        .layer(RetryLayer::builder().budget(empty()).build().unwrap())
        .service(limited);
    for _ in 0..4 {
        let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
        assert!(err.is::<BudgetExhausted>(), "{err}");
    }
    assert_eq!(
        handle.metrics().calls,
        0,
        "the limiter refused: nothing counted"
    );

    let down = tower::service_fn(|_: u32| async { Err::<u32, BoxError>("down".into()) });
    let mut svc = tower::ServiceBuilder::new()
        .layer(breaker)
        .layer(RetryLayer::builder().budget(empty()).build().unwrap())
        .service(down);
    for _ in 0..4 {
        let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
        assert!(err.is::<BudgetExhausted>(), "{err}");
    }
    assert_eq!(handle.state(), State::Open, "the backend's failures count");
}
