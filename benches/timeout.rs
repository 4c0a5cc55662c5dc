//! Timeout whose inner future is ready at once, next to the bare service: buttress's
//! lazily armed timer, the same layer arming its timer eagerly in `call` (the design it
//! was measured against), and tower's own `Timeout`; allocations per call.

mod support;

use buttress::timeout::TimeoutLayer;
use criterion::{Criterion, criterion_group, criterion_main};
use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use support::{Bare, allocs_per_call, one_call, report_allocs, runtime};
use tower::{Layer, Service};

/// The eager design: the timer is created in `call`, as tower's `Timeout` does.
#[derive(Clone)]
struct EagerTimeout<S> {
    inner: S,
    after: Duration,
}

pin_project_lite::pin_project! {
    struct EagerFuture<F> {
        #[pin]
        fut: F,
        #[pin]
        sleep: tokio::time::Sleep,
    }
}

impl<F, T, E> Future for EagerFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<buttress::BoxError>,
{
    type Output = Result<T, buttress::BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(r) = this.fut.poll(cx) {
            return Poll::Ready(r.map_err(Into::into));
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Box::new(buttress::timeout::error::Elapsed::new()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: Service<u64>> Service<u64> for EagerTimeout<S>
where
    S::Error: Into<buttress::BoxError>,
{
    type Response = S::Response;
    type Error = buttress::BoxError;
    type Future = EagerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: u64) -> Self::Future {
        EagerFuture {
            fut: self.inner.call(req),
            sleep: tokio::time::sleep(self.after),
        }
    }
}

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

fn timeout(c: &mut Criterion) {
    let rt = runtime();
    let after = Duration::from_secs(1);
    let lazy = || TimeoutLayer::new(after).expect("valid").layer(Bare);
    let eager = || EagerTimeout { inner: Bare, after };
    let tower_timeout = || tower::timeout::TimeoutLayer::new(after).layer(Bare);

    let mut g = c.benchmark_group("timeout");
    row(&mut g, "bare", &rt, Bare);
    // The floor for any layer that returns `BoxError`: the bare service, error boxed.
    row(
        &mut g,
        "bare_box_error",
        &rt,
        tower::ServiceExt::map_err(Bare, buttress::BoxError::from),
    );
    row(&mut g, "timeout_ready_at_once_lazy", &rt, lazy());
    row(&mut g, "timeout_ready_at_once_eager", &rt, eager());
    row(&mut g, "tower_timeout_ready_at_once", &rt, tower_timeout());
    g.finish();

    allocs(&rt, "timeout/bare", Bare);
    allocs(&rt, "timeout/timeout_ready_at_once_lazy", lazy());
    allocs(&rt, "timeout/timeout_ready_at_once_eager", eager());
    allocs(&rt, "timeout/tower_timeout_ready_at_once", tower_timeout());
}

criterion_group!(benches, timeout);
criterion_main!(benches);
