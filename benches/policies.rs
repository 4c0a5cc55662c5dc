//! What the HTTP and gRPC policies and the gRPC deadline layers cost per call, beside
//! the bare service.
//!
//! Rows (each builds its request inside the iteration, the bare row too):
//! - `http/bare`, `http/buffer_only` (bodies made replayable), `http/retry` (buffer +
//!   retry with `HttpRetryPolicy`, default budget) and `http/retry_no_budget`, a first
//!   attempt answered `200` at once;
//! - `http/decide_503_retry_after`: one verdict of the policy on a `503` with
//!   `Retry-After: 2` (what each retried response pays);
//! - `grpc/bare`, `grpc/deadline_timeout` (server bound from `grpc-timeout: 100m`, a
//!   handler ready at once); `grpc/bare_with_deadline` and `grpc/propagate_deadline` (a
//!   `Deadline` extension turned into `grpc-timeout`: one clock read and one header
//!   write).

mod support;

use buttress::grpc::{Deadline, GrpcRetryPolicy, PropagateDeadlineLayer, deadline_timeout};
use buttress::http::HttpRetryPolicy;
use buttress::retry::{Policy, RetryLayer};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};

/// The bare HTTP service: always ready, answers `200` without reading the body.
#[derive(Debug, Clone)]
struct BareHttp;

impl<B> Service<Request<B>> for BareHttp {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, _req: Request<B>) -> Self::Future {
        ready(Ok(Response::new(())))
    }
}

static SMALL: [u8; 256] = [7; 256];

fn get() -> Request<Full<Bytes>> {
    Request::get("/items/7")
        .body(Full::new(Bytes::from_static(&SMALL)))
        .expect("a valid request")
}

/// A server's request: the client's `grpc-timeout`.
fn grpc_req() -> Request<()> {
    Request::post("/echo.Echo/Echo")
        .header("grpc-timeout", "100m")
        .body(())
        .expect("a valid request")
}

/// A client's request: a `Deadline` to propagate, no `grpc-timeout` yet.
fn deadline_req() -> Request<()> {
    let mut req = Request::post("/echo.Echo/Echo")
        .body(())
        .expect("a valid request");
    req.extensions_mut()
        .insert(Deadline::after(Duration::from_secs(3600)));
    req
}

async fn one_owned<S, R>(mut svc: S, req: R) -> Result<S::Response, S::Error>
where
    S: Service<R>,
{
    svc.ready().await?.call(req).await
}

fn bench(c: &mut Criterion) {
    let rt = support::runtime();
    let http_retry = HttpRetryPolicy::new()
        .retry_layer(RetryLayer::builder())
        .expect("valid config")
        .layer(BareHttp);
    let http_retry_nb = HttpRetryPolicy::new()
        .retry_layer(RetryLayer::builder().no_budget())
        .expect("valid config")
        .layer(BareHttp);
    let buffer_only = buttress::http::BufferRequestBodyLayer::new().layer(BareHttp);
    let timeout = deadline_timeout(Duration::from_secs(30))
        .expect("valid config")
        .layer(BareHttp);
    // Entered so that `Deadline::after` and the layer can read tokio's clock.
    let _guard = rt.enter();
    let propagate = PropagateDeadlineLayer::new().layer(BareHttp);

    let mut g = c.benchmark_group("policies");
    macro_rules! row {
        ($name:expr, $svc:expr, $req:expr) => {
            g.bench_function($name, |b| {
                let svc = $svc.clone();
                b.to_async(&rt)
                    .iter(|| one_owned(svc.clone(), black_box($req)))
            });
        };
    }
    row!("http/bare", BareHttp, get());
    row!("http/buffer_only", buffer_only, get());
    row!("http/retry", http_retry, get());
    row!("http/retry_no_budget", http_retry_nb, get());
    row!("grpc/bare", BareHttp, grpc_req());
    row!("grpc/deadline_timeout", timeout, grpc_req());
    row!("grpc/bare_with_deadline", BareHttp, deadline_req());
    row!("grpc/propagate_deadline", propagate, deadline_req());

    let policy = HttpRetryPolicy::new();
    let req = Request::get("/").body(()).expect("a valid request");
    let res: Result<Response<()>, buttress::BoxError> = Ok(Response::builder()
        .status(503)
        .header("retry-after", "2")
        .body(())
        .expect("a valid response"));
    g.bench_function("http/decide_503_retry_after", |b| {
        b.iter(|| black_box(policy.decide(black_box(&req), black_box(&res))))
    });
    let grpc_policy = GrpcRetryPolicy::new();
    let status: Result<tonic::Response<()>, buttress::BoxError> = Err(Box::new({
        let mut s = tonic::Status::resource_exhausted("busy");
        s.metadata_mut()
            .insert("grpc-retry-pushback-ms", "1500".parse().expect("ascii"));
        s
    }));
    g.bench_function("grpc/decide_pushback_status", |b| {
        b.iter(|| black_box(grpc_policy.decide(black_box(&()), black_box(&status))))
    });
    g.finish();

    macro_rules! allocs {
        ($name:expr, $svc:expr, $req:expr) => {
            let svc = $svc.clone();
            let (a, n) = support::allocs_per_call(&rt, 1000, || one_owned(svc.clone(), $req));
            support::report_allocs($name, a, n);
        };
    }
    allocs!("policies/http/bare", BareHttp, get());
    allocs!("policies/http/buffer_only", buffer_only, get());
    allocs!("policies/http/retry", http_retry, get());
    allocs!("policies/http/retry_no_budget", http_retry_nb, get());
    allocs!("policies/grpc/bare", BareHttp, grpc_req());
    allocs!("policies/grpc/deadline_timeout", timeout, grpc_req());
    allocs!("policies/grpc/bare_with_deadline", BareHttp, deadline_req());
    allocs!(
        "policies/grpc/propagate_deadline",
        propagate,
        deadline_req()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
