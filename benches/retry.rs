//! Retry whose first attempt succeeds, with and without a budget, next to the bare
//! service; allocations per call.

mod support;

use buttress::clock::Clock;
use buttress::retry::RetryLayer;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use support::{Bare, allocs_row, row, runtime};
use tower::{Layer, Service};

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

    allocs_row(&rt, "retry/bare", Bare);
    allocs_row(&rt, "retry/retry_first_attempt_ok", no_budget.layer(Bare));
    allocs_row(
        &rt,
        "retry/retry_first_attempt_ok_budget",
        with_budget.layer(Bare),
    );
}

criterion_group!(benches, retry);
criterion_main!(benches);
