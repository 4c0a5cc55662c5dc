//! The workload every row shares: the bare service, the runtime, one call.
//!
//! Kept apart from the counting allocator in `mod.rs` so that a timing suite can use the
//! same services under the system allocator (`#[path = "support/services.rs"] mod
//! services;`): the counting allocator adds atomic read-modify-writes to every
//! allocation, which would slow down exactly the rows that allocate.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::task::{Context, Poll};

use tower::{Service, ServiceExt};

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

/// Keeps a call's result observable without handing the whole `Result` to
/// `black_box`: a `Result` with a boxed error (24 bytes, where the bare service's is 8)
/// stored whole and read back stalls the pipeline (about 10 ns here), which would be
/// charged to every row whose error is boxed rather than to the layer.
#[inline(always)]
pub fn consume<T, E>(result: Result<T, E>) {
    match result {
        Ok(v) => drop(black_box(v)),
        Err(e) => drop(black_box(e)),
    }
}

/// Time of `iters` calls through `svc`, one after another on a current-thread runtime,
/// each result consumed by [`consume`]: the loop every timed row runs.
pub fn one_thread<S>(rt: &tokio::runtime::Runtime, svc: &mut S, iters: u64) -> std::time::Duration
where
    S: Service<u64>,
{
    rt.block_on(async {
        let start = std::time::Instant::now();
        for i in 0..iters {
            consume(one_call(svc, black_box(i)).await);
        }
        start.elapsed()
    })
}

/// Two threads, each with its own clone of `svc` (so one shared instance behind them)
/// and its own current-thread runtime, each making `iters` calls at the same time:
/// the slower thread's time, per-call time per thread under contention.
pub fn two_threads<S>(svc: &S, iters: u64) -> std::time::Duration
where
    S: Service<u64> + Clone + Send + 'static,
{
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let mut svc = svc.clone();
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::spawn(move || {
                let rt = runtime();
                barrier.wait();
                one_thread(&rt, &mut svc, iters)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .max()
        .unwrap_or_default()
}
