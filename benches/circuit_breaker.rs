//! The circuit breaker's per-call cost next to the bare service: the closed success
//! path and the open rejection path, on one thread and on two threads sharing one
//! breaker, plus allocations per call.

mod support;

use buttress::circuit_breaker::{CircuitBreakerLayer, State};
use criterion::{Criterion, criterion_group, criterion_main};
use std::time::Duration;
use support::{
    AlwaysFails, Bare, allocs_per_call, one_call, one_thread, report_allocs, runtime, two_threads,
};
use tower::Layer;

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

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("circuit_breaker");

    let mut bare = Bare;
    g.bench_function("1 thread/bare", |b| {
        b.iter_custom(|n| one_thread(&rt, &mut bare, n))
    });
    let mut closed = layer().layer(Bare);
    g.bench_function("1 thread/closed success", |b| {
        b.iter_custom(|n| one_thread(&rt, &mut closed, n))
    });
    let mut open = open_layer().layer(Bare);
    g.bench_function("1 thread/open rejection", |b| {
        b.iter_custom(|n| one_thread(&rt, &mut open, n))
    });

    g.bench_function("2 threads/bare", |b| {
        b.iter_custom(|n| two_threads(&Bare, n))
    });
    let shared = layer().layer(Bare);
    g.bench_function("2 threads/closed success (one breaker)", |b| {
        b.iter_custom(|n| two_threads(&shared, n))
    });
    let shared_open = open_layer().layer(Bare);
    g.bench_function("2 threads/open rejection (one breaker)", |b| {
        b.iter_custom(|n| two_threads(&shared_open, n))
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
