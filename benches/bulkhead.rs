//! Bulkhead admit path against the bare service and tower's `ConcurrencyLimit`, on one
//! and two threads sharing one instance, with allocations per call.

mod limits;
mod support;

use buttress::bulkhead::BulkheadLayer;
use criterion::{Criterion, criterion_group, criterion_main};
use limits::{one_thread, two_threads};
use std::time::Duration;
use support::{Bare, allocs_per_call, one_call, report_allocs, runtime};
use tower::Layer;
use tower::limit::ConcurrencyLimitLayer;

fn reject_mode() -> buttress::bulkhead::Bulkhead<Bare> {
    BulkheadLayer::new(1024).unwrap().layer(Bare)
}

fn waiting_mode() -> buttress::bulkhead::Bulkhead<Bare> {
    BulkheadLayer::builder()
        .max_concurrent(1024)
        .max_wait(Duration::from_millis(10))
        .build()
        .unwrap()
        .layer(Bare)
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("bulkhead");
    g.bench_function("bare", |b| b.iter_custom(|n| one_thread(&rt, &mut Bare, n)));
    g.bench_function("buttress_admit", |b| {
        let mut svc = reject_mode();
        b.iter_custom(|n| one_thread(&rt, &mut svc, n))
    });
    g.bench_function("buttress_admit_waiting_mode", |b| {
        let mut svc = waiting_mode();
        b.iter_custom(|n| one_thread(&rt, &mut svc, n))
    });
    g.bench_function("tower_concurrency_limit", |b| {
        let mut svc = ConcurrencyLimitLayer::new(1024).layer(Bare);
        b.iter_custom(|n| one_thread(&rt, &mut svc, n))
    });
    g.bench_function("2_threads/bare", |b| {
        b.iter_custom(|n| two_threads(&Bare, n))
    });
    g.bench_function("2_threads/buttress_admit", |b| {
        let svc = reject_mode();
        b.iter_custom(|n| two_threads(&svc, n))
    });
    g.bench_function("2_threads/buttress_admit_waiting_mode", |b| {
        let svc = waiting_mode();
        b.iter_custom(|n| two_threads(&svc, n))
    });
    g.finish();

    let svc = reject_mode();
    let (a, by) = allocs_per_call(&rt, 10_000, || {
        let mut s = svc.clone();
        async move { one_call(&mut s, 1).await }
    });
    report_allocs("bulkhead/buttress_admit", a, by);
    let svc = waiting_mode();
    let (a, by) = allocs_per_call(&rt, 10_000, || {
        let mut s = svc.clone();
        async move { one_call(&mut s, 1).await }
    });
    report_allocs("bulkhead/buttress_admit_waiting_mode", a, by);
}

criterion_group! {
    name = benches;
    config = limits::config();
    targets = bench
}
criterion_main!(benches);
