//! What making request bodies replayable costs per call, beside the bare service.
//!
//! Rows: the bare HTTP service; `BufferRequestBody` over it with a small body (read
//! and buffered), with a body over the limit (forwarded unread) and with an empty
//! body; and one `clone_request` of a buffered request, bare and with five headers
//! (what each retry attempt pays).

mod support;

use buttress::http::{BufferRequestBodyLayer, ReplayBody, clone_request};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::{Empty, Full};
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::task::{Context, Poll};
use tower::{Layer, Service, ServiceExt};

/// The bare service for HTTP requests: always ready, answers with the request's body
/// length hint without reading it.
#[derive(Debug, Clone)]
struct BareHttp;

impl<B: http_body::Body> Service<Request<B>> for BareHttp {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(req.body().size_hint().lower()))
    }
}

static SMALL: [u8; 512] = [7; 512];
static LARGE: [u8; 128 * 1024] = [7; 128 * 1024];

fn small() -> Request<Full<Bytes>> {
    Request::new(Full::new(Bytes::from_static(&SMALL)))
}

/// A buffered request with the headers a typical API call carries.
fn with_headers() -> Request<ReplayBody<Empty<Bytes>>> {
    Request::put("https://api.example/items/7")
        .header("host", "api.example")
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("authorization", "Bearer abcdefghijklmnop")
        .header("x-request-id", "0f6c2b1e-3d8a-4b7e-9d2f-5a1c3e4b6d7f")
        .body(ReplayBody::from_bytes(Bytes::from_static(&SMALL)))
        .expect("a valid request")
}

fn large() -> Request<Full<Bytes>> {
    Request::new(Full::new(Bytes::from_static(&LARGE)))
}

async fn one<S, B>(svc: &mut S, req: Request<B>) -> Result<S::Response, S::Error>
where
    S: Service<Request<B>>,
{
    svc.ready().await?.call(req).await
}

async fn one_owned<S, B>(mut svc: S, req: Request<B>) -> Result<S::Response, S::Error>
where
    S: Service<Request<B>>,
{
    one(&mut svc, req).await
}

fn bench(c: &mut Criterion) {
    let rt = support::runtime();
    let layer = BufferRequestBodyLayer::new();

    let mut g = c.benchmark_group("http_body");
    g.bench_function("bare", |b| {
        let svc = BareHttp;
        b.to_async(&rt).iter(|| {
            let req = small();
            // Both services are plain values (no shared state): a copy is free.
            let mut svc = svc.clone();
            async move { black_box(one(&mut svc, req).await) }
        })
    });
    g.bench_function("buffer_small_512B", |b| {
        let svc = layer.layer(BareHttp);
        b.to_async(&rt).iter(|| {
            let req = small();
            // Both services are plain values (no shared state): a copy is free.
            let mut svc = svc.clone();
            async move { black_box(one(&mut svc, req).await) }
        })
    });
    g.bench_function("forward_large_128KiB", |b| {
        let svc = layer.layer(BareHttp);
        b.to_async(&rt).iter(|| {
            let req = large();
            // Both services are plain values (no shared state): a copy is free.
            let mut svc = svc.clone();
            async move { black_box(one(&mut svc, req).await) }
        })
    });
    g.bench_function("buffer_empty", |b| {
        let svc = layer.layer(BareHttp);
        b.to_async(&rt).iter(|| {
            let req = Request::new(Empty::<Bytes>::new());
            // Both services are plain values (no shared state): a copy is free.
            let mut svc = svc.clone();
            async move { black_box(one(&mut svc, req).await) }
        })
    });
    g.bench_function("clone_request_buffered", |b| {
        let req = Request::new(ReplayBody::<Empty<Bytes>>::from_bytes(Bytes::from_static(
            &SMALL,
        )));
        b.iter(|| black_box(clone_request(black_box(&req))))
    });
    g.bench_function("clone_request_5_headers", |b| {
        let req = with_headers();
        b.iter(|| black_box(clone_request(black_box(&req))))
    });
    g.finish();

    let (a, n) = support::allocs_per_call(&rt, 1000, || one_owned(BareHttp, small()));
    support::report_allocs("http_body/bare", a, n);
    let svc = layer.layer(BareHttp);
    let (a, n) = support::allocs_per_call(&rt, 1000, || one_owned(svc.clone(), small()));
    support::report_allocs("http_body/buffer_small_512B", a, n);
    let (a, n) = support::allocs_per_call(&rt, 1000, || one_owned(svc.clone(), large()));
    support::report_allocs("http_body/forward_large_128KiB", a, n);
    let req = Request::new(ReplayBody::<Empty<Bytes>>::from_bytes(Bytes::from_static(
        &SMALL,
    )));
    let (a, n) = support::allocs_per_call(&rt, 1000, || {
        let copy = clone_request(&req);
        async move { black_box(copy) }
    });
    support::report_allocs("http_body/clone_request_buffered", a, n);
    let req = with_headers();
    let (a, n) = support::allocs_per_call(&rt, 1000, || {
        let copy = clone_request(&req);
        async move { black_box(copy) }
    });
    support::report_allocs("http_body/clone_request_5_headers", a, n);
}

criterion_group!(benches, bench);
criterion_main!(benches);
