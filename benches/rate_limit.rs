//! Rate limiter admit and reject paths, direct and keyed (1,000 hot keys), against the
//! bare service and governor, on one and two threads sharing one instance, with
//! allocations per call.
//!
//! Clocks matter at this scale: the default `TokioClock` reads tokio's (pausable)
//! clock, `MonotonicClock` reads `std::time::Instant`, and the `quanta` rows read the
//! same TSC clock governor's `check()` uses by default, for a like-for-like comparison.

mod limits;
mod support;

use buttress::clock::{Clock, MonotonicClock, QuantaClock};
use buttress::rate_limit::{RateLimitLayer, SleepClock};
use buttress_core::gcra::{Gcra, Quota};
use criterion::{Criterion, criterion_group, criterion_main};
use governor::RateLimiter;
use limits::{one_thread, two_threads, two_threads_fn};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use support::{Bare, allocs_per_call, one_call, report_allocs, runtime};
use tower::{Layer, Service};

/// Never limiting in a benchmark: one per nanosecond, a million at once.
const RATE: u64 = 1_000_000_000;
const BURST: u32 = 1_000_000;

fn admit<C: SleepClock>(clock: C) -> buttress::rate_limit::RateLimit<Bare, C> {
    RateLimitLayer::builder()
        .rate(RATE)
        .burst(BURST)
        .clock(clock)
        .build()
        .unwrap()
        .layer(Bare)
}

fn keyed<C: SleepClock>(clock: C) -> impl Service<u64> + Clone + Send + 'static {
    RateLimitLayer::builder()
        .rate(RATE)
        .burst(BURST)
        .clock(clock)
        .keyed(10_000, |req: &u64| *req % 1_000)
        .unwrap()
        .layer(Bare)
}

/// The keyed row with foldhash instead of SipHash: for keys clients cannot choose.
fn keyed_foldhash<C: SleepClock>(clock: C) -> impl Service<u64> + Clone + Send + 'static {
    RateLimitLayer::builder()
        .rate(RATE)
        .burst(BURST)
        .clock(clock)
        .keyed_with_hasher(
            10_000,
            |req: &u64| *req % 1_000,
            foldhash::fast::RandomState::default(),
        )
        .unwrap()
        .layer(Bare)
}

fn reject() -> buttress::rate_limit::RateLimit<Bare> {
    let svc = RateLimitLayer::new(1, Duration::from_secs(86_400), 1)
        .unwrap()
        .layer(Bare);
    // Spend the only slot: every call from now on is refused.
    let _ = futures::executor::block_on(async {
        let mut s = svc.clone();
        one_call(&mut s, 0).await
    });
    svc
}

fn governor_direct() -> Arc<governor::DefaultDirectRateLimiter> {
    let quota = governor::Quota::with_period(Duration::from_nanos(1))
        .unwrap()
        .allow_burst(NonZeroU32::new(BURST).unwrap());
    Arc::new(RateLimiter::direct(quota))
}

/// One allocation measurement, run after the timings.
type AllocRow<'a> = Box<dyn Fn() -> (f64, f64) + 'a>;

fn bench(c: &mut Criterion) {
    let rt = runtime();
    // Time-dependent rows are built inside the runtime, so TokioClock starts there.
    let _guard = rt.enter();
    let mut g = c.benchmark_group("rate_limit");
    g.bench_function("bare", |b| b.iter_custom(|n| one_thread(&rt, &mut Bare, n)));
    g.bench_function("buttress_admit/tokio_clock", |b| {
        let mut svc = admit(buttress::clock::TokioClock::new());
        b.iter_custom(|n| one_thread(&rt, &mut svc, n))
    });
    g.bench_function("buttress_admit/std_clock", |b| {
        let mut svc = admit(MonotonicClock::new());
        b.iter_custom(|n| one_thread(&rt, &mut svc, n))
    });
    g.bench_function("buttress_admit/quanta_clock", |b| {
        let mut svc = admit(QuantaClock::new());
        b.iter_custom(|n| one_thread(&rt, &mut svc, n))
    });
    g.bench_function("buttress_reject/tokio_clock", |b| {
        let mut svc = reject();
        b.iter_custom(|n| one_thread(&rt, &mut svc, n))
    });
    g.bench_function("buttress_keyed_1000_hot_keys/tokio_clock", |b| {
        let mut svc = keyed(buttress::clock::TokioClock::new());
        b.iter_custom(|n| one_thread(&rt, &mut svc, n))
    });
    g.bench_function("buttress_keyed_1000_hot_keys/quanta_clock", |b| {
        let mut svc = keyed(QuantaClock::new());
        b.iter_custom(|n| one_thread(&rt, &mut svc, n))
    });
    g.bench_function("buttress_keyed_1000_hot_keys/quanta_clock_foldhash", |b| {
        let mut svc = keyed_foldhash(QuantaClock::new());
        b.iter_custom(|n| one_thread(&rt, &mut svc, n))
    });
    // The limiters alone, no service around them: governor's `check()` against the
    // core's, both reading quanta.
    g.bench_function("check/governor_quanta", |b| {
        let lim = governor_direct();
        b.iter(|| black_box(lim.check().is_ok()))
    });
    g.bench_function("check/buttress_core_quanta", |b| {
        let lim = Gcra::new(Quota::new(RATE, Duration::from_secs(1), BURST).unwrap());
        let clock = QuantaClock::new();
        b.iter(|| black_box(lim.check(clock.now()).is_ok()))
    });

    g.bench_function("2_threads/bare", |b| {
        b.iter_custom(|n| two_threads(&Bare, n))
    });
    g.bench_function("2_threads/buttress_admit/tokio_clock", |b| {
        let svc = admit(buttress::clock::TokioClock::new());
        b.iter_custom(|n| two_threads(&svc, n))
    });
    g.bench_function("2_threads/buttress_admit/quanta_clock", |b| {
        let svc = admit(QuantaClock::new());
        b.iter_custom(|n| two_threads(&svc, n))
    });
    g.bench_function("2_threads/buttress_keyed_1000_hot_keys/quanta_clock", |b| {
        let svc = keyed(QuantaClock::new());
        b.iter_custom(|n| two_threads(&svc, n))
    });
    g.bench_function(
        "2_threads/buttress_keyed_1000_hot_keys/quanta_clock_foldhash",
        |b| {
            let svc = keyed_foldhash(QuantaClock::new());
            b.iter_custom(|n| two_threads(&svc, n))
        },
    );
    g.bench_function("2_threads/check/governor_quanta", |b| {
        let lim = governor_direct();
        b.iter_custom(|n| {
            let lim = Arc::clone(&lim);
            two_threads_fn(
                move |_| {
                    black_box(lim.check().is_ok());
                },
                n,
            )
        })
    });
    g.bench_function("2_threads/check/buttress_core_quanta", |b| {
        let lim = Arc::new(Gcra::new(
            Quota::new(RATE, Duration::from_secs(1), BURST).unwrap(),
        ));
        let clock = QuantaClock::new();
        b.iter_custom(|n| {
            let lim = Arc::clone(&lim);
            let clock = clock.clone();
            two_threads_fn(
                move |_| {
                    black_box(lim.check(clock.now()).is_ok());
                },
                n,
            )
        })
    });
    g.finish();

    let rows: [(&str, AllocRow<'_>); 4] = [
        ("rate_limit/buttress_admit/tokio_clock", {
            let svc = admit(buttress::clock::TokioClock::new());
            let rt = &rt;
            Box::new(move || {
                allocs_per_call(rt, 10_000, || {
                    let mut s = svc.clone();
                    async move { one_call(&mut s, 1).await }
                })
            })
        }),
        ("rate_limit/buttress_keyed_1000_hot_keys/tokio_clock", {
            let svc = keyed(buttress::clock::TokioClock::new());
            let rt = &rt;
            Box::new(move || {
                // Every hot key is known before counting: inserting a key allocates.
                rt.block_on(async {
                    for k in 0..1_000 {
                        let mut s = svc.clone();
                        let _ = one_call(&mut s, k).await;
                    }
                });
                let mut i = 0u64;
                allocs_per_call(rt, 10_000, || {
                    i += 1;
                    let mut s = svc.clone();
                    async move { one_call(&mut s, i).await }
                })
            })
        }),
        ("rate_limit/buttress_reject/tokio_clock", {
            let svc = reject();
            let rt = &rt;
            Box::new(move || {
                allocs_per_call(rt, 10_000, || {
                    let mut s = svc.clone();
                    async move { one_call(&mut s, 1).await }
                })
            })
        }),
        ("rate_limit/check/buttress_core_quanta", {
            let lim = Gcra::new(Quota::new(RATE, Duration::from_secs(1), BURST).unwrap());
            let clock = QuantaClock::new();
            let rt = &rt;
            Box::new(move || {
                let lim = &lim;
                let clock = &clock;
                allocs_per_call(rt, 10_000, || async move { lim.check(clock.now()).is_ok() })
            })
        }),
    ];
    for (name, row) in rows {
        let (a, by) = row();
        report_allocs(name, a, by);
    }
}

criterion_group! {
    name = benches;
    config = limits::config();
    targets = bench
}
criterion_main!(benches);
