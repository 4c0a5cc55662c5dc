//! Timing helpers shared by the bulkhead, rate-limit and fallback suites: one call after
//! another on one thread, and the same on two threads sharing one instance.
#![allow(dead_code, unreachable_pub, missing_docs)]

use crate::support::{one_call, runtime};
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use tower::Service;

/// Time of `iters` calls through `svc`, one after another on a current-thread runtime.
pub fn one_thread<S>(rt: &tokio::runtime::Runtime, svc: &mut S, iters: u64) -> Duration
where
    S: Service<u64>,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            // Only the verdict escapes: black-boxing the whole `Result` measures a
            // store-forwarding stall on the 16-byte copy rather than the layer.
            black_box(one_call(svc, black_box(i)).await.is_ok());
        }
        start.elapsed()
    })
}

/// Two threads, each with its own clone of `svc` (so one shared instance behind them)
/// and its own current-thread runtime, each making `iters` calls at the same time.
/// Returns the slower thread's time: per-call time per thread, under contention.
pub fn two_threads<S>(svc: &S, iters: u64) -> Duration
where
    S: Service<u64> + Clone + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let mut svc = svc.clone();
            let barrier = Arc::clone(&barrier);
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

/// Two threads running `f` `iters` times each at once; the slower thread's time.
pub fn two_threads_fn<F>(f: F, iters: u64) -> Duration
where
    F: Fn(u64) + Clone + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let f = f.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for i in 0..iters {
                    f(black_box(i));
                }
                start.elapsed()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .max()
        .unwrap_or_default()
}

/// Short runs: the suites have many rows and the machine is shared.
pub fn config() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}
