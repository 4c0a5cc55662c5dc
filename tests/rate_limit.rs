//! The rate limiters through tower's `Service` API: paused tokio time for exactness,
//! real threads with a monotonic clock for the upper bound under contention.

use buttress::BoxError;
use buttress::clock::MonotonicClock;
use buttress::error::{RejectionKind, rejection};
use buttress::rate_limit::{RateLimitLayer, RateLimited};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

fn echo() -> impl Service<u32, Response = u32, Error = Infallible, Future: Send> + Clone + Send {
    service_fn(|x: u32| async move { Ok::<_, Infallible>(x) })
}

fn retry_after(e: &BoxError) -> Duration {
    e.downcast_ref::<RateLimited>()
        .unwrap_or_else(|| panic!("not RateLimited: {e}"))
        .retry_after()
}

#[tokio::test(start_paused = true)]
async fn after_any_idle_period_exactly_burst_pass() {
    // 3 per second (an interval that does not divide evenly), bursts of 4.
    let layer = RateLimitLayer::new(3, Duration::from_secs(1), 4).unwrap();
    let mut svc = layer.layer(echo());
    // Each idle period is at least `burst` intervals (4 x 333,333,334 ns).
    for idle_ms in [0u64, 5_000, 1_334, 86_400_000] {
        tokio::time::advance(Duration::from_millis(idle_ms)).await;
        for i in 0..4 {
            assert_eq!(svc.ready().await.unwrap().call(i).await.unwrap(), i);
        }
        let err = svc.ready().await.unwrap().call(9).await.unwrap_err();
        assert!(retry_after(&err) > Duration::ZERO);
        let r = rejection(&*err).expect("a buttress rejection");
        assert_eq!(r.kind(), RejectionKind::RateLimited);
        assert_eq!(r.retry_after(), Some(retry_after(&err)));
    }
}

#[tokio::test(start_paused = true)]
async fn waiting_exactly_retry_after_passes_and_a_nanosecond_less_does_not() {
    let layer = RateLimitLayer::new(10, Duration::from_secs(1), 2).unwrap();
    let mut svc = layer.layer(echo());
    svc.ready().await.unwrap().call(1).await.unwrap();
    svc.ready().await.unwrap().call(2).await.unwrap();
    let err = svc.ready().await.unwrap().call(3).await.unwrap_err();
    let ra = retry_after(&err);
    assert_eq!(ra, Duration::from_millis(100));

    tokio::time::advance(ra - Duration::from_nanos(1)).await;
    let err = svc.ready().await.unwrap().call(4).await.unwrap_err();
    assert_eq!(retry_after(&err), Duration::from_nanos(1));
    tokio::time::advance(Duration::from_nanos(1)).await;
    assert_eq!(svc.ready().await.unwrap().call(5).await.unwrap(), 5);
}

#[tokio::test(start_paused = true)]
async fn clones_and_services_of_one_layer_share_the_limiter() {
    let layer = RateLimitLayer::new(1, Duration::from_secs(60), 2).unwrap();
    let mut a = layer.layer(echo());
    let mut b = a.clone();
    let mut c = layer.layer(echo());
    a.ready().await.unwrap().call(1).await.unwrap();
    b.ready().await.unwrap().call(2).await.unwrap();
    let err = c.ready().await.unwrap().call(3).await.unwrap_err();
    assert_eq!(retry_after(&err), Duration::from_secs(60));
    // An independent layer value is an independent limiter.
    let mut other = RateLimitLayer::new(1, Duration::from_secs(60), 2)
        .unwrap()
        .layer(echo());
    other.ready().await.unwrap().call(4).await.unwrap();
}

/// When each call reached the service behind the limiter, from now, by request.
type Calls = Arc<Mutex<Vec<(u32, Duration)>>>;

/// `layer` over a service that records when each call reached it.
fn recording(
    layer: &RateLimitLayer,
) -> (
    impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send + 'static,
    Calls,
) {
    let start = Instant::now();
    let called_at = Calls::default();
    let seen = Arc::clone(&called_at);
    let svc = layer.layer(service_fn(move |x: u32| {
        seen.lock().unwrap().push((x, Instant::now() - start));
        async move { Ok::<_, Infallible>(x) }
    }));
    (svc, called_at)
}

/// Slots closer than tokio's millisecond tick: each waiting call goes on at the first
/// tick at or after its slot, never before it, so at 10,000 calls per second the ten
/// reserved within the first millisecond go on together at 1 ms (as the module docs
/// say), and the count stays within `burst + rate × elapsed`.
#[tokio::test(start_paused = true)]
async fn waits_shorter_than_a_millisecond_end_at_the_next_tick() {
    let layer = RateLimitLayer::builder()
        .rate(10_000)
        .burst(1)
        .max_wait(Duration::from_millis(10))
        .build()
        .unwrap();
    let (svc, called_at) = recording(&layer);
    let calls: Vec<_> = (0..21)
        .map(|i| tokio::spawn(svc.clone().oneshot(i)))
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    let mut seen = called_at.lock().unwrap().clone();
    seen.sort();
    let ms = Duration::from_millis;
    // Slots at 0, 0.1, 0.2, ... 2.0 ms: the first at once, then ten at each tick.
    let expected: Vec<_> = (0..21u32)
        .map(|i| (i, ms(u64::from(i).div_ceil(10))))
        .collect();
    assert_eq!(seen, expected);
    for &(i, at) in &seen {
        let slot = Duration::from_micros(100) * i;
        assert!(at >= slot, "call {i} at {at:?}, before its slot {slot:?}");
        let within = 1 + 10_000 * at.as_nanos() / 1_000_000_000;
        assert!(u128::from(i) < within, "call {i} at {at:?} over the limit");
    }
}

#[tokio::test(start_paused = true)]
async fn waiting_mode_sleeps_exactly_the_reserved_time() {
    let layer = RateLimitLayer::builder()
        .rate(10)
        .burst(1)
        .max_wait(Duration::from_millis(250))
        .build()
        .unwrap();
    let start = Instant::now();
    let (svc, called_at) = recording(&layer);
    // Four calls at once: one now, then slots at 100 and 200 ms; the fourth would wait
    // 300 ms > max_wait and is refused at once, reserving nothing.
    let calls: Vec<_> = (0..3)
        .map(|i| tokio::spawn(svc.clone().oneshot(i)))
        .collect();
    tokio::task::yield_now().await;
    let err = svc.clone().oneshot(3).await.unwrap_err();
    assert_eq!(retry_after(&err), Duration::from_millis(300));
    assert_eq!(Instant::now(), start, "refused without waiting");
    for c in calls {
        c.await.unwrap().unwrap();
    }
    let mut seen = called_at.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (0, Duration::ZERO),
            (1, Duration::from_millis(100)),
            (2, Duration::from_millis(200)),
        ]
    );
    // The refused call reserved nothing: the next slot is at 300 ms, not 400, so a
    // call made at 300 ms passes at once, without waiting at all.
    tokio::time::advance(Duration::from_millis(100)).await;
    let t = Instant::now();
    assert_eq!(t - start, Duration::from_millis(300));
    svc.clone().oneshot(4).await.unwrap();
    assert_eq!(Instant::now(), t, "passed without waiting");
    assert_eq!(
        called_at.lock().unwrap().last(),
        Some(&(4, Duration::from_millis(300)))
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_wait_does_not_call_the_service() {
    let layer = RateLimitLayer::builder()
        .rate(1)
        .burst(1)
        .max_wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let calls = Arc::new(Mutex::new(0));
    let svc = {
        let calls = Arc::clone(&calls);
        layer.layer(service_fn(move |x: u32| {
            *calls.lock().unwrap() += 1;
            async move { Ok::<_, Infallible>(x) }
        }))
    };
    svc.clone().oneshot(0).await.unwrap();
    let r = tokio::time::timeout(Duration::from_millis(500), svc.clone().oneshot(1)).await;
    assert!(r.is_err(), "still waiting when cancelled");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(*calls.lock().unwrap(), 1);
    // The waiting call's service went with it: only `svc` holds the counter now.
    assert_eq!(Arc::strong_count(&calls), 2, "the test's and svc's");
}

#[tokio::test(start_paused = true)]
async fn keyed_limits_each_key_separately() {
    let layer = RateLimitLayer::builder()
        .rate(1)
        .burst(2)
        .keyed(100, |req: &(u8, u32)| req.0)
        .unwrap();
    let mut svc = layer.layer(service_fn(|req: (u8, u32)| async move {
        Ok::<_, Infallible>(req.1)
    }));
    for key in 0..3u8 {
        for i in 0..2 {
            assert_eq!(svc.ready().await.unwrap().call((key, i)).await.unwrap(), i);
        }
        let err = svc.ready().await.unwrap().call((key, 9)).await.unwrap_err();
        assert_eq!(retry_after(&err), Duration::from_secs(1));
    }
    assert_eq!(layer.keys(), 3);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(svc.ready().await.unwrap().call((1, 5)).await.unwrap(), 5);
}

#[tokio::test(start_paused = true)]
async fn keyed_waiting_mode_reserves_per_key() {
    let layer = RateLimitLayer::builder()
        .rate(10)
        .burst(1)
        .max_wait(Duration::from_secs(1))
        .keyed(100, |req: &(u8, u32)| req.0)
        .unwrap();
    let svc = layer.layer(service_fn(|req: (u8, u32)| async move {
        Ok::<_, Infallible>(req.1)
    }));
    let start = Instant::now();
    svc.clone().oneshot((1, 0)).await.unwrap();
    svc.clone().oneshot((2, 0)).await.unwrap();
    assert_eq!(
        Instant::now(),
        start,
        "different keys do not wait for each other"
    );
    svc.clone().oneshot((1, 1)).await.unwrap();
    assert_eq!(Instant::now() - start, Duration::from_millis(100));
}

#[test]
fn config_errors_name_the_field() {
    let s = Duration::from_secs(1);
    assert_eq!(RateLimitLayer::new(0, s, 1).unwrap_err().field(), "rate");
    assert_eq!(RateLimitLayer::new(1, s, 0).unwrap_err().field(), "burst");
    assert_eq!(
        RateLimitLayer::new(1, Duration::ZERO, 1)
            .unwrap_err()
            .field(),
        "period"
    );
    assert_eq!(
        RateLimitLayer::builder()
            .burst(1)
            .build()
            .unwrap_err()
            .field(),
        "rate"
    );
    let e = RateLimitLayer::builder()
        .rate(1)
        .burst(1)
        .keyed(0, |r: &u32| *r)
        .unwrap_err();
    assert_eq!(e.field(), "max_keys");
}

/// Several threads hammer one limiter (through clones of one service) for a measured
/// interval; every admission happens between the two clock readings, so the count is
/// bounded by `burst + rate * elapsed` whatever the scheduling.
#[test]
fn threads_never_get_more_than_burst_plus_rate_times_elapsed() {
    let rate = 20_000u64;
    let burst = 50u32;
    let clock = MonotonicClock::new();
    let layer = RateLimitLayer::builder()
        .rate(rate)
        .burst(burst)
        .clock(clock)
        .build()
        .unwrap();
    let svc = layer.layer(echo());
    let start = std::time::Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let mut svc = svc.clone();
            std::thread::spawn(move || {
                let mut admitted = 0u64;
                let mut refused = 0u64;
                while start.elapsed() < Duration::from_millis(200) {
                    match futures::executor::block_on(svc.ready().await_call(1)) {
                        Ok(_) => admitted += 1,
                        Err(_) => refused += 1,
                    }
                }
                (admitted, refused)
            })
        })
        .collect();
    let (mut admitted, mut refused) = (0, 0);
    for t in threads {
        let (a, r) = t.join().unwrap();
        admitted += a;
        refused += r;
    }
    let elapsed = start.elapsed();
    let bound = u128::from(burst) + u128::from(rate) * elapsed.as_nanos() / 1_000_000_000;
    assert!(
        u128::from(admitted) <= bound,
        "admitted {admitted} > bound {bound} over {elapsed:?}"
    );
    assert!(refused > 0, "the limit was reached");
    assert!(admitted >= u64::from(burst), "at least the burst passed");
}

/// `ready().await` then `call().await`, as one future for `block_on`.
trait ReadyCall {
    async fn await_call(self, req: u32) -> Result<u32, BoxError>;
}

impl<S> ReadyCall for tower::util::Ready<'_, S, u32>
where
    S: Service<u32, Response = u32, Error = BoxError>,
{
    async fn await_call(self, req: u32) -> Result<u32, BoxError> {
        self.await?.call(req).await
    }
}
