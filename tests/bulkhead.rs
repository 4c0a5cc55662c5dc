//! The bulkhead through tower's `Service` API, on paused tokio time.

use buttress::BoxError;
use buttress::bulkhead::{BulkheadFull, BulkheadLayer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::convert::Infallible;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tower::{Layer, Service, ServiceExt, service_fn};

/// Counts calls in flight inside the inner service and remembers the most seen.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    fn enter(self: &Arc<Self>) -> GaugeGuard {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        GaugeGuard(Arc::clone(self))
    }
}

struct GaugeGuard(Arc<Gauge>);
impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

fn is_full(e: &BoxError) -> bool {
    e.downcast_ref::<BulkheadFull>().is_some()
}

/// A service whose calls wait until `gate` is notified (one call per permit).
fn gated(
    gate: Arc<Notify>,
) -> impl Service<u32, Response = u32, Error = Infallible, Future: Send> + Clone + Send {
    service_fn(move |x: u32| {
        let gate = Arc::clone(&gate);
        async move {
            gate.notified().await;
            Ok(x)
        }
    })
}

#[tokio::test(start_paused = true)]
async fn full_bulkhead_rejects_at_once_and_frees_on_completion() {
    let layer = BulkheadLayer::new(2).unwrap();
    let handle = layer.handle();
    let gate = Arc::new(Notify::new());
    let svc = layer.layer(gated(Arc::clone(&gate)));

    let a = tokio::spawn(svc.clone().oneshot(1));
    let b = tokio::spawn(svc.clone().oneshot(2));
    tokio::task::yield_now().await;
    assert_eq!(handle.in_flight(), 2);

    let err = svc.clone().oneshot(3).await.unwrap_err();
    assert!(is_full(&err), "{err}");
    assert_eq!(err.to_string(), "bulkhead full");

    gate.notify_waiters();
    assert_eq!(a.await.unwrap().unwrap(), 1);
    assert_eq!(b.await.unwrap().unwrap(), 2);
    assert_eq!(handle.available(), 2);

    // Both slots are usable again.
    let c = tokio::spawn(svc.clone().oneshot(4));
    let d = tokio::spawn(svc.oneshot(5));
    tokio::task::yield_now().await;
    assert_eq!(handle.in_flight(), 2);
    gate.notify_waiters();
    assert_eq!(c.await.unwrap().unwrap(), 4);
    assert_eq!(d.await.unwrap().unwrap(), 5);
    assert_eq!(handle.available(), 2);
}

#[tokio::test(start_paused = true)]
async fn polling_readiness_pins_nothing() {
    let layer = BulkheadLayer::new(1).unwrap();
    let handle = layer.handle();
    let mut services: Vec<_> = (0..10)
        .map(|_| layer.layer(service_fn(|x: u32| async move { Ok::<_, Infallible>(x) })))
        .collect();
    for s in &mut services {
        poll_fn(|cx| s.poll_ready(cx)).await.unwrap();
    }
    assert_eq!(handle.in_flight(), 0);
    // Every one of them can still be called, one after the other.
    for (i, s) in services.iter_mut().enumerate() {
        assert_eq!(s.call(i as u32).await.unwrap(), i as u32);
    }
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_first_come_first_served() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(10))
        .max_waiting(8)
        .build()
        .unwrap();
    let handle = layer.handle();
    let order = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(Notify::new());
    let svc = {
        let order = Arc::clone(&order);
        let gate = Arc::clone(&gate);
        layer.layer(service_fn(move |x: u32| {
            order.lock().unwrap().push(x);
            let gate = Arc::clone(&gate);
            async move {
                gate.notified().await;
                Ok::<_, Infallible>(x)
            }
        }))
    };

    let mut tasks = Vec::new();
    for i in 0..5 {
        tasks.push(tokio::spawn(svc.clone().oneshot(i)));
        // Let each one reach the bulkhead before the next.
        tokio::task::yield_now().await;
    }
    assert_eq!(handle.in_flight(), 1);
    assert_eq!(handle.waiting(), 4);
    for _ in 0..5 {
        // Release the running call; the oldest waiter takes its slot.
        gate.notify_one();
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    assert_eq!(handle.available(), 1);
    assert_eq!(handle.waiting(), 0);
}

/// A bulkhead of one slot that queues for up to `max_wait`, and a call holding that
/// slot until `gate` is notified.
struct OneSlotTaken<S> {
    handle: buttress::bulkhead::BulkheadHandle,
    gate: Arc<Notify>,
    svc: S,
    first: tokio::task::JoinHandle<Result<u32, BoxError>>,
}

async fn one_slot_taken(
    max_wait: Duration,
) -> OneSlotTaken<impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone> {
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(max_wait)
        .build()
        .unwrap();
    let handle = layer.handle();
    let gate = Arc::new(Notify::new());
    let svc = layer.layer(gated(Arc::clone(&gate)));
    let first = tokio::spawn(svc.clone().oneshot(1));
    tokio::task::yield_now().await;
    OneSlotTaken {
        handle,
        gate,
        svc,
        first,
    }
}

impl<S> OneSlotTaken<S> {
    /// Lets the first call finish; its slot comes back.
    async fn release(self) {
        self.gate.notify_one();
        self.first.await.unwrap().unwrap();
        assert_eq!(self.handle.available(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiter_whose_max_wait_expires_is_rejected() {
    let t = one_slot_taken(Duration::from_millis(100)).await;
    let start = tokio::time::Instant::now();
    let err = t.svc.clone().oneshot(2).await.unwrap_err();
    assert!(is_full(&err));
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(t.handle.waiting(), 0);
    t.release().await;
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_in_the_queue_drops_its_service_and_takes_no_slot() {
    let t = one_slot_taken(Duration::from_secs(5)).await;
    let mut queued = Box::pin(t.svc.clone().oneshot(2));
    assert!(
        poll_once(&mut queued).await.is_none(),
        "queued behind the first"
    );
    assert_eq!(t.handle.waiting(), 1);
    // The test's, svc's, the running call's and the queued call's service.
    assert_eq!(Arc::strong_count(&t.gate), 4);
    drop(queued);
    assert_eq!(t.handle.waiting(), 0);
    assert_eq!(
        Arc::strong_count(&t.gate),
        3,
        "the queued call's service is gone"
    );
    t.release().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_rejects_at_once() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(1))
        .max_waiting(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let gate = Arc::new(Notify::new());
    let svc = layer.layer(gated(Arc::clone(&gate)));

    let running = tokio::spawn(svc.clone().oneshot(1));
    tokio::task::yield_now().await;
    let queued = tokio::spawn(svc.clone().oneshot(2));
    tokio::task::yield_now().await;
    assert_eq!(handle.waiting(), 1);

    let start = tokio::time::Instant::now();
    let err = svc.clone().oneshot(3).await.unwrap_err();
    assert!(is_full(&err));
    assert_eq!(start.elapsed(), Duration::ZERO, "rejected without waiting");

    gate.notify_one();
    running.await.unwrap().unwrap();
    tokio::task::yield_now().await;
    gate.notify_one();
    assert_eq!(queued.await.unwrap().unwrap(), 2);
    assert_eq!(handle.available(), 1);
}

#[tokio::test(start_paused = true)]
async fn backpressure_takes_the_slot_in_poll_ready() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .backpressure(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut a = layer.layer(service_fn(|x: u32| async move { Ok::<_, Infallible>(x) }));
    let mut b = a.clone();

    poll_fn(|cx| a.poll_ready(cx)).await.unwrap();
    assert_eq!(handle.in_flight(), 1, "ready means holding the slot");
    // b is not ready while a holds the slot.
    let mut b_ready = tokio_test_ready(&mut b);
    assert!(poll_once(&mut b_ready).await.is_none());
    // a's call completes and frees the slot; b becomes ready.
    assert_eq!(a.call(7).await.unwrap(), 7);
    drop(b_ready);
    poll_fn(|cx| b.poll_ready(cx)).await.unwrap();
    assert_eq!(b.call(8).await.unwrap(), 8);
    assert_eq!(handle.available(), 1);

    // A ready service dropped before its call gives the slot back.
    let mut c = a.clone();
    poll_fn(|cx| c.poll_ready(cx)).await.unwrap();
    assert_eq!(handle.in_flight(), 1);
    drop(c);
    assert_eq!(handle.available(), 1);
}

fn tokio_test_ready<S: Service<u32>>(
    s: &mut S,
) -> impl std::future::Future<Output = Result<(), S::Error>> + '_ {
    poll_fn(move |cx| s.poll_ready(cx))
}

async fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    poll_fn(|cx| match std::pin::Pin::new(&mut *f).poll(cx) {
        std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

#[test]
fn config_errors_name_the_field() {
    assert_eq!(BulkheadLayer::new(0).unwrap_err().field(), "max_concurrent");
    assert_eq!(
        BulkheadLayer::builder().build().unwrap_err().field(),
        "max_concurrent"
    );
    let e = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_waiting(3)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "max_waiting");
    let e = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(1))
        .max_waiting(0)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "max_waiting");
    let e = BulkheadLayer::builder()
        .max_concurrent(1)
        .backpressure(true)
        .max_wait(Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "backpressure");
    // Too large a queue is refused for its size, not as "at least 1".
    let e = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(1))
        .max_waiting(usize::MAX)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "max_waiting");
    assert!(e.problem().starts_with("must be at most"), "{e}");
}

/// Many tasks, each of which completes, fails, panics inside the inner service, or is
/// cancelled part-way (while waiting or while running), under a fixed seed.
async fn chaos(layer: BulkheadLayer, max: usize, seed: u64) {
    let handle = layer.handle();
    let gauge = Arc::new(Gauge::default());
    let svc = {
        let gauge = Arc::clone(&gauge);
        layer.layer(service_fn(move |(ms, fate): (u64, u8)| {
            let gauge = Arc::clone(&gauge);
            async move {
                let _inside = gauge.enter();
                tokio::time::sleep(Duration::from_millis(ms)).await;
                match fate {
                    0 => Err(std::io::Error::other("inner failure")),
                    1 => panic!("inner panic"),
                    _ => Ok(fate),
                }
            }
        }))
    };
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let ms = rng.random_range(0..50);
        let fate = rng.random_range(0..6u8);
        let cancel_after = rng.random_bool(0.25).then(|| rng.random_range(0..60));
        let call = svc.clone().oneshot((ms, fate));
        tasks.push(tokio::spawn(async move {
            match cancel_after {
                Some(ms) => {
                    let _ = tokio::time::timeout(Duration::from_millis(ms), call).await;
                }
                None => {
                    let _ = call.await;
                }
            }
        }));
        if rng.random_bool(0.3) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..5))).await;
        }
        assert!(handle.in_flight() <= max);
    }
    for t in tasks {
        // Panicking tasks report their panic here; the slot must still be back.
        let _ = t.await;
    }
    assert!(
        gauge.peak.load(Ordering::SeqCst) <= max,
        "in flight exceeded max"
    );
    assert!(gauge.peak.load(Ordering::SeqCst) >= 1);
    assert_eq!(gauge.now.load(Ordering::SeqCst), 0);
    assert_eq!(handle.in_flight(), 0);
    assert_eq!(handle.waiting(), 0);
    assert_eq!(handle.available(), max);
}

#[tokio::test(start_paused = true)]
async fn chaos_reject_mode_leaks_nothing() {
    for seed in 0..4 {
        chaos(BulkheadLayer::new(4).unwrap(), 4, seed).await;
    }
}

#[tokio::test(start_paused = true)]
async fn chaos_waiting_mode_leaks_nothing() {
    for seed in 0..4 {
        let layer = BulkheadLayer::builder()
            .max_concurrent(3)
            .max_wait(Duration::from_millis(20))
            .max_waiting(16)
            .build()
            .unwrap();
        chaos(layer, 3, seed).await;
    }
}

/// What a caller of [`overlapping_calls_on_two_threads_admit_exactly_max`] saw.
#[derive(Debug, PartialEq)]
enum Seen {
    /// Its call is inside the inner service (and stays there until the gate opens).
    Entered,
    /// Its call was admitted and came back.
    Passed,
    /// Its call was refused; `full` if with [`BulkheadFull`].
    Refused { full: bool },
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_calls_on_two_threads_admit_exactly_max() {
    const ROUNDS: usize = 300;
    const CALLERS: u32 = 4;
    let layer = BulkheadLayer::new(2).unwrap();
    let handle = layer.handle();
    let gauge = Arc::new(Gauge::default());
    // Admitted calls hold their slot inside the inner service until the test adds
    // permits to the gate, so that every round's calls overlap whatever the threads do.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<Seen>();
    let svc = {
        let gauge = Arc::clone(&gauge);
        let gate = Arc::clone(&gate);
        let seen_tx = seen_tx.clone();
        layer.layer(service_fn(move |x: u32| {
            let gauge = Arc::clone(&gauge);
            let gate = Arc::clone(&gate);
            let seen_tx = seen_tx.clone();
            async move {
                let _inside = gauge.enter();
                seen_tx.send(Seen::Entered).unwrap();
                gate.acquire().await.unwrap().forget();
                Ok::<_, Infallible>(x)
            }
        }))
    };
    let (mut admitted, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let calls: Vec<_> = (0..CALLERS)
            .map(|t| {
                let svc = svc.clone();
                let seen_tx = seen_tx.clone();
                tokio::spawn(async move {
                    let seen = match svc.oneshot(t).await {
                        Ok(_) => Seen::Passed,
                        Err(e) => Seen::Refused { full: is_full(&e) },
                    };
                    seen_tx.send(seen).unwrap();
                })
            })
            .collect();
        // With the gate shut, an admitted call cannot come back: the first event of
        // each caller is `Entered` (admitted) or `Refused` (at once).
        let (mut entered, mut full) = (0, 0);
        for _ in 0..CALLERS {
            match seen.recv().await.unwrap() {
                Seen::Entered => entered += 1,
                Seen::Refused { full: true } => full += 1,
                other => panic!("round {round}: {other:?} while the gate was shut"),
            }
        }
        assert_eq!((entered, full), (2, 2), "round {round}");
        assert_eq!(gauge.now.load(Ordering::SeqCst), 2, "round {round}");
        assert_eq!(handle.in_flight(), 2, "round {round}");
        assert_eq!(handle.available(), 0, "round {round}");
        gate.add_permits(entered);
        for _ in 0..entered {
            assert_eq!(seen.recv().await.unwrap(), Seen::Passed, "round {round}");
        }
        for c in calls {
            c.await.unwrap();
        }
        assert_eq!(gauge.now.load(Ordering::SeqCst), 0, "round {round}");
        assert_eq!(handle.available(), 2, "round {round}");
        admitted += entered;
        refused += full;
    }
    assert_eq!(admitted, 2 * ROUNDS);
    assert_eq!(refused, 2 * ROUNDS);
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 2);
    assert_eq!(handle.in_flight(), 0);
    assert_eq!(handle.available(), 2);
}

/// Shared across threads as axum requires of a layer's service (`Router::layer`,
/// handler state): `Send + Sync` in every mode, the waiting ones included.
#[test]
fn services_are_send_and_sync_in_every_mode() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    let inner = service_fn(|x: u32| async move { Ok::<_, Infallible>(x) });
    let layers = [
        BulkheadLayer::new(1).expect("valid"),
        BulkheadLayer::builder()
            .max_concurrent(1)
            .max_wait(Duration::from_millis(10))
            .build()
            .expect("valid"),
        BulkheadLayer::builder()
            .max_concurrent(1)
            .backpressure(true)
            .build()
            .expect("valid"),
    ];
    for layer in layers {
        let svc = layer.layer(inner);
        send_sync(&svc);
        assert_eq!(layer.handle().in_flight(), 0);
    }
}

/// A queued call whose wait ran out answers `BulkheadFull`, and so does its future if
/// polled again (rather than resuming the finished wait, which would panic).
#[tokio::test(start_paused = true)]
async fn a_timed_out_wait_polled_again_still_answers_bulkhead_full() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_millis(10))
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|d: Duration| async move {
        tokio::time::sleep(d).await;
        Ok::<_, Infallible>(())
    }));
    // The one slot, held for a minute.
    let holder = tokio::spawn(svc.ready().await.unwrap().call(Duration::from_secs(60)));
    tokio::task::yield_now().await;
    let mut queued = Box::pin(svc.ready().await.unwrap().call(Duration::ZERO));
    let err = (&mut queued).await.unwrap_err();
    assert!(err.is::<BulkheadFull>(), "{err}");
    let again = poll_fn(|cx| std::task::Poll::Ready(queued.as_mut().poll(cx))).await;
    match again {
        std::task::Poll::Ready(Err(e)) => assert!(e.is::<BulkheadFull>(), "{e}"),
        other => panic!(
            "expected BulkheadFull again, got {:?}",
            other.map(|r| r.is_ok())
        ),
    }
    holder.abort();
}
