//! Timeout whose inner future is ready at once, next to the bare service: buttress's
//! lazily armed timer, the same layer arming its timer eagerly in `call` (the design it
//! was measured against), and tower's own `Timeout`; allocations per call.

mod support;

use buttress::timeout::TimeoutLayer;
use criterion::{Criterion, criterion_group, criterion_main};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use support::{Bare, allocs_row, row, runtime};
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

    allocs_row(&rt, "timeout/bare", Bare);
    allocs_row(&rt, "timeout/timeout_ready_at_once_lazy", lazy());
    allocs_row(&rt, "timeout/timeout_ready_at_once_eager", eager());
    allocs_row(&rt, "timeout/tower_timeout_ready_at_once", tower_timeout());
}

criterion_group!(benches, timeout);
criterion_main!(benches);
