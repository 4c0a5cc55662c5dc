//! What every criterion suite here shares: the bare service, the runtime, and the
//! allocation counter.
//!
//! Every figure compares like with like: a trivial always-ready service driven by
//! `ready().await` + `call().await` on a current-thread tokio runtime, the same way the
//! peers' figures quoted in the issues were taken.
#![allow(dead_code, unreachable_pub, missing_docs)]

mod services;

pub use services::*;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::Service;

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Allocations and bytes per call of `call`, averaged over `iters` calls on `rt`
/// (after a warm-up call, so that one-off lazy set-up is not counted).
pub fn allocs_per_call<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, mut call: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future,
{
    rt.block_on(async {
        let _ = call().await;
        let region = Region::new(GLOBAL);
        for _ in 0..iters {
            let _ = call().await;
        }
        let stats = region.change();
        (
            stats.allocations as f64 / iters as f64,
            stats.bytes_allocated as f64 / iters as f64,
        )
    })
}

/// Prints one allocation row in the form the benchmark report collects.
pub fn report_allocs(name: &str, allocs: f64, bytes: f64) {
    println!("allocs: {name}: {allocs:.2} allocations, {bytes:.1} bytes per call");
}

/// One criterion row: calls through `svc` timed by [`one_thread`].
pub fn row<S: Service<u64>>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    rt: &tokio::runtime::Runtime,
    mut svc: S,
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| one_thread(rt, &mut svc, iters))
    });
}

/// Prints the allocations per call through `svc` (kept in an `Rc<Cell>`, which
/// allocates nothing per call).
pub fn allocs_row<S: Service<u64>>(rt: &tokio::runtime::Runtime, name: &str, svc: S) {
    let slot = std::rc::Rc::new(std::cell::Cell::new(Some(svc)));
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
