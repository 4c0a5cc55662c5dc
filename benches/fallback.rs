//! Fallback success path against the bare service, on one and two threads, with
//! allocations per call.

mod limits;
mod support;

use buttress::fallback::FallbackLayer;
use criterion::{Criterion, criterion_group, criterion_main};
use limits::{one_thread, two_threads};
use std::convert::Infallible;
use support::{Bare, allocs_per_call, one_call, report_allocs, runtime};
use tower::Layer;

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let value = FallbackLayer::value(0u64).layer(Bare);
    let closure = FallbackLayer::from_fn(|_: Result<u64, Infallible>| 0u64).layer(Bare);
    let mut g = c.benchmark_group("fallback");
    g.bench_function("bare", |b| b.iter_custom(|n| one_thread(&rt, &mut Bare, n)));
    g.bench_function("buttress_success_value", |b| {
        let mut svc = value.clone();
        b.iter_custom(|n| one_thread(&rt, &mut svc, n))
    });
    g.bench_function("buttress_success_closure", |b| {
        let mut svc = closure.clone();
        b.iter_custom(|n| one_thread(&rt, &mut svc, n))
    });
    g.bench_function("2_threads/bare", |b| {
        b.iter_custom(|n| two_threads(&Bare, n))
    });
    g.bench_function("2_threads/buttress_success_value", |b| {
        b.iter_custom(|n| two_threads(&value, n))
    });
    g.finish();

    let (a, by) = allocs_per_call(&rt, 10_000, || {
        let mut s = value.clone();
        async move { one_call(&mut s, 1).await }
    });
    report_allocs("fallback/buttress_success_value", a, by);
}

criterion_group! {
    name = benches;
    config = limits::config();
    targets = bench
}
criterion_main!(benches);
