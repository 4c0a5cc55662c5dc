//! Retry whose first attempt succeeds, with and without a budget, next to the bare
//! service; allocations per call.

mod support;

use buttress::clock::Clock;
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
                    // Consume the result as a caller would, field by field.
                    match one_call(&mut svc, black_box(i)).await {
                        Ok(v) => {
                            black_box(v);
                        }
                        Err(e) => {
                            black_box(e);
                        }
                    }
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

fn bare_box_error() -> impl Service<u64, Response = u64, Error = buttress::BoxError> {
    tower::ServiceExt::map_err(Bare, buttress::BoxError::from)
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
    // The floor for any layer that returns `BoxError` (as every buttress layer does):
    // the bare service with its error type boxed.
    row(&mut g, "bare_box_error", &rt, bare_box_error());
    row(&mut g, "retry_first_attempt_ok", &rt, no_budget.layer(Bare));
    row(
        &mut g,
        "retry_first_attempt_ok_budget",
        &rt,
        with_budget.layer(Bare),
    );
    g.finish();

    // What one clock read costs here (the budget's deposit needs one per call).
    let clock = rt.block_on(async { buttress::clock::TokioClock::new() });
    let _guard = rt.enter();
    c.bench_function("retry/tokio_clock_now", |b| {
        b.iter(|| black_box(clock.now()))
    });
    drop(_guard);

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
