//! Retry whose first attempt succeeds, with and without a budget, next to the bare
//! service; allocations per call.

mod support;

use buttress::retry::RetryLayer;
use criterion::{Criterion, criterion_group, criterion_main};
use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Instant;
use support::{Bare, allocs_per_call, one_call, report_allocs, runtime};
use tower::{Layer, Service};

fn row<S>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    rt: &tokio::runtime::Runtime,
    mut svc: S,
) where
    S: Service<u64>,
{
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let _ = black_box(one_call(&mut svc, black_box(i)).await);
                }
                start.elapsed()
            })
        })
    });
}

/// Allocations per call through `svc` (kept in an `Rc<Cell>`, which allocates
/// nothing per call).
fn allocs<S: Service<u64>>(rt: &tokio::runtime::Runtime, name: &str, svc: S) {
    let slot = Rc::new(Cell::new(Some(svc)));
    let (a, b) = allocs_per_call(rt, 10_000, || {
        let slot = slot.clone();
        async move {
            // Moved out for the call and back after: calls never overlap here.
            if let Some(mut s) = slot.take() {
                let _ = one_call(&mut s, 1).await;
                slot.set(Some(s));
            }
        }
    });
    report_allocs(name, a, b);
}

fn retry(c: &mut Criterion) {
    let rt = runtime();
    let (no_budget, with_budget) = rt.block_on(async {
        (
            RetryLayer::builder().no_budget().build().expect("valid"),
            RetryLayer::builder().build().expect("valid"),
        )
    });
    let mut g = c.benchmark_group("retry");
    row(&mut g, "bare", &rt, Bare);
    row(&mut g, "retry_first_attempt_ok", &rt, no_budget.layer(Bare));
    row(
        &mut g,
        "retry_first_attempt_ok_budget",
        &rt,
        with_budget.layer(Bare),
    );
    g.finish();

    allocs(&rt, "retry/bare", Bare);
    allocs(&rt, "retry/retry_first_attempt_ok", no_budget.layer(Bare));
    allocs(
        &rt,
        "retry/retry_first_attempt_ok_budget",
        with_budget.layer(Bare),
    );
}

criterion_group!(benches, retry);
criterion_main!(benches);
