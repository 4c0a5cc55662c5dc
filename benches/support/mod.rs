//! What every criterion suite here shares: the bare service, the runtime, and the
//! allocation counter.
//!
//! Every figure compares like with like: a trivial always-ready service driven by
//! `ready().await` + `call().await` on a current-thread tokio runtime, the same way the
//! peers' figures quoted in the issues were taken.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Service, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// The trivial service every row wraps: always ready, answers its request at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bare;

impl Service<u64> for Bare {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

/// The trivial service, failing every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysFails;

impl Service<u64> for AlwaysFails {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u64) -> Self::Future {
        ready(Err(std::io::Error::other("down")))
    }
}

/// A current-thread runtime, as the peers were measured on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime")
}

/// One call through `svc` the way every row makes it.
#[inline]
pub async fn one_call<S>(svc: &mut S, req: u64) -> Result<S::Response, S::Error>
where
    S: Service<u64>,
{
    svc.ready().await?.call(req).await
}

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
