//! The circuit breaker's per-call cost next to the bare service: the closed success
//! path and the open rejection path, on one thread and on two threads sharing one
//! breaker, plus allocations per call.

mod support;

use buttress::circuit_breaker::{CircuitBreakerLayer, State};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use support::{AlwaysFails, Bare, allocs_per_call, consume, one_call, report_allocs, runtime};
use tower::{Layer, Service};

fn layer() -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .count_window(100)
        .minimum_calls(10)
        .wait_in_open(Duration::from_secs(3600))
        .build()
        .expect("valid config")
}

/// A breaker layer that is open (tripped by real failures, waiting an hour).
fn open_layer() -> CircuitBreakerLayer {
    let layer = layer();
    let rt = runtime();
    let mut failing = layer.layer(AlwaysFails);
    rt.block_on(async {
        for _ in 0..10 {
            let _ = one_call(&mut failing, 0).await;
        }
    });
    assert_eq!(layer.handle().state(), State::Open);
    layer
}

/// `iters` calls on one current-thread runtime; the time they took.
fn run<S: Service<u64>>(rt: &tokio::runtime::Runtime, svc: &mut S, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            consume(one_call(svc, black_box(i)).await);
        }
        start.elapsed()
    })
}

/// `iters` calls on each of two threads at once (each with its own current-thread
/// runtime and its own clone of `svc`); the slower thread's time.
fn run_two<S>(svc: &S, iters: u64) -> Duration
where
    S: Service<u64> + Clone + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let mut svc = svc.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let rt = runtime();
                barrier.wait();
                run(&rt, &mut svc, iters)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("bench thread"))
        .max()
        .unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("circuit_breaker");

    let mut bare = Bare;
    g.bench_function("1 thread/bare", |b| {
        b.iter_custom(|n| run(&rt, &mut bare, n))
    });
    let mut closed = layer().layer(Bare);
    g.bench_function("1 thread/closed success", |b| {
        b.iter_custom(|n| run(&rt, &mut closed, n))
    });
    let mut open = open_layer().layer(Bare);
    g.bench_function("1 thread/open rejection", |b| {
        b.iter_custom(|n| run(&rt, &mut open, n))
    });

    g.bench_function("2 threads/bare", |b| b.iter_custom(|n| run_two(&Bare, n)));
    let shared = layer().layer(Bare);
    g.bench_function("2 threads/closed success (one breaker)", |b| {
        b.iter_custom(|n| run_two(&shared, n))
    });
    let shared_open = open_layer().layer(Bare);
    g.bench_function("2 threads/open rejection (one breaker)", |b| {
        b.iter_custom(|n| run_two(&shared_open, n))
    });
    g.finish();

    let iters = 10_000;
    let (a, by) = allocs_per_call(&rt, iters, || async { one_call(&mut Bare, 1).await });
    report_allocs("bare", a, by);
    let closed = layer().layer(Bare);
    let (a, by) = allocs_per_call(&rt, iters, || {
        let mut s = closed.clone();
        async move { one_call(&mut s, 1).await }
    });
    report_allocs("circuit_breaker closed success", a, by);
    let open = open_layer().layer(Bare);
    let (a, by) = allocs_per_call(&rt, iters, || {
        let mut s = open.clone();
        async move { one_call(&mut s, 1).await }
    });
    report_allocs(
        "circuit_breaker open rejection (the boxed CircuitOpen)",
        a,
        by,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
